//! The verify API's request body, `{key, scope?, permission?, cost?, workspace?, ip?}`, read with
//! [`crate::json`] exactly as the edge's serde derive read it (the object, or its array form
//! `[key, scope, permission, cost, workspace, ip]`), and refused with the same 400 problems.

use std::net::IpAddr;

use crate::json::{FromJson, JsonError, Reader};
use crate::route::MAX_COST;
use crate::{FieldError, Problem, ProblemCode, Query, RequestContext};

/// A verify request read from its body: the key (a missing or non-string key is simply not a
/// well-formed key: MALFORMED, not a 400), the context to check it in, and what an admitted
/// request costs (1 unless the body says otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// The key, when the body's `key` is a string.
    pub key: Option<String>,
    /// The scope, permission query, workspace and client address to check the key against.
    pub context: RequestContext,
    /// Units an admitted request spends.
    pub cost: u32,
}

/// The body's fields as given, before they are checked ([`check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyFields {
    /// `key`, when it is a string.
    pub key: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `permission`: `None` when absent or `null`, `Some(None)` when not a string.
    pub permission: Option<Option<String>>,
    /// `cost`: `None` when absent or `null`, `Some(None)` when not a whole number.
    pub cost: Option<Option<u64>>,
    /// `workspace`.
    pub workspace: Option<String>,
    /// `ip`.
    pub ip: Option<String>,
}

/// A field that may hold any JSON value, of which only a string is used (`key`, `permission`).
struct AnyString(Option<String>);

impl FromJson for AnyString {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        r.any_string().map(Self)
    }
}

/// A field that may hold any JSON value, of which only a whole number is used (`cost`).
struct AnyU64(Option<u64>);

impl FromJson for AnyU64 {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        r.any_u64().map(Self)
    }
}

/// Reads the body's fields as serde's derive read them: an object (unknown fields skipped, a
/// field given twice refused) or the array `[key, scope, permission, cost, workspace, ip]`
/// (trailing ones may be left out); `key`, `permission` and `cost` may hold any JSON value.
///
/// # Errors
/// When the body is not JSON of that shape.
pub fn read_fields(text: &str) -> Result<VerifyFields, JsonError> {
    let mut r = Reader::new(text);
    // The outer `Option` is whether the field was given (twice is refused).
    let (mut key, mut scope, mut permission) = (None, None, None);
    let (mut cost, mut workspace, mut ip) = (None, None, None);
    if r.peek() == Some(b'[') {
        let mut index = 0;
        r.array(|r| {
            match index {
                0 => r.take(&mut key),
                1 => r.take(&mut scope),
                2 => r.take(&mut permission),
                3 => r.take(&mut cost),
                4 => r.take(&mut workspace),
                5 => r.take(&mut ip),
                _ => Err(r.syntax()),
            }?;
            index += 1;
            Ok(())
        })?;
    } else {
        r.object(|r, name| match name {
            "key" => r.take(&mut key),
            "scope" => r.take(&mut scope),
            "permission" => r.take(&mut permission),
            "cost" => r.take(&mut cost),
            "workspace" => r.take(&mut workspace),
            "ip" => r.take(&mut ip),
            _ => Ok(false),
        })?;
    }
    r.end()?;
    Ok(VerifyFields {
        key: key.and_then(|AnyString(k)| k),
        scope: scope.flatten(),
        permission: permission.flatten().map(|AnyString(p)| p),
        cost: cost.flatten().map(|AnyU64(c)| c),
        workspace: workspace.flatten(),
        ip: ip.flatten(),
    })
}

/// A verify body's `permission`: absent, `null` or `""` is none; anything but a query that
/// parses is a 400 `invalid_permission_query` naming the field.
fn parse_permission(value: Option<Option<String>>) -> Result<Option<Query>, Box<Problem>> {
    let text = match value {
        None => return Ok(None),
        Some(Some(s)) if s.trim().is_empty() => return Ok(None),
        Some(Some(s)) => s,
        Some(None) => {
            return Err(invalid_query(
                "must be a string: a permission query such as \"a AND (b OR c)\"".into(),
            ));
        }
    };
    Query::parse(&text)
        .map(Some)
        .map_err(|e| invalid_query(e.to_string()))
}

fn invalid_query(message: String) -> Box<Problem> {
    let mut problem = Problem::of(
        ProblemCode::InvalidPermissionQuery,
        format!("The permission query is invalid: {message}."),
    );
    problem.errors = vec![FieldError::new("permission", message)];
    Box::new(problem)
}

/// Parses the verify API's body: [`read_fields`], then [`check`].
///
/// # Errors
/// A 400 problem: `validation_failed` naming `body` (not the expected JSON), `cost` or `ip`, or
/// `invalid_permission_query` naming `permission`.
pub fn parse(text: &str) -> Result<VerifyRequest, Box<Problem>> {
    match read_fields(text) {
        Ok(fields) => check(fields),
        Err(_) => Err(bad(
            "body",
            "must be a JSON object {\"key\", \"scope\"?, \"permission\"?, \"cost\"?, \"workspace\"?, \"ip\"?}",
        )),
    }
}

fn bad(field: &str, message: &str) -> Box<Problem> {
    Box::new(Problem::validation(vec![FieldError::new(field, message)]))
}

/// Checks the fields of a body that is JSON of the right shape, in order: the permission query,
/// the cost, the client address.
///
/// # Errors
/// A 400 problem naming the first field that is wrong.
pub fn check(fields: VerifyFields) -> Result<VerifyRequest, Box<Problem>> {
    let required_permission = parse_permission(fields.permission)?;
    let cost = match fields.cost {
        None => 1,
        Some(n) => match n.and_then(|c| u32::try_from(c).ok()) {
            Some(c) if c <= MAX_COST => c,
            _ => return Err(bad("cost", "must be a whole number from 0 to 1000")),
        },
    };
    let client_ip = match fields.ip.map(|ip| ip.trim().parse::<IpAddr>()) {
        Some(Err(_)) => return Err(bad("ip", "must be an IPv4 or IPv6 address")),
        Some(Ok(ip)) => Some(ip),
        None => None,
    };
    Ok(VerifyRequest {
        key: fields.key,
        context: RequestContext {
            client_ip,
            required_scope: fields.scope.filter(|s| !s.is_empty()),
            required_permission,
            // A workspace that no key can have still binds: every key is then NOT_FOUND.
            workspaces: fields.workspace.into_iter().collect(),
        },
        cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_query_workspace_and_cost_are_read() {
        let v = parse(
            r#"{"key":"k","permission":"sms.send AND (billing.read OR admin)","workspace":"acme","cost":7}"#,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            v.context.required_permission.unwrap().to_string(),
            "sms.send AND (billing.read OR admin)"
        );
        assert_eq!(v.context.workspaces, ["acme"]);
        assert_eq!(v.cost, 7);
        let v = parse(r#"{"key":"k","permission":null}"#).unwrap_or_else(|p| panic!("{p:?}"));
        assert!(v.context.required_permission.is_none());
        assert_eq!(v.cost, 1);
        assert!(v.context.workspaces.is_empty());
    }

    #[test]
    fn a_bad_query_is_a_400_invalid_permission_query_naming_the_field() {
        for body in [
            r#"{"key":"k","permission":"(a OR b"}"#,
            r#"{"key":"k","permission":"a and b"}"#,
            r#"{"key":"k","permission":5}"#,
        ] {
            let p = parse(body).err().unwrap();
            assert_eq!(
                (p.status, p.code.as_str()),
                (400, "invalid_permission_query")
            );
            assert_eq!(p.errors[0].field, "permission");
        }
    }

    #[test]
    fn a_cost_out_of_range_is_a_400_naming_cost() {
        for cost in [
            "-1",
            "1001",
            "1.5",
            "\"2\"",
            "4294967297",
            "-0",
            "1e2",
            "[]",
        ] {
            let p = parse(&format!(r#"{{"key":"k","cost":{cost}}}"#))
                .err()
                .unwrap();
            assert_eq!(
                (p.status, p.code.as_str()),
                (400, "validation_failed"),
                "{cost}"
            );
            assert_eq!(p.errors[0].field, "cost");
        }
        assert_eq!(parse(r#"{"key":"k","cost":0}"#).ok().unwrap().cost, 0);
        assert_eq!(parse(r#"{"key":"k","cost":1000}"#).ok().unwrap().cost, 1000);
    }

    #[test]
    fn a_body_serde_refused_is_a_400_naming_the_body_and_one_it_took_still_goes() {
        let field = |body: &str| parse(body).err().map(|p| p.errors[0].field.clone());
        for refused in [
            "",
            "nope",
            r#"{"key":"k","key":"k"}"#,
            r#"{"key":"k","scope":5}"#,
            r#"{"key":1e999}"#,
            r#"{"key":"\ud800"}"#,
            r#"["k",null,null,null,null,null,null]"#,
            r#"{"key":"k"} x"#,
        ] {
            assert_eq!(field(refused).as_deref(), Some("body"), "{refused}");
        }
        // Kept as serde read them: a non-string key (MALFORMED), the array form, unknown fields.
        assert_eq!(parse(r#"{"key":5}"#).ok().unwrap().key, None);
        assert_eq!(parse("[]").ok().unwrap().key, None);
        let v = parse(r#"["k", "read", null, 3]"#).ok().unwrap();
        assert_eq!(
            (
                v.key.as_deref(),
                v.context.required_scope.as_deref(),
                v.cost
            ),
            (Some("k"), Some("read"), 3)
        );
        let v = parse(r#"{"key":"k","extra":{"x":[1e999, "\ud800"]},"ip":" 10.0.0.1 "}"#);
        assert_eq!(
            v.ok().unwrap().context.client_ip,
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(field(r#"{"key":"k","ip":"10.0.0"}"#).as_deref(), Some("ip"));
    }
}
