//! The OpenAPI 3.1 document of the management API, generated from the Rust types.
//!
//! Regenerate the committed `openapi.json` with
//! `KEYWARD_WRITE_OPENAPI=1 cargo test -p keyward-functions openapi`.

#![allow(dead_code)] // The functions below only carry `#[utoipa::path]` documentation.

use keyward_common::{
    FieldError, KeyId, KeyRecord, KeyStatus, Problem, RateLimit, RoleRecord, Timestamp,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use keyward_common::credits::{Credits, Interval, Refill};
use keyward_common::record::{NamedRateLimit, OwnerRecord, OwnerStatus};

use crate::api::{AuditList, CreditsLeft, KeyList, KeyWithSecret, OwnerList, RoleList};
use crate::input::credits::{CreditOpRequest, PutOwnerRequest};
use crate::input::import::{ImportItem, ImportRequest};
use crate::input::key::{CreateKeyRequest, RotateKeyRequest, UpdateKeyRequest};
use crate::input::role::{CreateRoleRequest, UpdateRoleRequest};
use crate::input::webhook::{CreateWebhookRequest, UpdateWebhookRequest};
use crate::ops::import::{ImportResult, Imported};
use crate::ops::usage::{KeyUsage, Outcomes, UsageList, UsagePeriod, UsageRow};
use crate::ops::webhooks::{DeliveryList, WebhookList, WebhookWithSecret};
use crate::store::AuditEvent;
use crate::webhook::{Delivery, WebhookRecord};

const PROBLEM: &str = "application/problem+json";

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/keys",
    tag = "keys",
    operation_id = "create_key",
    summary = "Create a key",
    description = "Creates a key. The secret is in `key`, shown this once. Needs `api.key.create`.",
    params(
        ("workspace" = String, Path, description = "Workspace, 1-64 characters [A-Za-z0-9_-]"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters: a retry with the same key and body within 24 h gets the first answer again, secret included"),
    ),
    request_body(content = CreateKeyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `ETag` is the version, `Location` the key's URL", body = KeyWithSecret),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found` (another workspace)", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`key_limit_reached` or `idempotency_in_progress`", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
        (status = 500, description = "`internal`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn create_key() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/keys",
    tag = "keys",
    operation_id = "list_keys",
    summary = "List keys, newest first",
    description = "Never shows a secret or a hash. Needs `api.key.view`.",
    params(
        ("workspace" = String, Path, description = "Workspace"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page, with the same filters"),
        ("status" = Option<String>, Query, description = "active, disabled or revoked"),
        ("owner_id" = Option<String>, Query, description = "Only this owner's keys"),
        ("role" = Option<String>, Query, description = "Only keys holding this role"),
    ),
    responses(
        (status = 200, description = "One page", body = KeyList),
        (status = 400, description = "`validation_failed` or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn list_keys() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/keys/{id}",
    tag = "keys",
    operation_id = "get_key",
    summary = "Get a key",
    description = "Needs `api.key.view`. `ETag` is the version.",
    params(("workspace" = String, Path), ("id" = String, Path, description = "Key id, `key_…`")),
    responses(
        (status = 200, description = "The key", body = KeyRecord),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn get_key() {}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace}/keys/{id}",
    tag = "keys",
    operation_id = "update_key",
    summary = "Update a key",
    description = "A value sets a field, `null` clears it, an absent field is kept. With `If-Match` the change applies only to that version; without it, only to the version read. Needs `api.key.update`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` of the version to change"),
    ),
    request_body(content = UpdateKeyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated key", body = KeyRecord),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`key_revoked`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn update_key() {}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace}/keys/{id}",
    tag = "keys",
    operation_id = "revoke_key",
    summary = "Revoke a key",
    description = "Permanent and immediate. Idempotent: revoking again answers the same revoked record. With `erase=true` (a privacy request) the key's personal data — name, meta, owner id, allowed IPs — is removed too, also from an already revoked key; audited as `key.erased`. Needs `api.key.delete`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("erase" = Option<bool>, Query, description = "Also remove the key's personal data"),
    ),
    responses(
        (status = 200, description = "The revoked key", body = KeyRecord),
        (status = 400, description = "`validation_failed` (`erase`, `If-Match`)", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn revoke_key() {}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/keys/{id}/rotate",
    tag = "keys",
    operation_id = "rotate_key",
    summary = "Rotate a key's secret",
    description = "New secret, same id and settings. The old secret stops at once, or after `grace_period_s`. The body is optional. Needs `api.key.update`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "As for create"),
    ),
    request_body(content = Option<RotateKeyRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The key with its new secret", body = KeyWithSecret),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`key_revoked` or `idempotency_in_progress`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn rotate_key() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/audit",
    tag = "audit",
    operation_id = "list_audit",
    summary = "List audit events, newest first",
    description = "Every create, update, revoke and rotate. Needs `api.key.view`.",
    params(
        ("workspace" = String, Path),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = AuditList),
        (status = 400, description = "`validation_failed` or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn list_audit() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/keys/{id}/usage",
    tag = "usage",
    operation_id = "get_key_usage",
    summary = "One key's usage by hour or day",
    description = "Every period of the range in order, zeros included: requests by outcome as the edge counted them, and credits spent. The range is widened to whole periods; at most 31 days by the hour, 366 by the day. Needs `api.usage.view`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("from" = Option<String>, Query, description = "RFC 3339 time or UTC day `YYYY-MM-DD`, inclusive; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or UTC day, exclusive; default the end of the current period"),
        ("granularity" = Option<String>, Query, description = "`hour` or `day` (default)"),
    ),
    responses(
        (status = 200, description = "The key's usage", body = KeyUsage),
        (status = 400, description = "`validation_failed` naming the parameter", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn get_key_usage() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/usage",
    tag = "usage",
    operation_id = "get_usage",
    summary = "The workspace's usage by period and key or owner, for billing",
    description = "Rows with requests only, by period then key id (or owner id). JSON pages, or every row as CSV with `Accept: text/csv` (text cells a spreadsheet would run as a formula are prefixed with `'`). A range holding more than 100,000 key-hours is refused: ask for a shorter one. Needs `api.usage.view`.",
    params(
        ("workspace" = String, Path),
        ("from" = Option<String>, Query, description = "RFC 3339 time or UTC day, inclusive; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or UTC day, exclusive; default the end of the current period"),
        ("granularity" = Option<String>, Query, description = "`hour` or `day` (default)"),
        ("group_by" = Option<String>, Query, description = "`key` (default) or `owner`"),
        ("owner_id" = Option<String>, Query, description = "Only keys of this owner"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20 (JSON only)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (same query)"),
    ),
    responses(
        (status = 200, description = "One page of rows (JSON) or every row (CSV)", content(
            (UsageList = "application/json"),
            (String = "text/csv")
        )),
        (status = 400, description = "`validation_failed` naming the parameter, or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn get_usage() {}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/roles",
    tag = "roles",
    operation_id = "create_role",
    summary = "Create a role",
    description = "A named set of permissions keys hold by name (`roles` on a key). Granting management permissions (`api.*`) needs the caller to hold them. Needs `api.role.create`.",
    params(("workspace" = String, Path)),
    request_body(content = CreateRoleRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `ETag` is the version", body = RoleRecord),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden` or `permission_escalation`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`role_exists`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn create_role() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/roles",
    tag = "roles",
    operation_id = "list_roles",
    summary = "List roles by name",
    description = "Needs `api.role.view`.",
    params(
        ("workspace" = String, Path),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = RoleList),
        (status = 400, description = "`validation_failed` or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn list_roles() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/roles/{name}",
    tag = "roles",
    operation_id = "get_role",
    summary = "Get a role",
    description = "Needs `api.role.view`. `ETag` is the version.",
    params(("workspace" = String, Path), ("name" = String, Path, description = "Role name")),
    responses(
        (status = 200, description = "The role", body = RoleRecord),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn get_role() {}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace}/roles/{name}",
    tag = "roles",
    operation_id = "update_role",
    summary = "Update a role",
    description = "`description` (null clears) and `permissions` (replaces). Every holder's verdict at the edge follows within seconds. Needs `api.role.update`.",
    params(
        ("workspace" = String, Path),
        ("name" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` of the version to change"),
    ),
    request_body(content = UpdateRoleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated role", body = RoleRecord),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden` or `permission_escalation`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn update_role() {}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace}/roles/{name}",
    tag = "roles",
    operation_id = "delete_role",
    summary = "Delete a role",
    description = "Refused with 409 `role_in_use` while a key that is not revoked holds it. Needs `api.role.delete`.",
    params(
        ("workspace" = String, Path),
        ("name" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` of the version to delete"),
    ),
    responses(
        (status = 200, description = "The deleted role", body = RoleRecord),
        (status = 400, description = "`validation_failed` (`If-Match`)", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`role_in_use`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn delete_role() {}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/keys/import",
    tag = "keys",
    operation_id = "import_keys",
    summary = "Import existing keys",
    description = "Up to 1,000 keys your product already issued, each as plaintext `key` or SHA-256 `hash` plus the create fields. Each item is created or refused on its own (`duplicate_key`, `validation_failed`, `permission_escalation`, `key_limit_reached`); the call answers 200 with one result per item. Imported keys verify at the edge by their hash, in their own format, until rotated. Needs `api.key.create`.",
    params(
        ("workspace" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "As for create"),
    ),
    request_body(content = ImportRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per item", body = Imported),
        (status = 400, description = "`validation_failed` (the list itself) or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`idempotency_in_progress`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large` (over 2 MiB)", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn import_keys() {}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/keys/{id}/credits",
    tag = "keys",
    operation_id = "change_key_credits",
    summary = "Change a key's credits",
    description = "`set` makes `remaining` the value (and gives credits to a key without any); `increment` adds (capped at 1000000000000); `decrement` subtracts (floored at 0). `increment` and `decrement` of a key without credits are a 400 on `op`. The edge applies the operation within seconds, on top of what it has spent meanwhile. Audited as `key.credits`. Needs `api.key.update`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters: a retry with the same key and body within 24 h gets the first answer again, and the operation is applied once"),
    ),
    request_body(content = CreditOpRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The remaining credits, from the last balance the edge reported", body = CreditsLeft),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`key_revoked` or `idempotency_in_progress`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed` (concurrent changes kept winning)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn change_key_credits() {}

#[utoipa::path(
    put,
    path = "/v1/workspaces/{workspace}/owners/{owner_id}",
    tag = "owners",
    operation_id = "put_owner",
    summary = "Create or replace an owner",
    description = "Replaces the owner's settings: an absent field is reset (`active`, no meta, no limits, no credits). `credits` with a `remaining` other than the stored balance sets the balance; the same `remaining` with another `refill` changes only the rule. The limits and credits are shared by every key naming the owner in `owner_id`; a disabled owner's keys answer `DISABLED`. Needs `api.owner.update`.",
    params(
        ("workspace" = String, Path),
        ("owner_id" = String, Path, description = "1-128 characters without control characters, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` of the version to replace (fails when the owner does not exist)"),
    ),
    request_body(content = PutOwnerRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced; `ETag` is the version", body = OwnerRecord),
        (status = 201, description = "Created; `ETag` is the version", body = OwnerRecord),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn put_owner() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/owners/{owner_id}",
    tag = "owners",
    operation_id = "get_owner",
    summary = "Get an owner",
    description = "With `key_count`, the keys naming it that are not revoked. Needs `api.owner.view`. `ETag` is the version.",
    params(("workspace" = String, Path), ("owner_id" = String, Path)),
    responses(
        (status = 200, description = "The owner", body = OwnerRecord),
        (status = 400, description = "`validation_failed` (`owner_id`)", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn get_owner() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/owners",
    tag = "owners",
    operation_id = "list_owners",
    summary = "List owners by id",
    description = "Needs `api.owner.view`.",
    params(
        ("workspace" = String, Path),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = OwnerList),
        (status = 400, description = "`validation_failed` or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn list_owners() {}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/owners/{owner_id}/credits",
    tag = "owners",
    operation_id = "change_owner_credits",
    summary = "Change an owner's credits",
    description = "As for a key's credits, on the balance all the owner's keys share. Audited as `owner.credits`. Needs `api.owner.update`.",
    params(
        ("workspace" = String, Path),
        ("owner_id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters: a retry with the same key and body within 24 h gets the first answer again, and the operation is applied once"),
    ),
    request_body(content = CreditOpRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The remaining credits", body = CreditsLeft),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`idempotency_in_progress`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed` (concurrent changes kept winning)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn change_owner_credits() {}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "A JWT (claims `sub`, `workspace`, `permissions`) or a root Keyward key whose scopes hold the `api.key.*` permissions.".to_owned(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/webhooks",
    tag = "webhooks",
    operation_id = "create_webhook",
    summary = "Create a webhook endpoint",
    description = "`url` must be https and resolve only to public addresses (checked again before every delivery; redirects are not followed). The answer carries `secret` (`whsec_…`, Standard Webhooks) this once. At most 20 per workspace. Needs `api.webhook.manage`.",
    params(("workspace" = String, Path)),
    request_body(content = CreateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The endpoint and its secret, shown once", body = WebhookWithSecret),
        (status = 400, description = "`validation_failed` naming the field, or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn create_webhook() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/webhooks",
    tag = "webhooks",
    operation_id = "list_webhooks",
    summary = "List webhook endpoints",
    description = "Never their secrets. Needs `api.webhook.view`.",
    params(
        ("workspace" = String, Path),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = WebhookList),
        (status = 400, description = "`validation_failed` or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn list_webhooks() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/webhooks/{id}",
    tag = "webhooks",
    operation_id = "get_webhook",
    summary = "Get a webhook endpoint",
    description = "Needs `api.webhook.view`.",
    params(("workspace" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "The endpoint (`ETag` = version)", body = WebhookRecord),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn get_webhook() {}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace}/webhooks/{id}",
    tag = "webhooks",
    operation_id = "update_webhook",
    summary = "Change a webhook endpoint",
    description = "`url`, `events`, `description` (`null` clears), `enabled`. `If-Match` honoured. Needs `api.webhook.manage`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The version read (`ETag`)"),
    ),
    request_body(content = UpdateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint", body = WebhookRecord),
        (status = 400, description = "`validation_failed` or `invalid_json`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn update_webhook() {}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace}/webhooks/{id}",
    tag = "webhooks",
    operation_id = "delete_webhook",
    summary = "Delete a webhook endpoint",
    description = "Needs `api.webhook.manage`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The version read (`ETag`)"),
    ),
    responses(
        (status = 200, description = "The deleted endpoint", body = WebhookRecord),
        (status = 400, description = "`validation_failed` (a malformed `If-Match`)", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
        (status = 412, description = "`precondition_failed`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn delete_webhook() {}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace}/webhooks/{id}/deliveries",
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    summary = "An endpoint's delivery attempts, newest first",
    description = "Event, attempt, status, latency, the receiver's response code (never its body); kept 30 days. Needs `api.webhook.view`.",
    params(
        ("workspace" = String, Path),
        ("id" = String, Path),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = DeliveryList),
        (status = 400, description = "`validation_failed` or `invalid_cursor`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn list_webhook_deliveries() {}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace}/webhooks/{id}/test",
    tag = "webhooks",
    operation_id = "test_webhook",
    summary = "Send a `webhook.test` event now",
    description = "Whatever the endpoint subscribes to, enabled or not; answers the attempt (a failed delivery is a 200 with `status: failed`). Needs `api.webhook.manage`.",
    params(("workspace" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "The attempt", body = Delivery),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
fn test_webhook() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyward management API",
        description = "Issue, list, update, rotate and revoke API keys. Errors are RFC 9457 `application/problem+json` with `code` and `request_id`."
    ),
    paths(
        create_key, list_keys, get_key, update_key, revoke_key, rotate_key, list_audit, import_keys,
        create_role, list_roles, get_role, update_role, delete_role, change_key_credits,
        put_owner, get_owner, list_owners, change_owner_credits, get_key_usage, get_usage,
        create_webhook, list_webhooks, get_webhook, update_webhook, delete_webhook,
        list_webhook_deliveries, test_webhook
    ),
    components(schemas(
        KeyRecord, KeyId, KeyStatus, RateLimit, Timestamp, Problem, FieldError, KeyWithSecret,
        KeyList, AuditList, AuditEvent, CreateKeyRequest, UpdateKeyRequest, RotateKeyRequest,
        RoleRecord, RoleList, CreateRoleRequest, UpdateRoleRequest, ImportRequest, ImportItem,
        Imported, ImportResult, KeyUsage, UsagePeriod, UsageList, UsageRow, WebhookRecord,
        WebhookWithSecret, WebhookList, Delivery, DeliveryList, CreateWebhookRequest, Outcomes,
        UpdateWebhookRequest, NamedRateLimit, Credits, Refill, Interval, OwnerRecord,
        OwnerStatus, OwnerList, CreditsLeft, CreditOpRequest, PutOwnerRequest
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "keys", description = "API keys"),
        (name = "roles", description = "Named permission sets keys hold"),
        (name = "owners", description = "The customers behind keys, with shared limits and credits"),
        (name = "usage", description = "Requests by outcome and credits spent, as the edge counted them"),
        (name = "webhooks", description = "Signed event deliveries (Standard Webhooks)"),
        (name = "audit", description = "Audit trail")
    )
)]
struct ApiDoc;

/// The document as pretty JSON (what `openapi.json` holds).
#[must_use]
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::document;

    #[test]
    fn openapi_json_matches_the_generated_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");
        let generated = document();
        if std::env::var_os("KEYWARD_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi.json is out of date: regenerate it with \
             `KEYWARD_WRITE_OPENAPI=1 cargo test -p keyward-functions openapi` and commit it"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_management_operation() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let ops: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        let management = crate::operation::OPERATIONS
            .iter()
            .filter(|r| matches!(r.access, crate::operation::Access::Permission(_)))
            .count();
        assert_eq!(ops, management);
        assert_eq!(ops, 27);
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    /// The document's operations are exactly the table's management rows: same method and path,
    /// `operationId` from the function, and the row's permission named in the description.
    #[test]
    fn the_documented_operations_are_the_operation_tables_rows() {
        use crate::operation::{Access, OPERATIONS};
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let mut table: Vec<(String, String)> = Vec::new();
        for row in OPERATIONS {
            let Access::Permission(permission) = row.access else {
                continue;
            };
            table.push((row.method.to_owned(), row.path.to_owned()));
            let op = &doc["paths"][row.path][row.method.to_ascii_lowercase()];
            assert_eq!(
                op["operationId"],
                row.operation_id(),
                "{} {}",
                row.method,
                row.path
            );
            let description = op["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("`{}`", permission.as_str())),
                "{} {} must name its permission `{}`",
                row.method,
                row.path,
                permission.as_str()
            );
        }
        documented.sort();
        table.sort();
        assert_eq!(documented, table);
    }
}
