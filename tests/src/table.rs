//! The key table's shape, read from `infra/template.yaml` (its one source), and created from it.
//!
//! The deployed table, the local stack's table and the test tables all come from the
//! `AWS::DynamoDB::Table` resource of the SAM template: [`table_definition`] reads it,
//! [`create_table`] creates exactly that table on any DynamoDB-compatible endpoint, and
//! [`describe_table`] reads a live table back into the same type so the two can be compared.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    self as sdk, BillingMode, IndexStatus, KeyType, ProjectionType, ScalarAttributeType,
    StreamViewType, TableStatus, TimeToLiveStatus,
};
use serde::Deserialize;
use serde_yaml::Value;

pub use crate::paths::workspace_root;

/// Partition key of the table.
pub const PK: &str = "PK";
/// Sort key of the table.
pub const SK: &str = "SK";
/// The list-by-owner index.
pub const GSI1: &str = "GSI1";
/// Partition key of [`GSI1`]: `OWNER#{workspace}#{owner_id}`.
pub const GSI1PK: &str = "GSI1PK";
/// Sort key of [`GSI1`]: `KEY#{key_id}`.
pub const GSI1SK: &str = "GSI1SK";
/// TTL attribute (epoch seconds) of expiring items, such as grace-period hash items.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// The template, relative to the workspace root.
pub const TEMPLATE_PATH: &str = "infra/template.yaml";

/// How long [`create_table`] waits for the table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The parts of the table's shape the code relies on.
///
/// Attributes and indexes are kept sorted by name, so two definitions compare equal whatever
/// order the template or `DescribeTable` lists them in. Key schemas keep their order (HASH
/// first), which is meaningful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub attributes: Vec<Attribute>,
    pub key_schema: Vec<KeyElement>,
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    pub stream_view_type: StreamViewType,
    pub ttl_attribute: String,
}

/// A key attribute and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub kind: ScalarAttributeType,
}

/// One element of a key schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub name: String,
    pub key_type: KeyType,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryIndex {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: ProjectionType,
    /// Only for `INCLUDE` projections; empty otherwise.
    pub non_key_attributes: Vec<String>,
}

impl TableDefinition {
    /// Sorts attributes and indexes by name (see the type's docs).
    #[must_use]
    pub fn normalized(mut self) -> Self {
        self.attributes.sort_by(|a, b| a.name.cmp(&b.name));
        self.global_secondary_indexes
            .sort_by(|a, b| a.name.cmp(&b.name));
        self
    }
}

/// Reads the table definition from the workspace's `infra/template.yaml`.
///
/// # Errors
/// When the template cannot be read or its table resource is not as [`table_definition`] needs.
pub fn load_table_definition() -> anyhow::Result<TableDefinition> {
    let path = workspace_root().join(TEMPLATE_PATH);
    let yaml = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the SAM template {}", path.display()))?;
    table_definition(&yaml).with_context(|| format!("reading the table from {}", path.display()))
}

// The template's table properties, as CloudFormation spells them. Unknown properties (and the
// intrinsics they hold, such as `TableName: !If ...`) are ignored; the ones read here must be
// literal, because the local stack cannot evaluate intrinsics.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawProperties {
    attribute_definitions: Vec<RawAttribute>,
    key_schema: Vec<RawKeyElement>,
    #[serde(default)]
    global_secondary_indexes: Vec<RawIndex>,
    stream_specification: Option<RawStream>,
    time_to_live_specification: Option<RawTtl>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawAttribute {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawKeyElement {
    attribute_name: String,
    key_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawIndex {
    index_name: String,
    key_schema: Vec<RawKeyElement>,
    projection: RawProjection,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawProjection {
    projection_type: Option<String>,
    #[serde(default)]
    non_key_attributes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStream {
    stream_view_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTtl {
    attribute_name: String,
    enabled: bool,
}

/// Parses the only `AWS::DynamoDB::Table` resource of a CloudFormation/SAM template.
///
/// CloudFormation short tags (`!Ref`, `!Sub`, `!If`, ...) parse as tagged YAML values, so the
/// rest of the template may use them freely.
///
/// # Errors
/// When the YAML does not parse, the template has no table or more than one, or the table lacks
/// a literal key schema, stream specification or enabled TTL.
pub fn table_definition(template_yaml: &str) -> anyhow::Result<TableDefinition> {
    let template: Value =
        serde_yaml::from_str(template_yaml).context("parsing the template as YAML")?;
    let resources = template
        .get("Resources")
        .and_then(Value::as_mapping)
        .context("the template has no Resources section")?;
    let tables: Vec<(&Value, &Value)> = resources
        .iter()
        .filter(|(_, resource)| {
            resource.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")
        })
        .collect();
    let [(logical_id, resource)] = tables.as_slice() else {
        bail!(
            "expected exactly one AWS::DynamoDB::Table resource, found {}",
            tables.len()
        );
    };
    let logical_id = logical_id.as_str().unwrap_or("?");
    let properties = resource
        .get("Properties")
        .cloned()
        .with_context(|| format!("table resource {logical_id} has no Properties"))?;
    for read in READ_PROPERTIES {
        if let Some(value) = properties.get(read) {
            refuse_intrinsics(value)
                .with_context(|| format!("reading {read} of table resource {logical_id}"))?;
        }
    }
    let raw: RawProperties = serde_yaml::from_value(properties).with_context(|| {
        format!("reading the properties of table resource {logical_id} (they must be literal)")
    })?;

    let stream = raw
        .stream_specification
        .with_context(|| format!("table {logical_id} has no StreamSpecification"))?;
    let ttl = raw
        .time_to_live_specification
        .with_context(|| format!("table {logical_id} has no TimeToLiveSpecification"))?;
    ensure!(ttl.enabled, "table {logical_id} has TTL disabled");

    let definition = TableDefinition {
        attributes: raw
            .attribute_definitions
            .into_iter()
            .map(|a| {
                Ok(Attribute {
                    kind: known(&a.attribute_type, "AttributeType")?,
                    name: a.attribute_name,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        key_schema: key_schema(raw.key_schema)?,
        global_secondary_indexes: raw
            .global_secondary_indexes
            .into_iter()
            .map(|index| {
                Ok(SecondaryIndex {
                    key_schema: key_schema(index.key_schema)?,
                    // CloudFormation's default projection is KEYS_ONLY.
                    projection: known(
                        index
                            .projection
                            .projection_type
                            .as_deref()
                            .unwrap_or("KEYS_ONLY"),
                        "ProjectionType",
                    )?,
                    non_key_attributes: index.projection.non_key_attributes,
                    name: index.index_name,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        stream_view_type: known(&stream.stream_view_type, "StreamViewType")?,
        ttl_attribute: ttl.attribute_name,
    };
    Ok(definition.normalized())
}

fn key_schema(raw: Vec<RawKeyElement>) -> anyhow::Result<Vec<KeyElement>> {
    raw.into_iter()
        .map(|k| {
            Ok(KeyElement {
                key_type: known(&k.key_type, "KeyType")?,
                name: k.attribute_name,
            })
        })
        .collect()
}

// The properties `RawProperties` reads.
const READ_PROPERTIES: [&str; 5] = [
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "StreamSpecification",
    "TimeToLiveSpecification",
];

// serde_yaml drops the tag when a tagged value is read as a plain string, so `!Ref Name` would
// silently read as the literal `Name`: refuse any tag in the properties the shape comes from.
fn refuse_intrinsics(value: &Value) -> anyhow::Result<()> {
    match value {
        Value::Tagged(tagged) => bail!(
            "{} {:?} is an intrinsic; the table's shape must be literal",
            tagged.tag,
            tagged.value
        ),
        Value::Sequence(items) => items.iter().try_for_each(refuse_intrinsics),
        Value::Mapping(map) => map.values().try_for_each(refuse_intrinsics),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
    }
}

/// Converts a template string to an SDK enum, refusing values the SDK does not know (the SDK's
/// `From<&str>` would silently make them `Unknown`).
trait KnownValues: for<'a> From<&'a str> {
    fn values() -> &'static [&'static str];
}

macro_rules! known_values {
    ($($ty:ty),*) => {
        $(impl KnownValues for $ty {
            fn values() -> &'static [&'static str] {
                <$ty>::values()
            }
        })*
    };
}
known_values!(ScalarAttributeType, KeyType, ProjectionType, StreamViewType);

fn known<T: KnownValues>(value: &str, what: &str) -> anyhow::Result<T> {
    ensure!(
        T::values().contains(&value),
        "{value:?} is not a {what} (expected one of {:?})",
        T::values()
    );
    Ok(T::from(value))
}

fn sdk_key_schema(keys: &[KeyElement]) -> anyhow::Result<Vec<sdk::KeySchemaElement>> {
    keys.iter()
        .map(|k| {
            sdk::KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(k.key_type.clone())
                .build()
                .context("building a key schema element")
        })
        .collect()
}

/// Creates table `name` with exactly the shape of `def` (on-demand billing, the stream on, TTL
/// set) and returns once the table and its indexes are ACTIVE.
///
/// # Errors
/// When DynamoDB refuses the table or it is not ACTIVE within a minute.
pub async fn create_table(
    client: &Client,
    name: &str,
    def: &TableDefinition,
) -> anyhow::Result<()> {
    create_table_with(client, name, def, true).await
}

/// [`create_table`], with the stream on or off. Off is for benchmarks only: moto deep-copies
/// the table, stream history included, in every transaction, so with a stream each write is
/// slower than the one before; DynamoDB's write latency does not depend on the stream.
///
/// # Errors
/// As [`create_table`].
pub async fn create_table_with(
    client: &Client,
    name: &str,
    def: &TableDefinition,
    stream: bool,
) -> anyhow::Result<()> {
    let attributes = def
        .attributes
        .iter()
        .map(|a| {
            sdk::AttributeDefinition::builder()
                .attribute_name(&a.name)
                .attribute_type(a.kind.clone())
                .build()
                .context("building an attribute definition")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let indexes = def
        .global_secondary_indexes
        .iter()
        .map(|index| {
            let projection = sdk::Projection::builder()
                .projection_type(index.projection.clone())
                .set_non_key_attributes(
                    (!index.non_key_attributes.is_empty())
                        .then(|| index.non_key_attributes.clone()),
                )
                .build();
            sdk::GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(sdk_key_schema(&index.key_schema)?))
                .projection(projection)
                .build()
                .with_context(|| format!("building index {}", index.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stream = sdk::StreamSpecification::builder()
        .stream_enabled(stream)
        .set_stream_view_type(stream.then(|| def.stream_view_type.clone()))
        .build()
        .context("building the stream specification")?;

    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(sdk_key_schema(&def.key_schema)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .stream_specification(stream)
        .send()
        .await
        .with_context(|| format!("creating DynamoDB table {name}"))?;
    wait_until_active(client, name).await?;

    let ttl = sdk::TimeToLiveSpecification::builder()
        .attribute_name(&def.ttl_attribute)
        .enabled(true)
        .build()
        .context("building the TTL specification")?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .with_context(|| format!("enabling TTL on {} of table {name}", def.ttl_attribute))?;
    Ok(())
}

async fn wait_until_active(client: &Client, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .with_context(|| format!("describing table {name}"))?;
        let table = described
            .table()
            .with_context(|| format!("DescribeTable returned no table for {name}"))?;
        let indexes_active = table
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status() == Some(&IndexStatus::Active));
        if table.table_status() == Some(&TableStatus::Active) && indexes_active {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "table {name} is not ACTIVE after {ACTIVE_TIMEOUT:?} (status {:?})",
            table.table_status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads a live table back into a [`TableDefinition`] (DescribeTable and DescribeTimeToLive).
///
/// # Errors
/// When the table cannot be described, or has no stream or no enabled TTL.
pub async fn describe_table(client: &Client, name: &str) -> anyhow::Result<TableDefinition> {
    let described = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .with_context(|| format!("describing table {name}"))?;
    let table = described
        .table()
        .with_context(|| format!("DescribeTable returned no table for {name}"))?;

    let stream = table
        .stream_specification()
        .filter(|stream| stream.stream_enabled())
        .with_context(|| format!("table {name} has no stream"))?;
    let stream_view_type = stream
        .stream_view_type()
        .cloned()
        .with_context(|| format!("the stream of table {name} has no view type"))?;

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .with_context(|| format!("describing the TTL of table {name}"))?;
    let ttl = ttl
        .time_to_live_description()
        .filter(|ttl| ttl.time_to_live_status() == Some(&TimeToLiveStatus::Enabled))
        .with_context(|| format!("table {name} has TTL disabled"))?;

    let definition = TableDefinition {
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| Attribute {
                name: a.attribute_name().to_owned(),
                kind: a.attribute_type().clone(),
            })
            .collect(),
        key_schema: from_sdk_key_schema(table.key_schema()),
        global_secondary_indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|index| SecondaryIndex {
                name: index.index_name().unwrap_or_default().to_owned(),
                key_schema: from_sdk_key_schema(index.key_schema()),
                projection: index
                    .projection()
                    .and_then(sdk::Projection::projection_type)
                    .cloned()
                    .unwrap_or(ProjectionType::KeysOnly),
                non_key_attributes: index
                    .projection()
                    .map(|p| p.non_key_attributes().to_vec())
                    .unwrap_or_default(),
            })
            .collect(),
        stream_view_type,
        ttl_attribute: ttl.attribute_name().unwrap_or_default().to_owned(),
    };
    Ok(definition.normalized())
}

fn from_sdk_key_schema(keys: &[sdk::KeySchemaElement]) -> Vec<KeyElement> {
    keys.iter()
        .map(|k| KeyElement {
            name: k.attribute_name().to_owned(),
            key_type: k.key_type().clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
Resources:
  Other:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-q"
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !If [HasName, !Ref Name, !Ref AWS::NoValue]
      AttributeDefinitions:
        - { AttributeName: SK, AttributeType: S }
        - { AttributeName: PK, AttributeType: S }
      KeySchema:
        - { AttributeName: PK, KeyType: HASH }
        - { AttributeName: SK, KeyType: RANGE }
      StreamSpecification: { StreamViewType: NEW_IMAGE }
      TimeToLiveSpecification: { AttributeName: exp, Enabled: true }
      DeletionProtectionEnabled: !If [Protect, true, false]
"#;

    #[test]
    fn short_tags_elsewhere_in_the_template_do_not_stop_parsing() {
        let def = table_definition(MINIMAL).unwrap();
        assert_eq!(def.attributes[0].name, "PK");
        assert_eq!(def.stream_view_type, StreamViewType::NewImage);
        assert_eq!(def.ttl_attribute, "exp");
        assert!(def.global_secondary_indexes.is_empty());
    }

    #[test]
    fn an_intrinsic_in_the_key_schema_is_refused() {
        let yaml = MINIMAL.replace(
            "{ AttributeName: PK, KeyType: HASH }",
            "{ AttributeName: !Ref Key, KeyType: HASH }",
        );
        assert!(table_definition(&yaml).is_err());
    }

    #[test]
    fn an_unknown_attribute_type_is_refused() {
        let yaml = MINIMAL.replace(
            "{ AttributeName: PK, AttributeType: S }",
            "{ AttributeName: PK, AttributeType: X }",
        );
        let err = table_definition(&yaml).unwrap_err();
        assert!(format!("{err:#}").contains("AttributeType"), "{err:#}");
    }

    #[test]
    fn a_table_without_ttl_is_refused() {
        let yaml = MINIMAL.replace("Enabled: true", "Enabled: false");
        assert!(table_definition(&yaml).is_err());
    }
}
