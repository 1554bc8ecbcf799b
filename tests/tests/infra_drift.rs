//! The table the code relies on, the table the template deploys and the table the local stack
//! creates are one shape: these tests fail as soon as one of them changes alone.
//!
//! Run: `cargo test -p keyward-tests --test infra_drift` (needs the venv's moto, from
//! `cargo xtask bootstrap`; set `KEYWARD_REPO` to use another checkout's venv).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{KeyType, ProjectionType, ScalarAttributeType, StreamViewType};
use keyward_tests::moto::Moto;
use keyward_tests::paths::repo_root;
use keyward_tests::table::{
    self, Attribute, GSI1, GSI1PK, GSI1SK, KeyElement, PK, SK, SecondaryIndex, TTL_ATTRIBUTE,
    TableDefinition,
};

fn key(name: &str, key_type: KeyType) -> KeyElement {
    KeyElement {
        name: name.to_owned(),
        key_type,
    }
}

fn string_attribute(name: &str) -> Attribute {
    Attribute {
        name: name.to_owned(),
        kind: ScalarAttributeType::S,
    }
}

/// The shape the functions code is written against.
fn shape_the_code_relies_on() -> TableDefinition {
    TableDefinition {
        attributes: [PK, SK, GSI1PK, GSI1SK]
            .into_iter()
            .map(string_attribute)
            .collect(),
        key_schema: vec![key(PK, KeyType::Hash), key(SK, KeyType::Range)],
        global_secondary_indexes: vec![SecondaryIndex {
            name: GSI1.to_owned(),
            key_schema: vec![key(GSI1PK, KeyType::Hash), key(GSI1SK, KeyType::Range)],
            projection: ProjectionType::All,
            non_key_attributes: vec![],
        }],
        stream_view_type: StreamViewType::NewAndOldImages,
        ttl_attribute: TTL_ATTRIBUTE.to_owned(),
    }
    .normalized()
}

#[test]
fn template_table_has_exactly_the_keys_index_stream_and_ttl_the_code_relies_on() {
    let from_template = table::load_table_definition().unwrap();
    assert_eq!(from_template, shape_the_code_relies_on());
}

#[tokio::test]
async fn table_created_from_the_template_is_described_back_with_the_same_shape() {
    let log = repo_root().join(format!(
        "target/keyward/runs/infra-drift-moto-{}.log",
        std::process::id()
    ));
    let moto = Moto::start(&log).unwrap();
    let client = moto.dynamodb();
    let from_template = table::load_table_definition().unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("keyward-drift-{}-{nanos}", std::process::id());

    table::create_table(&client, &name, &from_template)
        .await
        .unwrap();

    let described = table::describe_table(&client, &name).await.unwrap();
    assert_eq!(described, from_template);
}
