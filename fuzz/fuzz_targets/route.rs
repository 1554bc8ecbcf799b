//! Route rules (`METHOD /pattern => scope`, from configuration) and their matching against the
//! method and path of every proxied request.
//!
//! Input: UTF-8 text whose first line is a request (`METHOD /path`) and whose rest is a rule set.
//! Properties: parsing and matching never panic; the answer does not depend on the method's
//! case or on empty path segments (`//`, a trailing `/`); `required_scope` is the first matching
//! rule's scope; and a rule built from the request's own path matches the path it describes
//! (with `*` segments filled in and a trailing `**` filled with anything).
#![no_main]

use keyward_common::route::{RouteRule, parse_rules, required_scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (request, rules) = text.split_once('\n').unwrap_or((text, ""));
    let (method, path) = request.split_once(' ').unwrap_or((request, "/"));

    if let Ok(rules) = parse_rules(rules) {
        matching_is_consistent(&rules, method, path);
    }
    a_rule_matches_the_path_it_describes(method, path);
});

fn matching_is_consistent(rules: &[RouteRule], method: &str, path: &str) {
    let scope = required_scope(rules, method, path);
    let first = rules.iter().find(|r| r.matches(method, path));
    assert_eq!(scope, first.map(RouteRule::scope));
    if let Some(scope) = scope {
        assert!(!scope.is_empty() && !scope.contains(char::is_whitespace));
    }
    assert_eq!(
        required_scope(rules, &method.to_ascii_lowercase(), path),
        required_scope(rules, &method.to_ascii_uppercase(), path),
        "the method's case changed the answer"
    );
    let doubled = path.replace('/', "//");
    assert_eq!(
        required_scope(rules, method, &doubled),
        scope,
        "`//` changed the answer"
    );
    let trailing = format!("{path}/");
    assert_eq!(
        required_scope(rules, method, &trailing),
        scope,
        "a trailing `/` changed the answer"
    );
}

fn a_rule_matches_the_path_it_describes(method: &str, pattern: &str) {
    // A rule's method and pattern are single words (any Unicode whitespace separates them).
    if [method, pattern]
        .iter()
        .any(|w| w.is_empty() || w.contains(char::is_whitespace))
    {
        return;
    }
    let Ok(rule) = RouteRule::parse(&format!("{method} {pattern} => fuzz.scope")) else {
        return;
    };
    assert_eq!(rule.scope(), "fuzz.scope");
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let open_ended = segments.last() == Some(&"**");
    let fixed = if open_ended {
        &segments[..segments.len() - 1]
    } else {
        &segments[..]
    };
    let concrete: Vec<&str> = fixed
        .iter()
        .map(|s| if *s == "*" { "filled" } else { s })
        .collect();
    let path = format!("/{}", concrete.join("/"));
    let request_method = if method == "*" { "PATCH" } else { method };
    assert!(
        rule.matches(request_method, &path),
        "{pattern} does not match {path}"
    );
    let longer = format!("{path}/extra");
    assert_eq!(
        rule.matches(request_method, &longer),
        open_ended,
        "one more segment after {pattern}"
    );
    if !concrete.is_empty() {
        let shorter = format!("/{}", concrete[..concrete.len() - 1].join("/"));
        assert!(
            !rule.matches(request_method, &shorter),
            "{pattern} matches {shorter}"
        );
    }
}
