//! The management permissions: what an operation requires of its caller, and the no-escalation
//! rule for what a caller may grant.

use keyward_common::verify::{is_management, scope_covers};

/// A management permission an operation requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `api.key.create`.
    KeyCreate,
    /// `api.key.view` (get, list, audit).
    KeyView,
    /// `api.key.update` (patch, rotate).
    KeyUpdate,
    /// `api.key.delete` (revoke).
    KeyDelete,
    /// `api.role.create`.
    RoleCreate,
    /// `api.role.view`.
    RoleView,
    /// `api.role.update`.
    RoleUpdate,
    /// `api.role.delete`.
    RoleDelete,
    /// `api.usage.view`.
    UsageView,
    /// `api.webhook.view`.
    WebhookView,
    /// `api.webhook.manage`.
    WebhookManage,
    /// `api.owner.view` (get, list).
    OwnerView,
    /// `api.owner.update` (put, credit operations).
    OwnerUpdate,
}

impl Permission {
    /// The permission string in JWT `permissions` and root-key scopes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreate => "api.key.create",
            Self::KeyView => "api.key.view",
            Self::KeyUpdate => "api.key.update",
            Self::KeyDelete => "api.key.delete",
            Self::RoleCreate => "api.role.create",
            Self::RoleView => "api.role.view",
            Self::RoleUpdate => "api.role.update",
            Self::RoleDelete => "api.role.delete",
            Self::UsageView => "api.usage.view",
            Self::WebhookView => "api.webhook.view",
            Self::WebhookManage => "api.webhook.manage",
            Self::OwnerView => "api.owner.view",
            Self::OwnerUpdate => "api.owner.update",
        }
    }
}

/// The management permissions among `scopes` (a key's or a role's) that `held` (the caller's
/// own) does not cover: what granting `scopes` would hand over beyond the grantor's power.
/// Product permissions are never an escalation; they are the key manager's to hand out.
#[must_use]
pub fn escalation(held: &[String], scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| is_management(s))
        .filter(|s| !held.iter().any(|h| scope_covers(h, s)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_creator_cannot_grant_management_power_it_lacks() {
        let creator = v(&["api.key.create"]);
        assert_eq!(escalation(&creator, &v(&["api.*"])), ["api.*"]);
        assert_eq!(escalation(&creator, &v(&["api.key.*"])), ["api.key.*"]);
        assert_eq!(
            escalation(&creator, &v(&["read", "api.key.delete"])),
            ["api.key.delete"]
        );
        assert!(escalation(&creator, &v(&["api.key.create", "read", "*"])).is_empty());
    }

    #[test]
    fn a_star_caller_holds_no_management_power_and_an_api_star_caller_holds_all() {
        assert_eq!(
            escalation(&v(&["*"]), &v(&["api.key.view"])),
            ["api.key.view"]
        );
        assert!(escalation(&v(&["api.*"]), &v(&["api.*", "api.key.view", "x"])).is_empty());
        assert!(escalation(&v(&["api.key.*"]), &v(&["api.key.view"])).is_empty());
        assert_eq!(escalation(&v(&["api.key.*"]), &v(&["api.*"])), ["api.*"]);
    }
}
