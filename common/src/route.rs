//! Route → required-scope rules for the edge proxy (`METHOD /path/pattern => scope`).
//!
//! A pattern is matched segment by segment: `*` matches one segment, a trailing `**` matches
//! the rest of the path (including nothing). A method of `*` matches any method.

/// One rule: requests matching `method` and `pattern` need `scope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    method: String,
    segments: Vec<String>,
    scope: String,
}

/// A rule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route rule {rule:?} must look like `GET /v1/things/* => things.read`")]
pub struct RouteRuleError {
    rule: String,
}

impl RouteRule {
    /// Parses `METHOD /pattern => scope`.
    ///
    /// # Errors
    /// [`RouteRuleError`] for any other shape.
    pub fn parse(rule: &str) -> Result<Self, RouteRuleError> {
        let err = || RouteRuleError {
            rule: rule.to_owned(),
        };
        let (lhs, scope) = rule.split_once("=>").ok_or_else(err)?;
        let mut parts = lhs.split_whitespace();
        let (Some(method), Some(pattern), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err());
        };
        let scope = scope.trim();
        if !pattern.starts_with('/') || scope.is_empty() || scope.contains(char::is_whitespace) {
            return Err(err());
        }
        Ok(Self {
            method: method.to_ascii_uppercase(),
            segments: split(pattern).map(str::to_owned).collect(),
            scope: scope.to_owned(),
        })
    }

    /// Whether a request with `method` and `path` matches.
    #[must_use]
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let mut path = split(path);
        for (i, seg) in self.segments.iter().enumerate() {
            if seg == "**" && i == self.segments.len() - 1 {
                return true;
            }
            match path.next() {
                Some(p) if seg == "*" || seg == p => {}
                _ => return false,
            }
        }
        path.next().is_none()
    }

    /// The scope the rule requires.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Parses rules separated by newlines or `;` (blank entries ignored).
///
/// # Errors
/// The first rule that does not parse.
pub fn parse_rules(text: &str) -> Result<Vec<RouteRule>, RouteRuleError> {
    text.split(['\n', ';'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(RouteRule::parse)
        .collect()
}

/// The scope required by the first matching rule, if any.
#[must_use]
pub fn required_scope<'a>(rules: &'a [RouteRule], method: &str, path: &str) -> Option<&'a str> {
    rules
        .iter()
        .find(|r| r.matches(method, path))
        .map(RouteRule::scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_gives_the_scope() {
        let rules = parse_rules(
            "GET /v1/items/* => items.read; * /v1/items/** => items.write\nPOST /admin => admin",
        )
        .unwrap();
        assert_eq!(
            required_scope(&rules, "GET", "/v1/items/42"),
            Some("items.read")
        );
        assert_eq!(
            required_scope(&rules, "DELETE", "/v1/items/42/x"),
            Some("items.write")
        );
        assert_eq!(
            required_scope(&rules, "get", "/v1/items"),
            Some("items.write")
        );
        assert_eq!(required_scope(&rules, "POST", "/admin"), Some("admin"));
        assert_eq!(required_scope(&rules, "POST", "/admin/x"), None);
        assert_eq!(required_scope(&rules, "GET", "/other"), None);
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "GET /x",
            "GET x => s",
            "/x => s",
            "GET /x => ",
            "GET /x y => s",
        ] {
            assert!(RouteRule::parse(bad).is_err(), "{bad}");
        }
    }
}
