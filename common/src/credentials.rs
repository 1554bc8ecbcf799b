//! Reading credentials from request headers: `Authorization: Bearer <token>` and
//! `X-API-Key: <key>`. Pure parsers of untrusted input, shared by the edge and the control plane.

use crate::key::MAX_PRESENTED_LEN;

/// Where the key came from, so the proxy strips exactly the headers that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The key text, not yet checked (`None` when the request carries no key).
    pub key: Option<String>,
    /// Whether `Authorization` carried the key (and must not reach the origin).
    pub from_authorization: bool,
    /// Whether the two headers disagree: refused as malformed.
    pub conflicting: bool,
}

/// Reads the key from the two header values (`authorization`, `x-api-key`).
///
/// An `Authorization` header with another scheme (e.g. `Basic`) is not a key and is left for the
/// origin. Values longer than any key of any format are cut to `MAX_PRESENTED_LEN + 1` so a
/// huge header is never copied around; the parser then refuses them as too long.
#[must_use]
pub fn extract(authorization: Option<&str>, x_api_key: Option<&str>) -> Presented {
    let bearer = authorization.and_then(bearer_token).map(clip);
    let header = x_api_key.map(str::trim).map(clip);
    let conflicting = matches!((&bearer, &header), (Some(a), Some(b)) if a != b);
    Presented {
        from_authorization: bearer.is_some(),
        key: bearer.or(header),
        conflicting,
    }
}

/// The token of an `Authorization` header value using the `Bearer` scheme (case-insensitive,
/// surrounding spaces trimmed), or `None` for another scheme or an empty token.
#[must_use]
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Most bytes a clipped value keeps: one past the longest key, plus the rest of a character cut
/// there.
pub const MAX_CLIPPED_LEN: usize = MAX_PRESENTED_LEN + 4;

fn clip(value: &str) -> String {
    // Rounded up to a character boundary, never down: a clipped value is then still too long or
    // not ASCII, never a shorter key (256 characters of an imported key and then an `é` must not
    // verify as that key).
    let mut end = value.len().min(MAX_PRESENTED_LEN + 1);
    while !value.is_char_boundary(end) {
        end += 1;
    }
    value[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_the_key_and_is_marked_for_stripping() {
        let p = extract(Some("Bearer kw_abc"), None);
        assert_eq!(p.key.as_deref(), Some("kw_abc"));
        assert!(p.from_authorization);
        assert!(!p.conflicting);
    }

    #[test]
    fn x_api_key_is_used_when_authorization_is_another_scheme() {
        let p = extract(Some("Basic dXNlcjpwYXNz"), Some("kw_abc"));
        assert_eq!(p.key.as_deref(), Some("kw_abc"));
        assert!(!p.from_authorization);
    }

    #[test]
    fn two_different_keys_conflict_and_two_equal_ones_do_not() {
        assert!(extract(Some("bearer kw_a"), Some("kw_b")).conflicting);
        assert!(!extract(Some("bearer kw_a"), Some("kw_a")).conflicting);
    }

    #[test]
    fn a_request_without_a_key_has_none() {
        assert_eq!(extract(None, None).key, None);
        assert_eq!(extract(Some("Bearer "), None).key, None);
    }

    #[test]
    fn a_key_of_another_format_is_kept_whole() {
        let long = "y".repeat(256);
        assert_eq!(
            extract(Some(&format!("Bearer {long}")), None).key,
            Some(long)
        );
    }

    #[test]
    fn huge_values_are_clipped_but_still_too_long() {
        let p = extract(None, Some(&"é".repeat(10_000)));
        let key = p.key.unwrap();
        assert!(key.len() <= MAX_CLIPPED_LEN);
        assert!(crate::PresentedKey::parse_any(&key).is_err());
        let cut_in_a_char = format!("{}é and more", "k".repeat(MAX_PRESENTED_LEN));
        let key = extract(None, Some(&cut_in_a_char)).key.unwrap();
        assert_eq!(key.len(), MAX_PRESENTED_LEN + 2);
        assert!(crate::PresentedKey::parse_any(&key).is_err());
        let ascii = extract(None, Some(&"x".repeat(10_000))).key.unwrap();
        assert_eq!(ascii.len(), MAX_PRESENTED_LEN + 1);
        assert!(crate::PresentedKey::parse_any(&ascii).is_err());
    }

    #[test]
    fn only_bearer_values_carry_a_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("  BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token(""), None);
    }
}
