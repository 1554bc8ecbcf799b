//! Query strings: decoded parameters, each known and given at most once, and the paging ones.

use keyward_common::FieldError;

use crate::error::ApiError;

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Query parameters, decoded, each at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// The parameters of a raw query string.
    ///
    /// # Errors
    /// 400 naming every bad parameter.
    pub fn parse_str(raw: &str, known: &[&str]) -> Result<Self, ApiError> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut errors = Vec::new();
        for pair in raw.split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (percent_decode(k), percent_decode(v)) else {
                errors.push(FieldError::new(
                    "query",
                    "is not valid percent-encoded UTF-8",
                ));
                continue;
            };
            if !known.contains(&k.as_str()) {
                errors.push(FieldError::new(
                    k,
                    format!("is not a known parameter (known: {})", known.join(", ")),
                ));
            } else if out.iter().any(|(x, _)| *x == k) {
                errors.push(FieldError::new(k, "is given more than once"));
            } else {
                out.push((k, v));
            }
        }
        if errors.is_empty() {
            Ok(Self(out))
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// The value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit`: 1–100, default 20.
    ///
    /// # Errors
    /// 400 naming `limit`.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(20),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    ApiError::Validation(vec![FieldError::new(
                        "limit",
                        "must be a whole number from 1 to 100",
                    )])
                }),
        }
    }

    /// `cursor`, when given and not empty.
    #[must_use]
    pub fn cursor(&self) -> Option<String> {
        self.get("cursor")
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_plus() {
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_each_named() {
        let Err(ApiError::Validation(errors)) = Query::parse_str("x=1&limit=2&limit=3", &["limit"])
        else {
            panic!("accepted");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["x", "limit"]);
    }
}
