//! Permission queries: `sms.send AND (billing.read OR admin)`, parsed once and evaluated against
//! a key's effective permissions with [`crate::verify::scope_covers`].
//!
//! Grammar (`AND` binds tighter than `OR`; parentheses group):
//!
//! ```text
//! query := and ("OR" and)*
//! and   := atom ("AND" atom)*
//! atom  := NAME | "(" query ")"
//! NAME  := [A-Za-z0-9*][A-Za-z0-9._:*-]*   (1–64 bytes: the rule permissions are granted by)
//! ```
//!
//! The keywords are upper-case only, so a permission may be called `and`; a lower-case `and` or
//! `or` where a keyword is expected is an error that says so, never read as a name. Names and
//! keywords are separated by whitespace or parentheses. A query is at most [`MAX_QUERY_LEN`]
//! bytes and nests at most [`MAX_DEPTH`] parentheses deep, so neither parsing nor evaluating it
//! can exhaust the stack.

use std::fmt;

use crate::verify::scope_covers;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 1_000;
/// Deepest parenthesis nesting accepted.
pub const MAX_DEPTH: usize = 16;
/// Longest permission name (the control plane's scope rule).
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` has the shape of a permission (or a pattern of them): 1–64 bytes of
/// `A-Z a-z 0-9 . _ : * -`, starting with a letter, a digit or `*`.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'*')
        && name.bytes().all(is_name_byte)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:*-".contains(&b)
}

/// A parsed permission query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    /// One permission the key must hold (exactly or through a wildcard grant).
    Name(String),
    /// Every part must hold (two or more).
    All(Vec<Query>),
    /// At least one part must hold (two or more).
    Any(Vec<Query>),
}

/// Why a query does not parse: where (a byte offset into the query) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct QueryError {
    /// Byte offset of the problem (the query's length when it ended too early).
    pub position: usize,
    /// What is wrong, as a sentence fragment a caller can act on.
    pub message: String,
}

impl Query {
    /// Parses a query.
    ///
    /// # Errors
    /// [`QueryError`] with the position and reason for an empty or over-long query, an invalid
    /// name, a missing operand, a keyword in the wrong case, unbalanced parentheses, or nesting
    /// deeper than [`MAX_DEPTH`].
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        if text.len() > MAX_QUERY_LEN {
            return Err(QueryError {
                position: MAX_QUERY_LEN,
                message: format!("the query is longer than {MAX_QUERY_LEN} bytes"),
            });
        }
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
            end: text.len(),
        };
        if parser.tokens.is_empty() {
            return Err(QueryError {
                position: 0,
                message: "the query is empty; name at least one permission".into(),
            });
        }
        let query = parser.or(0)?;
        match parser.peek() {
            None => Ok(query),
            Some((pos, Token::Close)) => Err(QueryError {
                position: pos,
                message: "`)` without a matching `(`".into(),
            }),
            Some((pos, tok)) => Err(QueryError {
                position: pos,
                message: format!("expected AND, OR or the end, found {}", tok.describe()),
            }),
        }
    }

    /// A query of one permission name (the verify API's `scope`, taken as written).
    #[must_use]
    pub fn name(name: impl Into<String>) -> Self {
        Self::Name(name.into())
    }

    /// Whether permissions `granted` satisfy the query (a name holds when any grant covers it).
    #[must_use]
    pub fn allows<S: AsRef<str>>(&self, granted: &[S]) -> bool {
        self.holds(&|name| granted.iter().any(|g| scope_covers(g.as_ref(), name)))
    }

    /// Evaluates the query with `has` deciding each name.
    pub fn holds(&self, has: &impl Fn(&str) -> bool) -> bool {
        match self {
            Self::Name(n) => has(n),
            Self::All(parts) => parts.iter().all(|p| p.holds(has)),
            Self::Any(parts) => parts.iter().any(|p| p.holds(has)),
        }
    }
}

impl fmt::Display for Query {
    /// The query with single spaces and parentheses around every compound part except an AND
    /// inside an OR (AND binds tighter, so those were never needed and a query could not nest
    /// deeper shown than it was written): it parses back to the same query. It can be longer
    /// than the text it was parsed from (`(a OR b)AND c` shows as `(a OR b) AND c`), so near
    /// [`MAX_QUERY_LEN`] it may no longer parse.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parts, op, is_any) = match self {
            Self::Name(n) => return f.write_str(n),
            Self::All(parts) => (parts, " AND ", false),
            Self::Any(parts) => (parts, " OR ", true),
        };
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                f.write_str(op)?;
            }
            match part {
                Self::Name(n) => f.write_str(n)?,
                Self::All(_) if is_any => write!(f, "{part}")?,
                compound => write!(f, "({compound})")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Name(&'a str),
    And,
    Or,
    Open,
    Close,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Self::Name(n) => format!("the name `{n}`"),
            Self::And => "AND".into(),
            Self::Or => "OR".into(),
            Self::Open => "`(`".into(),
            Self::Close => "`)`".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token<'_>)>, QueryError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                tokens.push((i, Token::Open));
                i += 1;
            }
            b')' => {
                tokens.push((i, Token::Close));
                i += 1;
            }
            b if is_name_byte(b) => {
                let start = i;
                while i < bytes.len() && is_name_byte(bytes[i]) {
                    i += 1;
                }
                // Only ASCII bytes were consumed, so these are char boundaries.
                let word = &text[start..i];
                let token = match word {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    _ if !valid_name(word) => {
                        return Err(QueryError {
                            position: start,
                            message: format!(
                                "`{}` is not a permission name (1-{MAX_NAME_LEN} characters \
                                 A-Z a-z 0-9 . _ : * -, starting with a letter, digit or `*`)",
                                clip(word)
                            ),
                        });
                    }
                    _ => Token::Name(word),
                };
                tokens.push((start, token));
            }
            _ => {
                let c = text[i..].chars().next().unwrap_or('?');
                return Err(QueryError {
                    position: i,
                    message: format!(
                        "unexpected character {c:?}; a query has names, AND, OR and parentheses"
                    ),
                });
            }
        }
    }
    Ok(tokens)
}

/// The first 64 bytes of an over-long word, for an error message.
fn clip(word: &str) -> &str {
    &word[..word.len().min(MAX_NAME_LEN)]
}

struct Parser<'a> {
    tokens: Vec<(usize, Token<'a>)>,
    at: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<(usize, Token<'a>)> {
        self.tokens.get(self.at).cloned()
    }

    fn or(&mut self, depth: usize) -> Result<Query, QueryError> {
        self.joined(depth, &Token::Or, Self::and, Query::Any)
    }

    fn and(&mut self, depth: usize) -> Result<Query, QueryError> {
        self.joined(depth, &Token::And, Self::atom, Query::All)
    }

    /// `part (keyword part)*`: one part alone, or all of them wrapped by `wrap`.
    fn joined(
        &mut self,
        depth: usize,
        keyword: &Token<'_>,
        part: fn(&mut Self, usize) -> Result<Query, QueryError>,
        wrap: fn(Vec<Query>) -> Query,
    ) -> Result<Query, QueryError> {
        let mut parts = vec![part(self, depth)?];
        while self.peek().is_some_and(|(_, t)| &t == keyword) {
            self.at += 1;
            parts.push(part(self, depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.swap_remove(0)
        } else {
            wrap(parts)
        })
    }

    fn atom(&mut self, depth: usize) -> Result<Query, QueryError> {
        let Some((pos, token)) = self.peek() else {
            return Err(QueryError {
                position: self.end,
                message: "the query ends where a permission name or `(` is expected".into(),
            });
        };
        self.at += 1;
        match token {
            Token::Name(n) => {
                if let Some((next, Token::Name(word))) = self.peek() {
                    let hint =
                        if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
                            format!(
                                "; keywords are upper-case: write {}",
                                word.to_ascii_uppercase()
                            )
                        } else {
                            String::new()
                        };
                    return Err(QueryError {
                        position: next,
                        message: format!("expected AND or OR between `{n}` and `{word}`{hint}"),
                    });
                }
                Ok(Query::Name(n.to_owned()))
            }
            Token::Open => {
                if depth >= MAX_DEPTH {
                    return Err(QueryError {
                        position: pos,
                        message: format!("parentheses nest deeper than {MAX_DEPTH} levels"),
                    });
                }
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some((_, Token::Close)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    Some((p, tok)) => Err(QueryError {
                        position: p,
                        message: format!("expected AND, OR or `)`, found {}", tok.describe()),
                    }),
                    None => Err(QueryError {
                        position: pos,
                        message: "`(` is never closed".into(),
                    }),
                }
            }
            other => Err(QueryError {
                position: pos,
                message: format!(
                    "expected a permission name or `(`, found {}",
                    other.describe()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str) -> Query {
        Query::parse(text).unwrap()
    }

    fn n(s: &str) -> Query {
        Query::name(s)
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            q("a OR b AND c"),
            Query::Any(vec![n("a"), Query::All(vec![n("b"), n("c")])])
        );
        assert_eq!(
            q("a AND b OR c"),
            Query::Any(vec![Query::All(vec![n("a"), n("b")]), n("c")])
        );
        assert_eq!(
            q("sms.send AND (billing.read OR admin)"),
            Query::All(vec![
                n("sms.send"),
                Query::Any(vec![n("billing.read"), n("admin")])
            ])
        );
        assert_eq!(q("((a))"), n("a"));
        assert_eq!(q("a AND b AND c"), Query::All(vec![n("a"), n("b"), n("c")]));
    }

    #[test]
    fn evaluation_uses_wildcards_and_keeps_management_out_of_a_bare_star() {
        let granted = ["sms.*", "read"];
        assert!(q("sms.send AND read").allows(&granted));
        assert!(!q("sms.send AND billing.read").allows(&granted));
        assert!(q("billing.read OR sms.send").allows(&granted));
        assert!(q("anything").allows(&["*"]));
        assert!(!q("api.key.create OR api.key.view").allows(&["*"]));
        assert!(q("api.key.create").allows(&["api.*"]));
        assert!(!q("a").allows::<&str>(&[]));
    }

    #[test]
    fn errors_say_where_and_what() {
        for (text, position, needle) in [
            ("", 0, "empty"),
            ("   ", 0, "empty"),
            ("(a OR b", 0, "never closed"),
            ("a OR b)", 6, "without a matching"),
            ("a AND", 5, "ends"),
            ("AND a", 0, "found AND"),
            ("a b", 2, "expected AND or OR"),
            ("a and b", 2, "upper-case"),
            ("a OR ()", 6, "found `)`"),
            ("a & b", 2, "unexpected character"),
            ("a OR .b", 5, "not a permission name"),
            ("a OR sms.send€", 13, "unexpected character"),
        ] {
            let err = Query::parse(text).unwrap_err();
            assert_eq!(err.position, position, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn length_and_depth_are_limited() {
        let deep_ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(q(&deep_ok), n("a"));
        let too_deep = format!(
            "{}a{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let err = Query::parse(&too_deep).unwrap_err();
        assert!(err.message.contains("deeper"), "{err}");
        assert_eq!(err.position, MAX_DEPTH);
        let long = vec!["a"; MAX_QUERY_LEN].join(" OR ");
        assert!(Query::parse(&long).unwrap_err().message.contains("longer"));
        let huge = "(".repeat(1_000_000);
        assert!(Query::parse(&huge).is_err());
        assert!(Query::parse(&"x".repeat(65)).is_err());
        assert_eq!(q(&"x".repeat(64)), n(&"x".repeat(64)));
    }

    #[test]
    fn display_parenthesises_only_what_precedence_needs() {
        assert_eq!(q("a OR (b AND c)").to_string(), "a OR b AND c");
        assert_eq!(q("(a OR b) AND c").to_string(), "(a OR b) AND c");
        assert_eq!(q(" a ").to_string(), "a");
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]",
            "[a-c]\\.[a-c*]",
            Just("*".to_owned()),
            Just("api.key.create".to_owned()),
            Just("api.*".to_owned()),
        ]
    }

    fn query() -> impl Strategy<Value = Query> {
        name()
            .prop_map(Query::Name)
            .prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 2..4).prop_map(Query::All),
                    proptest::collection::vec(inner, 2..4).prop_map(Query::Any),
                ]
            })
    }

    fn grants() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(name(), 0..4)
    }

    proptest! {
        #[test]
        fn display_parses_back_to_the_same_query(query in query()) {
            prop_assert_eq!(Query::parse(&query.to_string()).unwrap(), query);
        }

        #[test]
        fn a_single_name_is_the_scope_check(name in name(), granted in grants()) {
            let expected = granted.iter().any(|g| scope_covers(g, &name));
            prop_assert_eq!(Query::parse(&name).unwrap().allows(&granted), expected);
        }

        #[test]
        fn and_binds_tighter_than_or_in_evaluation(
            a in name(), b in name(), c in name(), granted in grants()
        ) {
            let has = |x: &str| granted.iter().any(|g| scope_covers(g, x));
            let (ha, hb, hc) = (has(&a), has(&b), has(&c));
            prop_assert_eq!(q(&format!("{a} OR {b} AND {c}")).allows(&granted), ha || (hb && hc));
            prop_assert_eq!(q(&format!("{a} AND {b} OR {c}")).allows(&granted), (ha && hb) || hc);
            prop_assert_eq!(q(&format!("{a} AND ({b} OR {c})")).allows(&granted), ha && (hb || hc));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[a-zA-Z()\\. *ANDOR\t€-]{0,200}") {
            if let Ok(query) = Query::parse(&text) {
                prop_assert_eq!(Query::parse(&query.to_string()).unwrap(), query);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = Query::parse(&text) {
                prop_assert!(e.position <= text.len());
            }
        }
    }
}
