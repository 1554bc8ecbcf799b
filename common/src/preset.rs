//! The recommended roles: the split the seeds' products make between people who run API access,
//! people who hand out keys, and people who only look. The CLI's `keyward roles preset` and the
//! console's "Add recommended roles" button both create exactly these.

/// `(name, description, permissions)` of each recommended role.
pub const PRESET_ROLES: &[(&str, &str, &[&str])] = &[
    (
        "administrator",
        "Everything, including revoking keys and changing roles",
        &["api.*"],
    ),
    (
        "manager",
        "Creates, views and edits keys; cannot revoke them or change roles",
        &[
            "api.key.create",
            "api.key.view",
            "api.key.update",
            "api.role.view",
            "api.owner.view",
            "api.usage.view",
        ],
    ),
    (
        "viewer",
        "Views keys, roles, owners and usage",
        &[
            "api.key.view",
            "api.role.view",
            "api.owner.view",
            "api.usage.view",
        ],
    ),
];
