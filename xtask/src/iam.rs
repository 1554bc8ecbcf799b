//! Each function's IAM policy in `infra/template.yaml` against the AWS actions it really issued.
//!
//! moto does not enforce IAM, so a policy that misses an action only fails once deployed (the
//! create function's transaction updated the workspace counter, which its policy did not grant).
//! The local stack's moto (`tests/moto_server.py`) records one JSON line per IAM action a
//! function's request needs (`{"function", "action", "resource", "via"}`; the function is the
//! `app/<name>` of its SDK user agent, a transaction is written as its items' actions). This
//! check unions those lines and compares them, per function, with the statements of its
//! `Policies` (inline statements and SAM policy templates, expanded to their actions), for the
//! services moto serves (DynamoDB and Secrets Manager):
//!
//! - an action a function issued that no statement grants on that resource: **missing**;
//! - a granted action (on a resource) that the runs never issued: **unused** (least privilege);
//! - a function of the template that never issued anything: **never invoked**, so unchecked.
//!
//! Each is an error, except a function granted no checked action that issued none (the console,
//! which talks to no AWS service): there is nothing to check. The stream reads that Lambda's event source mapping makes with a
//! function's role (`DescribeStream`, `GetRecords`, `GetShardIterator`, `ListStreams`) are not
//! issued by the function's code; they count as used for the target of a stream mapping.
//!
//! Resources are compared by what they name in the template: `table` (`!GetAtt T.Arn`),
//! `table/index/NAME` (`!Sub "${T.Arn}/index/NAME"`), `stream` (`T.StreamArn`,
//! `${T.Arn}/stream/*`), `ref:NAME` (`!Ref NAME`, e.g. a secret). A function finds a secret by
//! the ARN in a `*_SECRET_ID` variable; the local stack names each secret `<prefix>/<that
//! variable>`, so a recorded read maps to the template's value of that variable in the
//! function's environment, which must be the reference the read is granted on.
//!
//! Run: the last step of `cargo xtask test` (which points the end-to-end runs at a fresh log
//! directory with `KEYWARD_IAM_LOG_DIR`), or `cargo xtask iam [--template FILE] LOG_DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_yaml::Value;

/// The services whose actions moto records, so whose grants can be checked.
const CHECKED_SERVICES: [&str; 2] = ["dynamodb", "secretsmanager"];

/// What Lambda's event source mapping reads with its target's role.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-eventsourcemapping.html>
const STREAM_MAPPING_ACTIONS: [&str; 4] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

/// One action on one resource (both normalised).
type Grant = (String, String);

/// A function of the template: its name (the `target/lambda/<name>` of its `CodeUri`), what its
/// policies grant, and its environment.
#[derive(Debug)]
struct Function {
    logical_id: String,
    grants: BTreeSet<Grant>,
    /// Grants of services this check cannot see (kept to say so).
    unchecked: BTreeSet<String>,
    /// Environment variables, values normalised like resources.
    env: BTreeMap<String, String>,
    /// Actions made with its role by something else than its code (a stream mapping).
    implicit: BTreeSet<Grant>,
}

/// Checks the template at `template` against every `*.jsonl` action log under `logs`.
///
/// # Errors
/// When the template or a log cannot be read, or any function's policy misses an action it
/// issued, grants one it never issued, or the logs never show the function at all.
pub fn check(template: &Path, logs: &Path) -> Result<()> {
    let yaml = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let functions = functions(&yaml).with_context(|| format!("reading {}", template.display()))?;
    let mut lines = String::new();
    let mut files = 0;
    for entry in std::fs::read_dir(logs).with_context(|| format!("reading {}", logs.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            files += 1;
            lines.push_str(
                &std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
        }
    }
    if files == 0 {
        bail!(
            "no action log (*.jsonl) in {}: did the end-to-end tests run with KEYWARD_IAM_LOG_DIR?",
            logs.display()
        );
    }
    let used = used(&lines)?;
    let report = compare(&functions, &used);
    print!("{}", report.text);
    if report.errors > 0 {
        bail!(
            "{} IAM policy problem(s) in {} (action logs: {} files in {})",
            report.errors,
            template.display(),
            files,
            logs.display()
        );
    }
    Ok(())
}

/// The outcome of a comparison: a readable report and how many errors it holds.
struct Report {
    text: String,
    errors: usize,
}

fn compare(
    functions: &BTreeMap<String, Function>,
    used: &BTreeMap<String, BTreeSet<Used>>,
) -> Report {
    let mut text = String::new();
    let mut errors = 0;
    for (name, f) in functions {
        let _ = writeln!(text, "{name} ({}):", f.logical_id);
        let Some(calls) = used.get(name) else {
            if f.grants.is_empty() && f.implicit.is_empty() {
                // Nothing granted and nothing issued: least privilege already (the console).
                let _ = writeln!(text, "  ok      no AWS action granted, none issued");
                continue;
            }
            errors += 1;
            let _ = writeln!(
                text,
                "  ERROR never invoked by the end-to-end runs: its policy is unchecked"
            );
            continue;
        };
        let mut issued: BTreeSet<Grant> = f.implicit.clone();
        for call in calls {
            let service = call.action.split(':').next().unwrap_or_default();
            if !CHECKED_SERVICES.contains(&service) {
                // SQS, for one: its grants are not checked either (listed below).
                let _ = writeln!(text, "  (not checked: issued {})", call.action);
                continue;
            }
            let resource = match call.resource.strip_prefix("secret-variable:") {
                Some(variable) => match f.env.get(variable) {
                    Some(reference) => reference.clone(),
                    None => format!("(the secret of {variable}, not in its environment)"),
                },
                None => call.resource.clone(),
            };
            issued.insert((call.action.clone(), resource));
        }
        for (action, resource) in &issued {
            let granted = f
                .grants
                .iter()
                .any(|(a, r)| covers(a, action) && covers(r, resource));
            if granted {
                let _ = writeln!(text, "  ok      {action} on {resource}");
            } else {
                errors += 1;
                let _ = writeln!(
                    text,
                    "  ERROR missing: {action} on {resource} is not granted"
                );
            }
        }
        for (action, resource) in &f.grants {
            let exercised = issued
                .iter()
                .any(|(a, r)| covers(action, a) && covers(resource, r));
            if !exercised {
                errors += 1;
                let _ = writeln!(
                    text,
                    "  ERROR unused: {action} on {resource} is granted but never issued"
                );
            }
        }
        for grant in &f.unchecked {
            let _ = writeln!(text, "  (not checked: {grant})");
        }
    }
    for name in used.keys().filter(|n| !functions.contains_key(*n)) {
        errors += 1;
        let _ = writeln!(
            text,
            "{name}: ERROR issued AWS actions but is not a function of the template"
        );
    }
    Report { text, errors }
}

/// Whether the grant pattern `pattern` (a trailing `*` matches any rest) covers `value`.
fn covers(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// One recorded action, its resource normalised (`secret-variable:VARIABLE` for a local
/// secret, resolved per function through its environment).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Used {
    action: String,
    resource: String,
}

/// The recorded actions of each function, from the JSON lines of the action logs.
fn used(lines: &str) -> Result<BTreeMap<String, BTreeSet<Used>>> {
    let mut out: BTreeMap<String, BTreeSet<Used>> = BTreeMap::new();
    for (i, line) in lines
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("action log line {}: not JSON", i + 1))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .with_context(|| format!("action log line {}: no `{k}`", i + 1))
        };
        let function = field("function")?;
        let action = field("action")?;
        let resource = recorded_resource(field("resource")?);
        out.entry(function.to_owned()).or_default().insert(Used {
            action: action.to_owned(),
            resource,
        });
    }
    Ok(out)
}

/// A recorded resource (`dynamodb:table/NAME[/index/I]`, `dynamodb:stream/ARN`,
/// `secretsmanager:ID`) in the template's terms.
fn recorded_resource(raw: &str) -> String {
    if let Some(table) = raw.strip_prefix("dynamodb:table/") {
        return match table.split_once("/index/") {
            Some((_, index)) => format!("table/index/{index}"),
            None => "table".to_owned(),
        };
    }
    if raw.starts_with("dynamodb:stream/") {
        return "stream".to_owned();
    }
    if let Some(id) = raw.strip_prefix("secretsmanager:") {
        let variable = id.rsplit('/').next().unwrap_or(id);
        return format!("secret-variable:{variable}");
    }
    raw.to_owned()
}

/// Every `AWS::Serverless::Function` of the template, by its name.
fn functions(yaml: &str) -> Result<BTreeMap<String, Function>> {
    let doc: Value = serde_yaml::from_str(yaml).context("parsing the template")?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .context("the template has no Resources")?;
    let tables: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table"))
        .filter_map(|(id, _)| id.as_str().map(str::to_owned))
        .collect();
    let mut by_logical = BTreeMap::new();
    for (id, resource) in resources {
        let id = id.as_str().context("a resource id is not a string")?;
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let f = function(id, resource, &tables).with_context(|| format!("function {id}"))?;
        by_logical.insert(id.to_owned(), f);
    }
    // Stream mappings read with their target's role.
    for resource in resources.values() {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Lambda::EventSourceMapping") {
            continue;
        }
        let props = resource.get("Properties");
        let target = props.and_then(|p| p.get("FunctionName")).map(reference);
        let source = props
            .and_then(|p| p.get("EventSourceArn"))
            .map(|v| normalise(v, &tables));
        if let (Some(Some(target)), Some(source)) = (target, source)
            && source == "stream"
            && let Some(f) = by_logical.get_mut(&target)
        {
            for action in STREAM_MAPPING_ACTIONS {
                f.1.implicit
                    .insert((action.to_owned(), "stream".to_owned()));
            }
        }
    }
    Ok(by_logical.into_values().collect())
}

/// The `!Ref NAME` a value is, if it is one.
fn reference(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_owned),
        _ => None,
    }
}

fn function(id: &str, resource: &Value, tables: &BTreeSet<String>) -> Result<(String, Function)> {
    let props = resource.get("Properties").context("no Properties")?;
    let code = props
        .get("CodeUri")
        .and_then(Value::as_str)
        .context("no literal CodeUri")?;
    let name = code
        .split("target/lambda/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("CodeUri {code} does not name target/lambda/<function>/"))?;
    let mut f = Function {
        logical_id: id.to_owned(),
        grants: BTreeSet::new(),
        unchecked: BTreeSet::new(),
        env: BTreeMap::new(),
        implicit: BTreeSet::new(),
    };
    if let Some(vars) = props
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
    {
        for (k, v) in vars {
            if let Some(k) = k.as_str() {
                f.env.insert(k.to_owned(), normalise(v, tables));
            }
        }
    }
    let policies = match props.get("Policies") {
        None => Vec::new(),
        Some(Value::Sequence(list)) => list.clone(),
        Some(other) => vec![other.clone()],
    };
    for policy in &policies {
        for (action, resource) in policy_grants(policy, tables)? {
            let service = action.split(':').next().unwrap_or_default();
            if CHECKED_SERVICES.contains(&service) {
                f.grants.insert((action, resource));
            } else {
                f.unchecked.insert(format!("{action} on {resource}"));
            }
        }
    }
    Ok((name.to_owned(), f))
}

/// The (action, resource) pairs one entry of `Policies` grants.
fn policy_grants(policy: &Value, tables: &BTreeSet<String>) -> Result<Vec<Grant>> {
    let map = match policy {
        Value::Mapping(m) => m,
        Value::String(s) => bail!("managed policy {s} cannot be checked: use inline statements"),
        other => bail!("unrecognised policy entry {other:?}"),
    };
    if let Some(statements) = map.get("Statement") {
        let statements = match statements {
            Value::Sequence(s) => s.clone(),
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for st in &statements {
            if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
                bail!("only Allow statements are supported here: {st:?}");
            }
            let actions = strings(st.get("Action").context("a statement without Action")?);
            let resources = match st.get("Resource").context("a statement without Resource")? {
                Value::Sequence(list) => list.iter().map(|r| normalise(r, tables)).collect(),
                one => vec![normalise(one, tables)],
            };
            for a in &actions {
                for r in &resources {
                    out.push((a.clone(), r.clone()));
                }
            }
        }
        return Ok(out);
    }
    let [(name, args)] = map.iter().collect::<Vec<_>>()[..] else {
        bail!("a policy entry must be a policy document or one SAM policy template: {policy:?}");
    };
    let name = name.as_str().unwrap_or_default();
    sam_template(name, args, tables)
}

/// The actions and resources of a SAM policy template (from SAM's `policy_templates.json`).
fn sam_template(name: &str, args: &Value, tables: &BTreeSet<String>) -> Result<Vec<Grant>> {
    let table = || -> Result<()> {
        match args.get("TableName").and_then(reference) {
            Some(t) if tables.contains(&t) => Ok(()),
            _ => bail!("{name}: TableName must be a !Ref to the table"),
        }
    };
    let on = |actions: &[&str], resources: &[&str]| -> Vec<Grant> {
        actions
            .iter()
            .flat_map(|a| {
                resources
                    .iter()
                    .map(move |r| (format!("dynamodb:{a}"), (*r).to_owned()))
            })
            .collect()
    };
    Ok(match name {
        "DynamoDBCrudPolicy" => {
            table()?;
            on(
                &[
                    "GetItem",
                    "DeleteItem",
                    "PutItem",
                    "Scan",
                    "Query",
                    "UpdateItem",
                    "BatchWriteItem",
                    "BatchGetItem",
                    "DescribeTable",
                    "ConditionCheckItem",
                ],
                &["table", "table/index/*"],
            )
        }
        "DynamoDBReadPolicy" => {
            table()?;
            on(
                &["GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"],
                &["table", "table/index/*"],
            )
        }
        "DynamoDBWritePolicy" => {
            table()?;
            on(
                &["PutItem", "UpdateItem", "BatchWriteItem"],
                &["table", "table/index/*"],
            )
        }
        "DynamoDBStreamReadPolicy" => {
            table()?;
            on(
                &[
                    "DescribeStream",
                    "GetRecords",
                    "GetShardIterator",
                    "ListStreams",
                ],
                &["stream"],
            )
        }
        "AWSSecretsManagerGetSecretValuePolicy" => {
            let secret = args
                .get("SecretArn")
                .context("AWSSecretsManagerGetSecretValuePolicy without SecretArn")?;
            vec![(
                "secretsmanager:GetSecretValue".to_owned(),
                normalise(secret, tables),
            )]
        }
        other => bail!("SAM policy template {other} is not known to xtask/src/iam.rs: add it"),
    })
}

/// A string or a list of strings.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A resource (or environment value) in the template's terms: `table`, `table/index/NAME`,
/// `stream`, `ref:NAME`, `*`, or the value's own text when it is none of these.
fn normalise(v: &Value, tables: &BTreeSet<String>) -> String {
    match v {
        Value::String(s) if s == "*" => "*".to_owned(),
        Value::String(s) => s.clone(),
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            match tag.as_str() {
                "!Ref" => format!("ref:{}", t.value.as_str().unwrap_or_default()),
                "!GetAtt" => {
                    let text = match &t.value {
                        Value::String(s) => s.clone(),
                        Value::Sequence(parts) => parts
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("."),
                        _ => String::new(),
                    };
                    match text.rsplit_once('.') {
                        Some((t, "Arn")) if tables.contains(t) => "table".to_owned(),
                        Some((t, "StreamArn")) if tables.contains(t) => "stream".to_owned(),
                        _ => format!("getatt:{text}"),
                    }
                }
                "!Sub" => {
                    let text = t.value.as_str().unwrap_or_default();
                    let on_table = text
                        .strip_prefix("${")
                        .and_then(|t| t.split_once(".Arn}"))
                        .filter(|(t, _)| tables.contains(*t));
                    match on_table {
                        Some((_, "/stream/*")) => "stream".to_owned(),
                        Some((_, rest)) if rest.starts_with("/index/") => format!("table{rest}"),
                        _ => format!("sub:{text}"),
                    }
                }
                other => format!("{other} {:?}", t.value),
            }
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Resources:
  KeysTable:
    Type: AWS::DynamoDB::Table
  Secret:
    Type: AWS::SecretsManager::Secret
  CreateKeyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../target/lambda/create-key/bootstrap.zip
      Environment:
        Variables:
          KEYWARD_JWT_KEY_SECRET_ID: !Ref Secret
      Policies:
        - Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Action: [dynamodb:PutItem, dynamodb:UpdateItem]
              Resource: !GetAtt KeysTable.Arn
            - Effect: Allow
              Action: secretsmanager:GetSecretValue
              Resource: !Ref Secret
  ListKeysFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../target/lambda/list-keys/bootstrap.zip
      Policies:
        - DynamoDBReadPolicy:
            TableName: !Ref KeysTable
  SyncFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../target/lambda/sync/bootstrap.zip
      Environment:
        Variables:
          KEYWARD_SYNC_SECRET_ID: !Ref Secret
      Policies:
        - Statement:
            - Effect: Allow
              Action: secretsmanager:GetSecretValue
              Resource: !Ref Secret
            - Effect: Allow
              Action: [dynamodb:DescribeStream, dynamodb:GetRecords, dynamodb:GetShardIterator]
              Resource: !GetAtt KeysTable.StreamArn
            - Effect: Allow
              Action: [dynamodb:ListStreams]
              Resource: !Sub "${KeysTable.Arn}/stream/*"
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt Dlq.Arn
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref SyncFunction
      EventSourceArn: !GetAtt KeysTable.StreamArn
"#;

    fn line(function: &str, action: &str, resource: &str) -> String {
        serde_json::json!({"function": function, "action": action, "resource": resource, "via": null})
            .to_string()
            + "\n"
    }

    fn report(template: &str, log: &str) -> Report {
        compare(&functions(template).unwrap(), &used(log).unwrap())
    }

    fn full_log() -> String {
        let mut log = String::new();
        log += &line("create-key", "dynamodb:PutItem", "dynamodb:table/t");
        log += &line("create-key", "dynamodb:UpdateItem", "dynamodb:table/t");
        log += &line(
            "create-key",
            "secretsmanager:GetSecretValue",
            "secretsmanager:run/KEYWARD_JWT_KEY_SECRET_ID",
        );
        log += &line(
            "sync",
            "secretsmanager:GetSecretValue",
            "secretsmanager:run/KEYWARD_SYNC_SECRET_ID",
        );
        for a in ["GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"] {
            log += &line("list-keys", &format!("dynamodb:{a}"), "dynamodb:table/t");
            log += &line(
                "list-keys",
                &format!("dynamodb:{a}"),
                "dynamodb:table/t/index/GSI1",
            );
        }
        log
    }

    #[test]
    fn a_policy_that_grants_exactly_what_was_issued_passes() {
        let r = report(TEMPLATE, &full_log());
        assert_eq!(r.errors, 0, "{}", r.text);
        // The mapping's stream reads count as used; the queue is named as unchecked.
        assert!(
            r.text.contains("ok      dynamodb:GetRecords on stream"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("not checked: sqs:SendMessage"),
            "{}",
            r.text
        );
    }

    #[test]
    fn an_issued_action_the_policy_lacks_is_missing() {
        let template = TEMPLATE.replace(
            "[dynamodb:PutItem, dynamodb:UpdateItem]",
            "[dynamodb:PutItem]",
        );
        let r = report(&template, &full_log());
        assert_eq!(r.errors, 1, "{}", r.text);
        assert!(
            r.text.contains("missing: dynamodb:UpdateItem on table"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_granted_action_never_issued_is_unused() {
        let template = TEMPLATE.replace(
            "[dynamodb:PutItem, dynamodb:UpdateItem]",
            "[dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem]",
        );
        let r = report(&template, &full_log());
        assert_eq!(r.errors, 1, "{}", r.text);
        assert!(
            r.text.contains("unused: dynamodb:DeleteItem on table"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_query_on_an_index_needs_a_grant_on_that_index() {
        let mut log = full_log();
        log += &line(
            "create-key",
            "dynamodb:PutItem",
            "dynamodb:table/t/index/GSI1",
        );
        let r = report(TEMPLATE, &log);
        assert!(
            r.text
                .contains("missing: dynamodb:PutItem on table/index/GSI1"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_secret_read_must_be_granted_on_the_secret_its_variable_names() {
        let template = TEMPLATE.replace(
            "KEYWARD_JWT_KEY_SECRET_ID: !Ref Secret",
            "KEYWARD_JWT_KEY_SECRET_ID: !Ref Other",
        );
        let r = report(&template, &full_log());
        assert!(
            r.text
                .contains("missing: secretsmanager:GetSecretValue on ref:Other"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("unused: secretsmanager:GetSecretValue on ref:Secret"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_function_the_runs_never_invoked_is_an_error_not_a_pass() {
        let log: String = full_log()
            .lines()
            .filter(|l| !l.contains("list-keys"))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = report(TEMPLATE, &log);
        assert_eq!(r.errors, 1, "{}", r.text);
        assert!(
            r.text
                .contains("list-keys (ListKeysFunction):\n  ERROR never invoked"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_function_granted_nothing_that_issued_nothing_passes_but_one_that_issued_fails() {
        let template = format!(
            "{TEMPLATE}  ConsoleFunction:\n    Type: AWS::Serverless::Function\n    \
             Properties:\n      CodeUri: ../target/lambda/console/bootstrap.zip\n"
        );
        let r = report(&template, &full_log());
        assert_eq!(r.errors, 0, "{}", r.text);
        assert!(
            r.text
                .contains("console (ConsoleFunction):\n  ok      no AWS action granted"),
            "{}",
            r.text
        );
        let log = full_log() + &line("console", "dynamodb:GetItem", "dynamodb:table/t");
        let r = report(&template, &log);
        assert_eq!(r.errors, 1, "{}", r.text);
        assert!(
            r.text.contains("missing: dynamodb:GetItem on table"),
            "{}",
            r.text
        );
    }

    #[test]
    fn an_unknown_sam_template_or_managed_policy_is_refused() {
        let t = TEMPLATE.replace("DynamoDBReadPolicy", "S3CrudPolicy");
        assert!(functions(&t).is_err());
        let t = TEMPLATE.replace(
            "- DynamoDBReadPolicy:\n            TableName: !Ref KeysTable",
            "- AmazonDynamoDBFullAccess",
        );
        assert!(functions(&t).is_err());
    }

    #[test]
    fn the_repository_template_parses() {
        let template = crate::util::repo_root().join("infra/template.yaml");
        let fs = functions(&std::fs::read_to_string(template).unwrap()).unwrap();
        assert!(
            fs.contains_key("create-key") && fs.contains_key("sync"),
            "{fs:?}"
        );
    }
}
