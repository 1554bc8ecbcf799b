//! Role request bodies (`POST /roles`, `PATCH /roles/{name}`) and their validated forms.

use keyward_common::FieldError;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::checks::{MAX_DESCRIPTION, ROLE_NAME_RULE, ScopePolicy, expected, valid_role_name};
use super::{Field, from_object};

type Json = Map<String, Value>;

/// `POST /roles` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// `[a-z0-9][a-z0-9._-]{0,63}`, unique in the workspace.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "sms-sender")]
    pub name: Field<String>,
    /// What the role is for, up to 1024 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    /// Up to 50 permissions, as key scopes are written (`sms.send`, `billing.*`, `api.key.view`).
    #[serde(default)]
    #[schema(value_type = Vec<String>, required = true)]
    pub permissions: Field<Vec<String>>,
}

/// `PATCH /roles/{name}` body: a value sets a field, `null` clears `description`, an absent
/// field is kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    /// `null` clears.
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Field<String>,
    /// Replaces the permissions.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Field<Vec<String>>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRole {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// A validated PATCH: `None` keeps a field, `Some(None)` clears the description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePatch {
    /// Description.
    pub description: Option<Option<String>>,
    /// Permissions.
    pub permissions: Option<Vec<String>>,
}

/// Validates a role name from a path or a body.
///
/// # Errors
/// A field error naming `field`.
pub fn name(field: &str, name: &str) -> Result<(), FieldError> {
    if valid_role_name(name) {
        Ok(())
    } else {
        Err(FieldError::new(field, ROLE_NAME_RULE))
    }
}

/// Validates a create body.
///
/// # Errors
/// Every invalid, missing or unknown field.
pub fn create(body: Json, policy: ScopePolicy<'_>) -> Result<NewRole, Vec<FieldError>> {
    let (req, mut f) = from_object::<CreateRoleRequest>(body)?;
    let role_name = match f.take("name", req.name, expected::STRING) {
        Some(Some(n)) if valid_role_name(&n) => Some(n),
        Some(Some(_)) => {
            f.add("name", ROLE_NAME_RULE);
            None
        }
        Some(None) | None if !f.has("name") => {
            f.add("name", "is required");
            None
        }
        _ => None,
    };
    let description = f
        .take("description", req.description, expected::STRING)
        .flatten()
        .and_then(|d| f.text("description", d, MAX_DESCRIPTION));
    let permissions = match f.take("permissions", req.permissions, expected::STRINGS) {
        Some(Some(p)) => f.permissions("permissions", p, policy),
        _ if !f.has("permissions") => {
            f.add("permissions", "is required (an array, possibly empty)");
            None
        }
        _ => None,
    };
    f.done(NewRole {
        name: role_name.unwrap_or_default(),
        description,
        permissions: permissions.unwrap_or_default(),
    })
}

/// Validates a PATCH body.
///
/// # Errors
/// Every invalid or unknown field.
pub fn patch(body: Json, policy: ScopePolicy<'_>) -> Result<RolePatch, Vec<FieldError>> {
    let (req, mut f) = from_object::<UpdateRoleRequest>(body)?;
    if req.permissions == Field::Null {
        f.add("permissions", "cannot be null (send [] for none)");
    }
    let description = f.text_field("description", req.description, MAX_DESCRIPTION);
    let permissions = match f.take("permissions", req.permissions, expected::STRINGS) {
        Some(Some(p)) => f.permissions("permissions", p, policy),
        _ => None,
    };
    f.done(RolePatch {
        description,
        permissions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Json {
        v.as_object().unwrap().clone()
    }

    fn policy() -> ScopePolicy<'static> {
        ScopePolicy {
            defaults: &[],
            allowed: None,
        }
    }

    fn fields(r: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_role_needs_a_valid_name_and_a_permission_list() {
        let r = create(
            obj(json!({"name": "sms-sender", "permissions": ["sms.send", "sms.send"]})),
            policy(),
        )
        .unwrap();
        assert_eq!(r.permissions, ["sms.send"]);
        assert_eq!(
            fields(create(obj(json!({})), policy())),
            ["name", "permissions"]
        );
        assert_eq!(
            fields(create(
                obj(json!({"name": "Admin", "permissions": ["a b"], "extra": 1})),
                policy()
            )),
            ["extra", "name", "permissions[0]"]
        );
        assert_eq!(
            fields(create(
                obj(json!({"name": "x".repeat(65), "permissions": []})),
                policy()
            )),
            ["name"]
        );
    }

    #[test]
    fn a_role_patch_has_three_states() {
        let p = patch(obj(json!({"description": null})), policy()).unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.permissions, None);
        let p = patch(obj(json!({"permissions": ["billing.read"]})), policy()).unwrap();
        assert_eq!(p.description, None);
        assert_eq!(p.permissions.unwrap(), ["billing.read"]);
        assert_eq!(
            fields(patch(obj(json!({"permissions": null})), policy())),
            ["permissions"]
        );
    }

    #[test]
    fn role_names_follow_the_documented_shape() {
        for ok in ["a", "sms-sender", "0.team_x", &"a".repeat(64)] {
            assert!(name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "A", "a b", "a/b", &"a".repeat(65), "é"] {
            assert!(name("name", bad).is_err(), "{bad}");
        }
    }
}
