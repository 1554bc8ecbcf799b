//! The table the code relies on, the table the template deploys and the table the local stack
//! creates are one shape: these tests fail as soon as one of them changes alone.
//!
//! Run: `cargo test -p keyward-tests --test infra_drift` (needs `.venv/bin/moto_server`, from
//! `cargo xtask bootstrap`; set `KEYWARD_REPO` to use another checkout's venv).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{KeyType, ProjectionType, ScalarAttributeType, StreamViewType};
use keyward_tests::table::{
    self, Attribute, GSI1, GSI1PK, GSI1SK, KeyElement, PK, SK, SecondaryIndex, TTL_ATTRIBUTE,
    TableDefinition,
};

/// A moto server on a port chosen by the OS, killed when dropped.
#[derive(Debug)]
struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    fn start() -> anyhow::Result<Self> {
        let repo =
            std::env::var_os("KEYWARD_REPO").map_or_else(table::workspace_root, PathBuf::from);
        let binary = repo.join(".venv/bin/moto_server");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("asking the OS for a free port")?
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (run `cargo xtask bootstrap`)",
                    binary.display()
                )
            })?;
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        server.wait_until_listening(port)?;
        Ok(server)
    }

    fn wait_until_listening(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = self.child.try_wait()? {
                bail!("moto_server exited before listening on port {port}: {status}");
            }
            if Instant::now() > deadline {
                bail!("moto_server did not listen on port {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let moto = MotoServer::start().unwrap();
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
