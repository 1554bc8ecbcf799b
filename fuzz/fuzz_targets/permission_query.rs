//! Permission queries (`sms.send AND (billing.read OR admin)`): the verify API's `permission`
//! and the right-hand side of every route rule.
//!
//! Properties: nothing panics, whatever the input (deep parentheses and huge inputs included);
//! an error's position is inside the input; an accepted query is at most 1,000 bytes, nests at most
//! 16 parentheses deep and so at most 35 tree levels; its display (when within the length limit) parses back to the same query;
//! evaluation agrees with a direct
//! reading of the query over a few grant sets, and a single name is exactly the scope check.
#![no_main]

use keyward_common::query::{MAX_DEPTH, MAX_QUERY_LEN, Query};
use keyward_common::verify::scope_covers;
use libfuzzer_sys::fuzz_target;

const GRANTS: &[&[&str]] = &[
    &[],
    &["*"],
    &["a", "b.*"],
    &["api.*", "sms.send"],
    &["billing.read", "admin", "x:y"],
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Query::parse(&text) {
        Err(e) => assert!(e.position <= text.len().max(MAX_QUERY_LEN), "{e}"),
        Ok(query) => {
            assert!(text.len() <= MAX_QUERY_LEN);
            // Each parenthesis level may hold an OR of ANDs: two tree levels per level, plus
            // the names (found by this target: the bound is on parentheses, not tree depth).
            assert!(depth(&query) <= 2 * (MAX_DEPTH + 1) + 1);
            let shown = query.to_string();
            // The display spells every group out, so a query near the length limit can show
            // longer than the limit (found by this target): the round trip holds within it.
            if shown.len() <= MAX_QUERY_LEN {
                assert_eq!(Query::parse(&shown).as_ref(), Ok(&query), "{shown}");
            }
            for grants in GRANTS {
                assert_eq!(query.allows(grants), direct(&query, grants), "{shown}");
            }
            if let Query::Name(name) = &query {
                for grants in GRANTS {
                    let scope = grants.iter().any(|g| scope_covers(g, name));
                    assert_eq!(query.allows(grants), scope);
                }
            }
        }
    }
});

/// Nesting of compound parts (a name is depth 1).
fn depth(q: &Query) -> usize {
    match q {
        Query::Name(_) => 1,
        Query::All(p) | Query::Any(p) => {
            assert!(p.len() >= 2, "a compound part has two or more parts");
            1 + p.iter().map(depth).max().unwrap_or(0)
        }
    }
}

/// The query's meaning, written out without `Query::allows`.
fn direct(q: &Query, grants: &[&str]) -> bool {
    match q {
        Query::Name(n) => grants.iter().any(|g| scope_covers(g, n)),
        Query::All(p) => p.iter().fold(true, |acc, x| acc & direct(x, grants)),
        Query::Any(p) => p.iter().fold(false, |acc, x| acc | direct(x, grants)),
    }
}
