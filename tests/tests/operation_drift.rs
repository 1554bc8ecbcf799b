//! The template's HTTP API routes are the operation table's rows: every `HttpApi` event of every
//! function in `infra/template.yaml` is a row (same method, path and function), and every row is
//! an event. Adding an endpoint to one and not the other fails here.
//!
//! Run: `cargo test -p keyward-tests --test operation_drift`.

use std::collections::BTreeSet;

use keyward_functions::operation::OPERATIONS;
use keyward_tests::table::workspace_root;
use serde_yaml::Value;

/// (method, path, function) of every `HttpApi` event in the template. The function is the
/// binary whose zip the resource's `CodeUri` names (`../target/lambda/<function>/bootstrap.zip`).
fn template_routes() -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap_or("?");
        let code_uri = resource["Properties"]["CodeUri"].as_str().unwrap_or("");
        let function = code_uri
            .strip_prefix("../target/lambda/")
            .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
            .unwrap_or_else(|| panic!("{id}: CodeUri {code_uri:?} names no function zip"));
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let props = &event["Properties"];
            out.insert((
                props["Method"].as_str().unwrap().to_ascii_uppercase(),
                props["Path"].as_str().unwrap().to_owned(),
                function.to_owned(),
            ));
        }
    }
    out
}

#[test]
fn template_http_api_events_are_exactly_the_operation_tables_rows() {
    let table: BTreeSet<(String, String, String)> = OPERATIONS
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                r.path.to_owned(),
                r.function.to_owned(),
            )
        })
        .collect();
    let template = template_routes();
    let missing: Vec<_> = table.difference(&template).collect();
    let extra: Vec<_> = template.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "rows without a template route: {missing:?}; template routes without a row: {extra:?}"
    );
}

#[test]
fn every_function_of_the_table_is_a_binary_of_the_functions_crate() {
    let manifest = std::fs::read_to_string(workspace_root().join("functions/Cargo.toml")).unwrap();
    for function in keyward_functions::operation::functions() {
        assert!(
            manifest.contains(&format!("name = \"{function}\"")),
            "functions/Cargo.toml has no [[bin]] named {function}"
        );
    }
}
