//! The operation table: every route of the HTTP API as one row (method, path, permission,
//! function). The production dispatcher, the local router in `tests/`, the OpenAPI document's
//! paths, the handler tests and the template's HTTP API events are derived from it or checked
//! against it (`tests/tests/infra_drift.rs`, `openapi::tests`).

use lambda_http::http::Method;

use crate::permission::Permission;

/// Every operation the HTTP API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create a key.
    CreateKey,
    /// List keys.
    ListKeys,
    /// Get a key.
    GetKey,
    /// Update a key.
    UpdateKey,
    /// Revoke a key.
    RevokeKey,
    /// Rotate a key's secret.
    RotateKey,
    /// List audit events.
    ListAudit,
    /// The edge's signed usage reports (not a management operation).
    ReportUsage,
    /// Import existing keys.
    ImportKeys,
    /// Create a role.
    CreateRole,
    /// List roles.
    ListRoles,
    /// Get a role.
    GetRole,
    /// Update a role.
    UpdateRole,
    /// Delete a role.
    DeleteRole,
    /// Change a key's credits.
    KeyCredits,
    /// Create or replace an owner.
    PutOwner,
    /// Get an owner.
    GetOwner,
    /// List owners.
    ListOwners,
    /// Change an owner's credits.
    OwnerCredits,
    /// The web console's page (public, no credentials).
    Console,
    /// One of the web console's static files (public, no credentials).
    ConsoleFile,
    /// One key's usage by period.
    GetKeyUsage,
    /// The workspace's usage by period and key or owner.
    GetUsage,
    /// Create a webhook endpoint.
    CreateWebhook,
    /// List webhook endpoints.
    ListWebhooks,
    /// Get a webhook endpoint.
    GetWebhook,
    /// Update a webhook endpoint.
    UpdateWebhook,
    /// Delete a webhook endpoint.
    DeleteWebhook,
    /// A webhook endpoint's deliveries.
    ListDeliveries,
    /// Send a test event.
    TestWebhook,
}

/// Who may call a row's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A JWT or root key holding this management permission.
    Permission(Permission),
    /// The edge, with a signed batch (`keyward_common::sync`).
    SignedBatch,
    /// Anyone, without credentials: the console's static files, which hold no data (the page
    /// calls the management API with the token a person signs in with).
    Public,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The operation.
    pub op: Operation,
    /// HTTP method.
    pub method: &'static str,
    /// Production path template; `{name}` matches one non-empty segment.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The Lambda function (binary name, `functions/src/bin/`) that serves it.
    pub function: &'static str,
}

const fn row(
    op: Operation,
    method: &'static str,
    path: &'static str,
    access: Access,
    function: &'static str,
) -> Row {
    Row {
        op,
        method,
        path,
        access,
        function,
    }
}

const KEYS: &str = "/v1/workspaces/{workspace}/keys";
const KEY: &str = "/v1/workspaces/{workspace}/keys/{id}";
const ROLES: &str = "/v1/workspaces/{workspace}/roles";
const ROLE: &str = "/v1/workspaces/{workspace}/roles/{name}";
const OWNERS: &str = "/v1/workspaces/{workspace}/owners";
const OWNER: &str = "/v1/workspaces/{workspace}/owners/{owner_id}";
/// The console's page; API Gateway also routes `/console/` here (a trailing slash is ignored).
const CONSOLE: &str = "/console";
const HOOKS: &str = "/v1/workspaces/{workspace}/webhooks";
const HOOK: &str = "/v1/workspaces/{workspace}/webhooks/{id}";

/// The table: the single source of the HTTP API's routes.
pub const OPERATIONS: &[Row] = &[
    row(
        Operation::CreateKey,
        "POST",
        KEYS,
        Access::Permission(Permission::KeyCreate),
        "create-key",
    ),
    row(
        Operation::ListKeys,
        "GET",
        KEYS,
        Access::Permission(Permission::KeyView),
        "list-keys",
    ),
    row(
        Operation::GetKey,
        "GET",
        KEY,
        Access::Permission(Permission::KeyView),
        "get-key",
    ),
    row(
        Operation::UpdateKey,
        "PATCH",
        KEY,
        Access::Permission(Permission::KeyUpdate),
        "update-key",
    ),
    row(
        Operation::RevokeKey,
        "DELETE",
        KEY,
        Access::Permission(Permission::KeyDelete),
        "revoke-key",
    ),
    row(
        Operation::RotateKey,
        "POST",
        "/v1/workspaces/{workspace}/keys/{id}/rotate",
        Access::Permission(Permission::KeyUpdate),
        "rotate-key",
    ),
    row(
        Operation::ListAudit,
        "GET",
        "/v1/workspaces/{workspace}/audit",
        Access::Permission(Permission::KeyView),
        "list-audit",
    ),
    row(
        Operation::ReportUsage,
        "POST",
        "/v1/usage",
        Access::SignedBatch,
        "usage",
    ),
    row(
        Operation::ImportKeys,
        "POST",
        "/v1/workspaces/{workspace}/keys/import",
        Access::Permission(Permission::KeyCreate),
        "create-key",
    ),
    row(
        Operation::CreateRole,
        "POST",
        ROLES,
        Access::Permission(Permission::RoleCreate),
        "roles",
    ),
    row(
        Operation::ListRoles,
        "GET",
        ROLES,
        Access::Permission(Permission::RoleView),
        "roles",
    ),
    row(
        Operation::GetRole,
        "GET",
        ROLE,
        Access::Permission(Permission::RoleView),
        "roles",
    ),
    row(
        Operation::UpdateRole,
        "PATCH",
        ROLE,
        Access::Permission(Permission::RoleUpdate),
        "roles",
    ),
    row(
        Operation::DeleteRole,
        "DELETE",
        ROLE,
        Access::Permission(Permission::RoleDelete),
        "roles",
    ),
    row(
        Operation::KeyCredits,
        "POST",
        "/v1/workspaces/{workspace}/keys/{id}/credits",
        Access::Permission(Permission::KeyUpdate),
        "update-key",
    ),
    row(
        Operation::PutOwner,
        "PUT",
        OWNER,
        Access::Permission(Permission::OwnerUpdate),
        "owners",
    ),
    row(
        Operation::GetOwner,
        "GET",
        OWNER,
        Access::Permission(Permission::OwnerView),
        "owners",
    ),
    row(
        Operation::ListOwners,
        "GET",
        OWNERS,
        Access::Permission(Permission::OwnerView),
        "owners",
    ),
    row(
        Operation::OwnerCredits,
        "POST",
        "/v1/workspaces/{workspace}/owners/{owner_id}/credits",
        Access::Permission(Permission::OwnerUpdate),
        "owners",
    ),
    row(
        Operation::Console,
        "GET",
        CONSOLE,
        Access::Public,
        "console",
    ),
    row(
        Operation::ConsoleFile,
        "GET",
        "/console/{file}",
        Access::Public,
        "console",
    ),
    row(
        Operation::GetKeyUsage,
        "GET",
        "/v1/workspaces/{workspace}/keys/{id}/usage",
        Access::Permission(Permission::UsageView),
        "read-usage",
    ),
    row(
        Operation::GetUsage,
        "GET",
        "/v1/workspaces/{workspace}/usage",
        Access::Permission(Permission::UsageView),
        "read-usage",
    ),
    row(
        Operation::CreateWebhook,
        "POST",
        HOOKS,
        Access::Permission(Permission::WebhookManage),
        "webhooks",
    ),
    row(
        Operation::ListWebhooks,
        "GET",
        HOOKS,
        Access::Permission(Permission::WebhookView),
        "webhooks",
    ),
    row(
        Operation::GetWebhook,
        "GET",
        HOOK,
        Access::Permission(Permission::WebhookView),
        "webhooks",
    ),
    row(
        Operation::UpdateWebhook,
        "PATCH",
        HOOK,
        Access::Permission(Permission::WebhookManage),
        "webhooks",
    ),
    row(
        Operation::DeleteWebhook,
        "DELETE",
        HOOK,
        Access::Permission(Permission::WebhookManage),
        "webhooks",
    ),
    row(
        Operation::ListDeliveries,
        "GET",
        "/v1/workspaces/{workspace}/webhooks/{id}/deliveries",
        Access::Permission(Permission::WebhookView),
        "webhooks",
    ),
    row(
        Operation::TestWebhook,
        "POST",
        "/v1/workspaces/{workspace}/webhooks/{id}/test",
        Access::Permission(Permission::WebhookManage),
        "webhooks",
    ),
];

impl Operation {
    /// Every operation (a test checks each has exactly one row).
    pub const ALL: [Self; 30] = [
        Self::CreateKey,
        Self::ListKeys,
        Self::GetKey,
        Self::UpdateKey,
        Self::RevokeKey,
        Self::RotateKey,
        Self::ListAudit,
        Self::ReportUsage,
        Self::ImportKeys,
        Self::CreateRole,
        Self::ListRoles,
        Self::GetRole,
        Self::UpdateRole,
        Self::DeleteRole,
        Self::KeyCredits,
        Self::PutOwner,
        Self::GetOwner,
        Self::ListOwners,
        Self::OwnerCredits,
        Self::Console,
        Self::ConsoleFile,
        Self::GetKeyUsage,
        Self::GetUsage,
        Self::CreateWebhook,
        Self::ListWebhooks,
        Self::GetWebhook,
        Self::UpdateWebhook,
        Self::DeleteWebhook,
        Self::ListDeliveries,
        Self::TestWebhook,
    ];

    /// Its row of [`OPERATIONS`].
    #[must_use]
    pub fn row(self) -> &'static Row {
        OPERATIONS
            .iter()
            .find(|r| r.op == self)
            .unwrap_or(&OPERATIONS[0])
    }

    /// The function (binary) that serves it.
    #[must_use]
    pub fn function(self) -> &'static str {
        self.row().function
    }

    /// The management permission it needs (`None` for the signed usage route and the
    /// console's public files).
    #[must_use]
    pub fn permission(self) -> Option<Permission> {
        match self.row().access {
            Access::Permission(p) => Some(p),
            Access::SignedBatch | Access::Public => None,
        }
    }
}

impl Row {
    /// The method as an `http` value.
    #[must_use]
    pub fn http_method(&self) -> Method {
        Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET)
    }

    /// The OpenAPI `operationId`: the function name with `_` (`create_key`).
    #[must_use]
    pub fn operation_id(&self) -> String {
        match self.op {
            Operation::ReportUsage => "report_usage".to_owned(),
            Operation::ImportKeys => "import_keys".to_owned(),
            Operation::CreateRole => "create_role".to_owned(),
            Operation::ListRoles => "list_roles".to_owned(),
            Operation::GetRole => "get_role".to_owned(),
            Operation::UpdateRole => "update_role".to_owned(),
            Operation::DeleteRole => "delete_role".to_owned(),
            Operation::KeyCredits => "change_key_credits".to_owned(),
            Operation::PutOwner => "put_owner".to_owned(),
            Operation::GetOwner => "get_owner".to_owned(),
            Operation::ListOwners => "list_owners".to_owned(),
            Operation::OwnerCredits => "change_owner_credits".to_owned(),
            Operation::Console => "console".to_owned(),
            Operation::ConsoleFile => "console_file".to_owned(),
            Operation::GetKeyUsage => "get_key_usage".to_owned(),
            Operation::GetUsage => "get_usage".to_owned(),
            Operation::CreateWebhook => "create_webhook".to_owned(),
            Operation::ListWebhooks => "list_webhooks".to_owned(),
            Operation::GetWebhook => "get_webhook".to_owned(),
            Operation::UpdateWebhook => "update_webhook".to_owned(),
            Operation::DeleteWebhook => "delete_webhook".to_owned(),
            Operation::ListDeliveries => "list_webhook_deliveries".to_owned(),
            Operation::TestWebhook => "test_webhook".to_owned(),
            _ => self.function.replace('-', "_"),
        }
    }
}

/// The path parameters of a matched route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams {
    /// `{workspace}`.
    pub workspace: Option<String>,
    /// `{id}`.
    pub id: Option<String>,
    /// `{name}`.
    pub name: Option<String>,
    /// `{file}`: a console file name.
    pub file: Option<String>,
    /// `{owner_id}`, as the path has it (percent-encoded unless `owner_id_decoded`).
    pub owner_id: Option<String>,
    /// Whether `owner_id` came decoded (API Gateway's path parameters).
    pub owner_id_decoded: bool,
}

/// Matches `path` against a row's template. Anything before the template's first segment is
/// ignored, so an API Gateway stage or a local router prefix does not matter; empty segments
/// (`//`, a trailing `/`) are ignored too.
#[must_use]
pub fn match_path(template: &str, path: &str) -> Option<PathParams> {
    let want: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = got.len().checked_sub(want.len())?;
    let mut params = PathParams::default();
    for (w, g) in want.iter().zip(&got[start..]) {
        match *w {
            "{workspace}" => params.workspace = Some((*g).to_owned()),
            "{id}" => params.id = Some((*g).to_owned()),
            "{name}" => params.name = Some((*g).to_owned()),
            "{file}" => params.file = Some((*g).to_owned()),
            "{owner_id}" => params.owner_id = Some((*g).to_owned()),
            literal if literal == *g => {}
            _ => return None,
        }
    }
    Some(params)
}

/// What the table says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// This row serves it.
    Found(&'static Row, PathParams),
    /// The path exists with other methods only.
    MethodNotAllowed(Vec<&'static str>),
    /// No row has this path.
    NotFound,
}

/// Looks `method` + `path` up among the rows `rows` selects (all of them for the local router,
/// one function's rows inside that function).
#[must_use]
pub fn resolve(method: &str, path: &str, rows: impl Fn(&Row) -> bool) -> Resolution {
    let mut allowed = Vec::new();
    for r in OPERATIONS.iter().filter(|r| rows(r)) {
        if let Some(params) = match_path(r.path, path) {
            if r.method == method {
                return Resolution::Found(r, params);
            }
            allowed.push(r.method);
        }
    }
    if allowed.is_empty() {
        Resolution::NotFound
    } else {
        Resolution::MethodNotAllowed(allowed)
    }
}

/// The distinct functions of the table, in table order.
#[must_use]
pub fn functions() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in OPERATIONS {
        if !out.contains(&r.function) {
            out.push(r.function);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_behind_any_prefix() {
        let any = |_: &Row| true;
        match resolve(
            "GET",
            "/lambda-url/get-key/v1/workspaces/acme/keys/key_1",
            any,
        ) {
            Resolution::Found(r, p) => {
                assert_eq!(r.op, Operation::GetKey);
                assert_eq!(p.workspace.as_deref(), Some("acme"));
                assert_eq!(p.id.as_deref(), Some("key_1"));
            }
            other => panic!("{other:?}"),
        }
        match resolve("POST", "/prod/v1/workspaces/acme/keys/", any) {
            Resolution::Found(r, _) => assert_eq!(r.op, Operation::CreateKey),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            resolve("GET", "/v1/workspaces/acme/other", any),
            Resolution::NotFound
        );
        assert_eq!(resolve("GET", "/", any), Resolution::NotFound);
    }

    #[test]
    fn a_known_path_with_another_method_lists_the_allowed_ones() {
        assert_eq!(
            resolve("PUT", "/v1/workspaces/a/keys/key_1", |_| true),
            Resolution::MethodNotAllowed(vec!["GET", "PATCH", "DELETE"])
        );
        assert_eq!(
            resolve("PATCH", "/v1/workspaces/a/keys/key_1", |r| r.function
                == "get-key"),
            Resolution::MethodNotAllowed(vec!["GET"])
        );
    }

    #[test]
    fn the_console_page_and_its_files_are_public_rows_of_their_own_function() {
        let console = |r: &Row| r.function == "console";
        for path in ["/console", "/console/"] {
            match resolve("GET", path, console) {
                Resolution::Found(r, _) => assert_eq!(r.op, Operation::Console, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        match resolve("GET", "/console/keys.js", console) {
            Resolution::Found(r, p) => {
                assert_eq!(r.op, Operation::ConsoleFile);
                assert_eq!(p.file.as_deref(), Some("keys.js"));
                assert_eq!(r.access, Access::Public);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            resolve("GET", "/console/a/b.js", console),
            Resolution::NotFound
        );
        assert_eq!(
            resolve("POST", "/console/", console),
            Resolution::MethodNotAllowed(vec!["GET"])
        );
        // The console's files are no management path, and no management path is a file.
        assert_eq!(
            resolve("GET", "/console/keys.js", |r| r.function != "console"),
            Resolution::NotFound
        );
        assert_eq!(
            resolve("GET", "/v1/workspaces/acme/keys", console),
            Resolution::NotFound
        );
        assert_eq!(Operation::ConsoleFile.permission(), None);
    }

    #[test]
    fn every_row_is_distinct_and_every_operation_has_one_row() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(a.op != b.op, "{:?} twice", a.op);
                assert!(
                    (a.method, a.path) != (b.method, b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
            assert_eq!(a.op.row(), a);
        }
        for op in Operation::ALL {
            let rows = OPERATIONS.iter().filter(|r| r.op == op).count();
            assert_eq!(rows, 1, "{op:?} has {rows} rows");
        }
    }
}
