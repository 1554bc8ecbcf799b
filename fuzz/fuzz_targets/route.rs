//! Route rules (`METHOD /pattern => scope`, from configuration) and the route table's answer
//! for the method and normalised path of every proxied request.
//!
//! Input: UTF-8 text whose first line is a request (`METHOD /path`) and whose rest is a rule set.
//! Properties: parsing and matching never panic; the answer is the first matching rule's scope,
//! else the default; it does not depend on the method's or the path's ASCII case, nor on empty
//! segments; and a rule built from the request's own path matches the path it describes (with
//! `*` segments filled in and a trailing `**` filled with anything) and nothing shorter.
#![no_main]

use keyward_common::Query;
use keyward_common::route::{
    Access, NormalizedPath, RouteDefault, RouteRule, RouteTable, normalize_path, parse_rules,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (request, rules) = text.split_once('\n').unwrap_or((text, ""));
    let (method, raw_path) = request.split_once(' ').unwrap_or((request, "/"));

    if let (Ok(rules), Ok(path)) = (parse_rules(rules), normalize_path(raw_path)) {
        for default in [RouteDefault::AnyKey, RouteDefault::Deny] {
            let table = RouteTable {
                rules: rules.clone(),
                default,
            };
            answer_is_consistent(&table, method, raw_path, &path);
        }
    }
    a_rule_matches_the_path_it_describes(method, raw_path);
});

fn answer_is_consistent(table: &RouteTable, method: &str, raw: &str, path: &NormalizedPath) {
    let access = table.access(method, path);
    let expected = match table.rules.iter().find(|r| r.matches(method, path)) {
        Some(rule) => Access::Rule {
            query: rule.query(),
            cost: rule.cost(),
        },
        None if table.default == RouteDefault::Deny => Access::Deny,
        None => Access::AnyKey,
    };
    assert_eq!(access, expected);
    if let Access::Rule { query, cost } = access {
        assert_eq!(Query::parse(&query.to_string()).as_ref(), Ok(query));
        assert!(cost.is_none_or(|c| c <= 1000));
    }
    assert_eq!(
        table.access(&method.to_ascii_lowercase(), path),
        table.access(&method.to_ascii_uppercase(), path),
        "the method's case changed the answer"
    );
    for variant in [
        raw.to_ascii_uppercase(),
        raw.to_ascii_lowercase(),
        raw.replace('/', "//"),
        format!("{raw}/"),
    ] {
        if let Ok(other) = normalize_path(&variant) {
            assert_eq!(
                table.access(method, &other),
                access,
                "{raw:?} vs {variant:?}"
            );
        }
    }
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
    assert_eq!(rule.query(), &Query::name("fuzz.scope"));
    assert_eq!(rule.cost(), None);
    let normalized = normalize_path(pattern).expect("an accepted pattern is a valid path");
    let segments: Vec<&str> = normalized
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let open_ended = segments.last() == Some(&"**");
    let fixed = &segments[..segments.len() - usize::from(open_ended)];
    let concrete: Vec<&str> = fixed
        .iter()
        .map(|s| if *s == "*" { "filled" } else { s })
        .collect();
    let path = |segs: &[&str]| normalize_path(&format!("/{}", segs.join("/"))).unwrap();
    let request_method = if method == "*" { "PATCH" } else { method };
    assert!(
        rule.matches(request_method, &path(&concrete)),
        "{pattern} does not match itself"
    );
    let mut longer = concrete.clone();
    longer.push("extra");
    assert_eq!(rule.matches(request_method, &path(&longer)), open_ended);
    if let Some((_, shorter)) = concrete.split_last() {
        assert!(
            !rule.matches(request_method, &path(shorter)),
            "{pattern} matches less"
        );
    }
}
