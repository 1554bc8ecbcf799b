//! The edge proxy's route rules (`METHOD /path/pattern => query [cost N]`) and the path
//! normalisation they are matched on. The query is a permission query ([`crate::query`]): one
//! name, as before, or names joined by `AND` / `OR` with parentheses.
//!
//! A request path is first normalised by [`normalize_path`]: unreserved characters that were
//! percent-encoded are decoded, `.` and `..` segments are resolved, repeated `/` collapse, and
//! anything an origin could read two ways (an encoded `/`, a `\`, a `;` parameter, an encoded
//! dot segment, an encoded `%`, a control character) is refused. Rules are matched on that path
//! with ASCII case ignored (many origins route case-insensitively), and the proxy forwards that
//! same path, so the origin serves exactly what the rule judged.
//!
//! A pattern is matched segment by segment: `*` matches one segment, a trailing `**` matches
//! the rest of the path (including nothing). A method of `*` matches any method.

use std::fmt;

use crate::query::Query;

/// A request path in the normal form rules are matched on (see [`normalize_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// The path, starting with `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path is refused: each is a way for the edge and an origin to read one path differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with `/`")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the path has a `%` that is not followed by two hex digits")]
    BadPercent,
    /// `%2F`: some origins decode it into a separator.
    #[error("the path has an encoded `/` (%2F)")]
    EncodedSlash,
    /// `\` or `%5C`: some origins treat it as `/`.
    #[error("the path has a `\\` (or %5C)")]
    Backslash,
    /// `;` or `%3B`: path parameters that some origins strip from a segment.
    #[error("the path has a `;` (or %3B) parameter")]
    Semicolon,
    /// `%25`: a double encoding that an origin decoding twice reads differently.
    #[error("the path has an encoded `%` (%25)")]
    EncodedPercent,
    /// A `.` or `..` segment spelled with `%2E`.
    #[error("the path has a `.` or `..` segment spelled with %2E")]
    EncodedDotSegment,
    /// NUL or another control character, encoded or not.
    #[error("the path has a control character (such as NUL)")]
    ControlCharacter,
    /// A raw space or non-ASCII character (a URL parser would have percent-encoded it).
    #[error("the path has a character that must be percent-encoded")]
    Unencoded,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes one raw segment: unreserved characters are decoded, other encodings are kept with
/// upper-case hex. Returns the segment and whether it holds an encoded `.`.
fn decode_segment(raw: &[u8]) -> Result<(String, bool), PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut encoded_dot = false;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    raw.get(i + 1).copied().and_then(hex_value),
                    raw.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(PathError::BadPercent);
                };
                let v = (hi << 4) | lo;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    b';' => return Err(PathError::Semicolon),
                    b'%' => return Err(PathError::EncodedPercent),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    v if is_unreserved(v) => {
                        encoded_dot |= v == b'.';
                        out.push(char::from(v));
                    }
                    v => {
                        out.push('%');
                        out.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
                        out.push(char::from(HEX_UPPER[usize::from(v & 0xf)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            b' ' | 0x80..=0xff => return Err(PathError::Unencoded),
            b => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok((out, encoded_dot))
}

/// Normalises a request path as sent (percent-encoded, without query or fragment).
///
/// Percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded and other
/// encodings get upper-case hex; literal `.` and `..` segments are resolved as RFC 3986 §5.2.4
/// does (`..` never climbs above `/`); empty segments (`//`) collapse; a trailing `/` is kept.
/// Case is preserved: matching ignores it, and the origin gets the path as the client cased it.
///
/// # Errors
/// A [`PathError`] for every encoding an origin could read differently from the edge: `%2F`,
/// `\` or `%5C`, `;` or `%3B`, `%25`, a dot segment spelled with `%2E`, control characters
/// (NUL included) raw or encoded, a malformed `%`, raw spaces and non-ASCII, or a path that does
/// not start with `/`.
pub fn normalize_path(raw: &str) -> Result<NormalizedPath, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in rest.split('/') {
        let (segment, encoded_dot) = decode_segment(raw_segment.as_bytes())?;
        trailing_slash = true;
        match segment.as_str() {
            "." | ".." if encoded_dot => return Err(PathError::EncodedDotSegment),
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::with_capacity(raw.len());
    for s in &segments {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(NormalizedPath(path))
}

/// What a path needs when no rule matches it (`ROUTE_DEFAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteDefault {
    /// Any valid key may use it (`any_key`, the default).
    #[default]
    AnyKey,
    /// Nobody may: the proxy refuses it with 403 `route_denied` (`deny`).
    Deny,
}

impl RouteDefault {
    /// Parses `any_key` or `deny` (an empty value is `any_key`).
    ///
    /// # Errors
    /// [`RouteDefaultError`] for anything else.
    pub fn parse(text: &str) -> Result<Self, RouteDefaultError> {
        match text.trim() {
            "" | "any_key" => Ok(Self::AnyKey),
            "deny" => Ok(Self::Deny),
            _ => Err(RouteDefaultError),
        }
    }
}

/// A `ROUTE_DEFAULT` value that is neither `any_key` nor `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ROUTE_DEFAULT must be `any_key` or `deny`")]
pub struct RouteDefaultError;

/// Largest `cost N` of a rule (the verify API's `cost` bound).
pub const MAX_COST: u32 = 1_000;

/// One rule: requests matching `method` and `pattern` need a key whose permissions satisfy
/// `query`, and cost `cost` (the default, 1, when the rule names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    method: String,
    segments: Vec<String>,
    query: Query,
    cost: Option<u32>,
}

/// A rule that could not be parsed, named by its position and text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route rule {index} ({rule:?}) is invalid: {reason}")]
pub struct RouteRuleError {
    /// 1-based position in the rule list.
    pub index: usize,
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

const SHAPE: &str = "it must look like `GET /v1/things/* => things.read` or `POST /v1/sms => sms.send AND billing.read cost 5`";

/// Splits a trailing `cost N` off a rule's right-hand side.
fn split_cost(rhs: &str) -> Result<(&str, Option<u32>), String> {
    let rhs = rhs.trim();
    let Some((before, number)) = rhs.rsplit_once(char::is_whitespace) else {
        return Ok((rhs, None));
    };
    let before = before.trim_end();
    let Some(query) = before
        .strip_suffix("cost")
        .filter(|q| q.is_empty() || q.ends_with(char::is_whitespace) || q.ends_with(')'))
    else {
        return Ok((rhs, None));
    };
    match number.parse::<u32>() {
        Ok(n) if n <= MAX_COST && number.bytes().all(|b| b.is_ascii_digit()) => {
            Ok((query.trim(), Some(n)))
        }
        _ => Err(format!(
            "`cost {number}`: the cost must be a whole number from 0 to {MAX_COST}"
        )),
    }
}

impl RouteRule {
    /// Parses `METHOD /pattern => query [cost N]`. The pattern is normalised like a request
    /// path (so `%61` in a pattern means `a`); `*` is a whole segment, `**` only the last one.
    /// The query is a permission query ([`Query::parse`]); `cost N` (0–1000) is what an admitted
    /// request counts against the key's rate limit.
    ///
    /// # Errors
    /// The reason, as a sentence, for any other shape (for a query: its position and problem).
    pub fn parse(rule: &str) -> Result<Self, String> {
        let (lhs, rhs) = rule.split_once("=>").ok_or(SHAPE)?;
        let mut parts = lhs.split_whitespace();
        let (Some(method), Some(pattern), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SHAPE.to_owned());
        };
        if method != "*" && !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("the method {method:?} is not `*` or a method name"));
        }
        let (query_text, cost) = split_cost(rhs)?;
        let query = Query::parse(query_text)
            .map_err(|e| format!("the permission query after `=>` ({query_text:?}) {e}"))?;
        let normalized =
            normalize_path(pattern).map_err(|e| format!("the pattern {pattern:?}: {e}"))?;
        let segments: Vec<String> = normalized.segments().map(str::to_owned).collect();
        for (i, seg) in segments.iter().enumerate() {
            if seg == "**" && i + 1 != segments.len() {
                return Err("`**` may only be the last segment".to_owned());
            }
            if seg.contains('*') && seg != "*" && seg != "**" {
                return Err(format!(
                    "the segment {seg:?} mixes `*` with text; wildcards are whole segments"
                ));
            }
        }
        Ok(Self {
            method: method.to_ascii_uppercase(),
            segments,
            query,
            cost,
        })
    }

    /// Whether a request with `method` and the normalised `path` matches (ASCII case ignored).
    #[must_use]
    pub fn matches(&self, method: &str, path: &NormalizedPath) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let mut path = path.segments();
        for (i, seg) in self.segments.iter().enumerate() {
            if seg == "**" && i == self.segments.len() - 1 {
                return true;
            }
            match path.next() {
                Some(p) if seg == "*" || seg.eq_ignore_ascii_case(p) => {}
                _ => return false,
            }
        }
        path.next().is_none()
    }

    /// The permission query the rule requires.
    #[must_use]
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The rule's `cost N`, if it names one.
    #[must_use]
    pub fn cost(&self) -> Option<u32> {
        self.cost
    }
}

/// Parses rules separated by newlines or `;` (blank entries ignored).
///
/// # Errors
/// The first rule that does not parse, named by position and text.
pub fn parse_rules(text: &str) -> Result<Vec<RouteRule>, RouteRuleError> {
    text.split(['\n', ';'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .enumerate()
        .map(|(i, rule)| {
            RouteRule::parse(rule).map_err(|reason| RouteRuleError {
                index: i + 1,
                rule: rule.to_owned(),
                reason,
            })
        })
        .collect()
}

/// What a request needs to pass the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Any valid key.
    AnyKey,
    /// A valid key whose permissions satisfy the rule's query; an admitted request costs
    /// `cost` (the default when `None`).
    Rule {
        /// What the key must hold.
        query: &'a Query,
        /// The rule's cost, if it names one.
        cost: Option<u32>,
    },
    /// Nothing passes: no rule matched and the default is [`RouteDefault::Deny`].
    Deny,
}

/// The rules and the default: what every proxied request is judged by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    /// The rules, first match wins.
    pub rules: Vec<RouteRule>,
    /// What an unmatched path needs.
    pub default: RouteDefault,
}

impl RouteTable {
    /// What a request with `method` and the normalised `path` needs: the first matching rule's
    /// query and cost, else the default.
    #[must_use]
    pub fn access(&self, method: &str, path: &NormalizedPath) -> Access<'_> {
        match self.rules.iter().find(|r| r.matches(method, path)) {
            Some(rule) => Access::Rule {
                query: rule.query(),
                cost: rule.cost(),
            },
            None => match self.default {
                RouteDefault::AnyKey => Access::AnyKey,
                RouteDefault::Deny => Access::Deny,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(rules: &str) -> RouteTable {
        RouteTable {
            rules: parse_rules(rules).unwrap(),
            default: RouteDefault::AnyKey,
        }
    }

    /// What a request needs, owned: the rule's query as displayed and its cost.
    #[derive(Debug, PartialEq, Eq)]
    enum Needs {
        AnyKey,
        Deny,
        Rule(String, Option<u32>),
    }

    fn access(t: &RouteTable, method: &str, raw: &str) -> Needs {
        match t.access(method, &normalize_path(raw).unwrap()) {
            Access::Rule { query, cost } => Needs::Rule(query.to_string(), cost),
            Access::AnyKey => Needs::AnyKey,
            Access::Deny => Needs::Deny,
        }
    }

    /// A rule's needs for a one-name query without a cost.
    #[allow(non_snake_case)]
    fn Scope(name: &str) -> Needs {
        Needs::Rule(name.to_owned(), None)
    }

    #[test]
    fn a_rule_takes_a_query_and_a_cost() {
        let t = table(
            "POST /v1/sms => sms.send AND (billing.read OR admin) cost 5; GET /x => (a) cost 0; GET /y => cost",
        );
        assert_eq!(
            access(&t, "POST", "/v1/sms"),
            Needs::Rule("sms.send AND (billing.read OR admin)".into(), Some(5))
        );
        assert_eq!(access(&t, "GET", "/x"), Needs::Rule("a".into(), Some(0)));
        assert_eq!(access(&t, "GET", "/y"), Scope("cost"));
        for (bad, needle) in [
            ("GET /a => a AND", "position 5"),
            ("GET /a => (a OR b", "never closed"),
            ("GET /a => a cost 1001", "0 to 1000"),
            ("GET /a => a cost -1", "0 to 1000"),
            ("GET /a => cost 5", "empty"),
        ] {
            let err = parse_rules(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn the_first_matching_rule_gives_the_scope() {
        let t = table(
            "GET /v1/items/* => items.read; * /v1/items/** => items.write\nPOST /admin => admin",
        );
        assert_eq!(access(&t, "GET", "/v1/items/42"), Scope("items.read"));
        assert_eq!(access(&t, "DELETE", "/v1/items/42/x"), Scope("items.write"));
        assert_eq!(access(&t, "get", "/v1/items"), Scope("items.write"));
        assert_eq!(access(&t, "POST", "/admin"), Scope("admin"));
        assert_eq!(access(&t, "POST", "/admin/x"), Needs::AnyKey);
        assert_eq!(access(&t, "GET", "/other"), Needs::AnyKey);
    }

    #[test]
    fn encoded_and_cased_spellings_of_a_protected_path_match_its_rule() {
        let t = table("* /admin/** => admin");
        for raw in [
            "/admin/x",
            "/%61dmin/x",
            "/%41DMIN/x",
            "/ADMIN/x",
            "/Admin",
            "//admin//x",
            "/x/../admin/x",
            "/./admin/x",
            "/admin/x/",
            "/%61%64%6d%69%6e",
        ] {
            assert_eq!(access(&t, "GET", raw), Scope("admin"), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused_with_their_reason() {
        for (raw, err) in [
            ("/admin%2Fx", PathError::EncodedSlash),
            ("/admin%2fx", PathError::EncodedSlash),
            ("/admin\\x", PathError::Backslash),
            ("/admin%5cx", PathError::Backslash),
            ("/admin;x/y", PathError::Semicolon),
            ("/admin%3Bx/y", PathError::Semicolon),
            ("/%2e%2e/admin", PathError::EncodedDotSegment),
            ("/x/.%2E/admin", PathError::EncodedDotSegment),
            ("/x/%2E/admin", PathError::EncodedDotSegment),
            ("/admin%00", PathError::ControlCharacter),
            ("/admin\0", PathError::ControlCharacter),
            ("/admin%0a", PathError::ControlCharacter),
            ("/admin%252Fx", PathError::EncodedPercent),
            ("/admin%2", PathError::BadPercent),
            ("/admin%zz", PathError::BadPercent),
            ("/ad min", PathError::Unencoded),
            ("/café", PathError::Unencoded),
            ("admin", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ] {
            assert_eq!(normalize_path(raw), Err(err), "{raw:?}");
        }
    }

    #[test]
    fn normalisation_decodes_unreserved_only_and_keeps_case_and_trailing_slash() {
        for (raw, normal) in [
            ("/", "/"),
            ("/%7Euser/a%2Db", "/~user/a-b"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/Items/", "/Items/"),
            ("/a/..", "/"),
            ("/../..", "/"),
            ("/a/b/./c/../d", "/a/b/d"),
            ("/file%2Ejson", "/file.json"),
            ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
        ] {
            assert_eq!(normalize_path(raw).unwrap().as_str(), normal, "{raw}");
        }
    }

    #[test]
    fn the_default_applies_to_unmatched_paths_only() {
        let mut t = table("* /public/** => public.read");
        t.default = RouteDefault::Deny;
        assert_eq!(access(&t, "GET", "/other"), Needs::Deny);
        assert_eq!(access(&t, "GET", "/PUBLIC/x"), Scope("public.read"));
        assert_eq!(RouteDefault::parse("deny"), Ok(RouteDefault::Deny));
        assert_eq!(RouteDefault::parse(""), Ok(RouteDefault::AnyKey));
        assert_eq!(RouteDefault::parse("any_key"), Ok(RouteDefault::AnyKey));
        assert_eq!(RouteDefault::parse("allow"), Err(RouteDefaultError));
    }

    #[test]
    fn malformed_rules_are_refused_naming_the_rule() {
        for bad in [
            "GET /x",
            "GET x => s",
            "/x => s",
            "GET /x => ",
            "GET /x y => s",
            "GET /a/**/b => s",
            "GET /a* => s",
            "GET /a%2Fb => s",
            "GET /a%3Bb => s",
            "G3T /a => s",
        ] {
            let err = parse_rules(&format!("GET /ok => fine; {bad}")).unwrap_err();
            assert_eq!(err.index, 2, "{bad}");
            assert_eq!(err.rule, bad.trim());
            assert!(err.to_string().contains(bad.trim()), "{err}");
        }
    }

    fn path_chars() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9/._~%;\\\\:@!$&'()*+,=-]{0,40}")
            .unwrap()
            .prop_map(|s| format!("/{s}"))
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent_and_never_leaves_an_ambiguity(raw in path_chars()) {
            if let Ok(p) = normalize_path(&raw) {
                let again = normalize_path(p.as_str()).unwrap();
                prop_assert_eq!(&again, &p);
                let s = p.as_str();
                prop_assert!(!s.contains("//"));
                prop_assert!(!s.contains(';') && !s.contains('\\'));
                prop_assert!(!s.split('/').any(|seg| seg == "." || seg == ".."));
                let lower = s.to_ascii_lowercase();
                prop_assert!(!lower.contains("%2f") && !lower.contains("%25"));
            }
        }

        #[test]
        fn a_protected_prefix_cannot_be_dodged_by_encoding(rest in "[a-z0-9/]{0,12}", mask in any::<u8>()) {
            // Any mix of cases and percent-encodings of `admin` is still under `/admin/**`.
            let t = table("* /admin/** => admin");
            let spelled: String = "admin".bytes().enumerate().map(|(i, b)| {
                let b = if mask & (1 << i) != 0 { b.to_ascii_uppercase() } else { b };
                if mask & (1 << (i + 3)) != 0 { format!("%{b:02X}") } else { char::from(b).to_string() }
            }).collect();
            let raw = format!("/{spelled}/{rest}");
            prop_assert_eq!(access(&t, "GET", &raw), Scope("admin"));
        }
    }
}
