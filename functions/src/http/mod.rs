//! The HTTP side of every management function: find the row, authenticate, read the typed
//! input, call the operation, write the answer. Domain logic lives in [`crate::ops`].

pub mod idempotency;
pub mod reply;
pub mod request;

use std::net::IpAddr;
use std::time::Instant;

use keyward_common::{FieldError, KeyId};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument as _;

use crate::api;
use crate::app::App;
use crate::auth::{Caller, Credentials, authenticate};
use crate::error::ApiError;
use crate::input::query::Query;
use crate::input::{self, ScopePolicy, valid_workspace};
use crate::operation::{Access, Operation, PathParams, Resolution, Row, resolve};
use crate::ops::{self, Now};
use reply::{Reply, problem_response};
use request::{Ctx, MAX_IMPORT_BODY, context, expected_version, json_body, json_body_within};

pub use request::MAX_BODY;

/// Shown with every new secret.
pub const WARNING: &str = "Store this key now: it will not be shown again.";

/// Serves one request for the function `function` (its rows of the operation table): the whole
/// function body behind `lambda_http`.
pub async fn handle(app: &App, function: &str, req: Request) -> Response<Body> {
    let ctx = context(&req);
    let span = tracing::info_span!("request", request_id = %ctx.request_id, function);
    async {
        let started = Instant::now();
        let response = match dispatch(app, function, &req, &ctx).await {
            Ok(r) => r,
            Err(e) => {
                if let ApiError::Internal(cause) = &e {
                    tracing::error!(error = format!("{cause:#}"), "request failed");
                }
                problem_response(&e, &ctx.request_id)
            }
        };
        tracing::info!(
            method = %req.method(),
            path = req.uri().path(),
            raw_path = req.raw_http_path(),
            status = response.status().as_u16(),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request handled"
        );
        response
    }
    .instrument(span)
    .await
}

async fn dispatch(
    app: &App,
    function: &str,
    req: &Request,
    ctx: &Ctx,
) -> Result<Response<Body>, ApiError> {
    let (row, mut params) = match resolve(req.method().as_str(), req.uri().path(), |r| {
        r.function == function
    }) {
        Resolution::Found(row, params) => (row, params),
        Resolution::MethodNotAllowed(allow) => {
            return Err(ApiError::MethodNotAllowed(allow.join(", ")));
        }
        Resolution::NotFound => return Err(ApiError::NotFound),
    };
    // Behind API Gateway the parameters arrive decoded; prefer them to the raw path's.
    if let Some(p) = req.path_parameters_ref() {
        if let Some(ws) = p.first("workspace") {
            params.workspace = Some(ws.to_owned());
        }
        if let (Some(id), Some(_)) = (p.first("id"), &params.id) {
            params.id = Some(id.to_owned());
        }
        if let (Some(name), Some(_)) = (p.first("name"), &params.name) {
            params.name = Some(name.to_owned());
        }
        if let (Some(owner), Some(_)) = (p.first("owner_id"), &params.owner_id) {
            params.owner_id = Some(owner.to_owned());
            params.owner_id_decoded = true;
        }
    }
    let caller = authorize(app, row, &params, req, ctx).await?;
    let now = Now { ms: ctx.now_ms };
    let reply = idempotent(app, row.op, &caller, &params, req, now).await?;
    reply.into_response(&ctx.request_id)
}

/// Checks the workspace and the caller's credentials against the row's permission.
async fn authorize(
    app: &App,
    row: &Row,
    params: &PathParams,
    req: &Request,
    ctx: &Ctx,
) -> Result<Caller, ApiError> {
    let workspace = params.workspace.clone().unwrap_or_default();
    if !valid_workspace(&workspace) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "workspace",
            "must be 1-64 characters of A-Z a-z 0-9 _ -",
        )]));
    }
    let Access::Permission(permission) = row.access else {
        return Err(ApiError::NotFound);
    };
    let credentials = Credentials {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        workspace: &workspace,
        client_ip: ctx
            .source_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok()),
    };
    let now = Now { ms: ctx.now_ms }.secs();
    let identity = authenticate(
        &app.config.jwt,
        app.store.as_ref(),
        credentials,
        permission,
        now,
    )
    .await?;
    Ok(Caller {
        actor: identity.actor,
        permissions: identity.permissions,
        workspace,
        request_id: ctx.request_id.clone(),
        source_ip: ctx.source_ip.clone(),
    })
}

fn key_id(params: &PathParams) -> Result<KeyId, ApiError> {
    params
        .id
        .as_deref()
        .and_then(|i| KeyId::parse(i).ok())
        .ok_or(ApiError::NotFound)
}

fn policy(app: &App) -> ScopePolicy<'_> {
    ScopePolicy {
        defaults: &app.config.default_scopes,
        allowed: app.config.allowed_scopes.as_deref(),
    }
}

/// [`call`], answered once per `Idempotency-Key` for create, rotate, import and credit
/// operations (a retried `increment` is applied once): a retry of the
/// same request by the same caller within a day gets the first answer again (secret included),
/// another request with the key a 422, a retry while the first still runs waits for it (then
/// 409 `idempotency_in_progress`). A failed request keeps nothing: it can be retried. An applied
/// request whose answer cannot be kept still gets it ([`keep_answer`]).
async fn idempotent(
    app: &App,
    op: Operation,
    caller: &Caller,
    params: &PathParams,
    req: &Request,
    now: Now,
) -> Result<Reply, ApiError> {
    use crate::store::IdemClaim;
    use idempotency::{self as idem, KEEP_S, LEASE_S};
    let Some(key) = idem::key_of(req)? else {
        return call(app, op, caller, params, req, now).await;
    };
    if !matches!(
        op,
        Operation::CreateKey
            | Operation::RotateKey
            | Operation::ImportKeys
            | Operation::KeyCredits
            | Operation::OwnerCredits
    ) {
        return call(app, op, caller, params, req, now).await;
    }
    let ws = &caller.workspace;
    let slot = idem::slot(&caller.actor, &key);
    let fingerprint = idem::fingerprint(req);
    let sealer = idem::Sealer::derive(&app.config.cursor_secret);
    let started = std::time::Instant::now();
    loop {
        let t = Now {
            ms: now.ms + u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
        }
        .secs();
        let claim = app
            .store
            .idem_claim(ws, &slot, &fingerprint, t, t + LEASE_S, t + KEEP_S)
            .await?;
        match claim {
            IdemClaim::Claimed => break,
            IdemClaim::Existing(r) if r.fingerprint != fingerprint => {
                return Err(ApiError::IdempotencyKeyReused);
            }
            IdemClaim::Existing(r) => match r.sealed {
                Some(sealed) => return sealer.open(ws, &slot, &sealed)?.into_reply(),
                None if started.elapsed() < std::time::Duration::from_secs(10) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                None => return Err(ApiError::IdempotencyInProgress),
            },
        }
    }
    match call(app, op, caller, params, req, now).await {
        Ok(reply) => {
            keep_answer(app, ws, &slot, &sealer, &reply).await;
            Ok(reply)
        }
        Err(e) => {
            app.store.idem_release(ws, &slot).await?;
            Err(e)
        }
    }
}

/// Keeps the answer of an applied operation for its `Idempotency-Key` (two attempts). When it
/// cannot be kept, the caller still gets the answer: the operation has been applied, and a 500
/// would invite the retry that, once the claim's lease ends, applies it again. The failure is
/// logged (the slot and the cause, never the answer, which may hold a secret); until the lease
/// ends a retry waits and gets 409 `idempotency_in_progress`.
async fn keep_answer(app: &App, ws: &str, slot: &str, sealer: &idempotency::Sealer, reply: &Reply) {
    let sealed = match sealer.seal(ws, slot, &idempotency::Kept::of(reply)) {
        Ok(sealed) => sealed,
        Err(err) => {
            tracing::error!(error = %err, slot, "the answer could not be sealed for its Idempotency-Key");
            return;
        }
    };
    let mut kept = app.store.idem_complete(ws, slot, &sealed).await;
    if kept.is_err() {
        kept = app.store.idem_complete(ws, slot, &sealed).await;
    }
    if let Err(err) = kept {
        tracing::error!(
            error = format!("{err:#}"),
            slot,
            "the answer of an applied request could not be kept for its Idempotency-Key"
        );
    }
}

/// Reads the operation's typed input, calls it, and shapes its answer.
async fn call(
    app: &App,
    op: Operation,
    caller: &Caller,
    params: &PathParams,
    req: &Request,
    now: Now,
) -> Result<Reply, ApiError> {
    let ws = &caller.workspace;
    match op {
        Operation::CreateKey => {
            let input = input::key::create(
                json_body(req, true)?,
                policy(app),
                &app.config.default_prefix,
                now.secs(),
            )
            .map_err(ApiError::Validation)?;
            let mut created = ops::create::create(app, caller, input, now).await?;
            shown(app, &mut created.record).await?;
            let id = created.record.id.clone();
            Ok(Reply::json(StatusCode::CREATED, &with_secret(created))?
                .etag(1)
                .location(format!("/v1/workspaces/{ws}/keys/{id}")))
        }
        Operation::GetKey => {
            let record = ops::get::get(app, caller, &key_id(params)?).await?;
            key_reply(app, record).await
        }
        Operation::UpdateKey => {
            let id = key_id(params)?;
            let patch = input::key::patch(json_body(req, true)?, policy(app), now.secs())
                .map_err(ApiError::Validation)?;
            let expected = expected_version(req)?;
            let record = ops::update::update(app, caller, &id, patch, expected, now).await?;
            key_reply(app, record).await
        }
        Operation::RevokeKey => {
            let id = key_id(params)?;
            let q = Query::parse_str(req.uri().query().unwrap_or(""), &["erase"])?;
            let erase = match q.get("erase") {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => {
                    return Err(ApiError::Validation(vec![FieldError::new(
                        "erase",
                        "must be true or false",
                    )]));
                }
            };
            let expected = expected_version(req)?;
            let record = ops::revoke::revoke(app, caller, &id, erase, expected, now).await?;
            key_reply(app, record).await
        }
        Operation::RotateKey => {
            let id = key_id(params)?;
            let grace = input::key::rotate(json_body(req, false)?).map_err(ApiError::Validation)?;
            let expected = expected_version(req)?;
            let mut rotated = ops::rotate::rotate(app, caller, &id, grace, expected, now).await?;
            shown(app, &mut rotated.record).await?;
            let v = rotated.record.version;
            Ok(Reply::json(StatusCode::OK, &with_secret(rotated))?.etag(v))
        }
        Operation::ListKeys => {
            let q = Query::parse_str(req.uri().query().unwrap_or(""), ops::list_keys::PARAMS)?;
            let input = ops::list_keys::Input::from_query(&q)?;
            let page = ops::list_keys::list_keys(app, caller, input).await?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::ListAudit => {
            let q = Query::parse_str(req.uri().query().unwrap_or(""), ops::list_audit::PARAMS)?;
            let page = ops::list_audit::list_audit(app, caller, q.limit()?, q.cursor()).await?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::ImportKeys => {
            let body = json_body_within(req, true, MAX_IMPORT_BODY)?;
            let items =
                input::import::import(body, policy(app), &app.config.default_prefix, now.secs())
                    .map_err(ApiError::Validation)?;
            let imported = ops::import::import(app, caller, items, now).await?;
            Reply::json(StatusCode::OK, &imported)
        }
        Operation::CreateRole => {
            let new = input::role::create(json_body(req, true)?, policy(app))
                .map_err(ApiError::Validation)?;
            let role = ops::roles::create(app, caller, new, now).await?;
            let location = format!("/v1/workspaces/{ws}/roles/{}", role.name);
            Ok(Reply::json(StatusCode::CREATED, &role)?
                .etag(role.version)
                .location(location))
        }
        Operation::ListRoles => {
            let q = Query::parse_str(req.uri().query().unwrap_or(""), &["limit", "cursor"])?;
            let page = ops::roles::list(app, caller, q.limit()?, q.cursor()).await?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::GetRole => {
            let role = ops::roles::get(app, caller, &role_name(params)?).await?;
            Ok(Reply::json(StatusCode::OK, &role)?.etag(role.version))
        }
        Operation::UpdateRole => {
            let name = role_name(params)?;
            let patch = input::role::patch(json_body(req, true)?, policy(app))
                .map_err(ApiError::Validation)?;
            let expected = expected_version(req)?;
            let role = ops::roles::update(app, caller, &name, patch, expected, now).await?;
            Ok(Reply::json(StatusCode::OK, &role)?.etag(role.version))
        }
        Operation::DeleteRole => {
            let name = role_name(params)?;
            let expected = expected_version(req)?;
            let role = ops::roles::delete(app, caller, &name, expected, now).await?;
            Reply::json(StatusCode::OK, &role)
        }
        Operation::GetKeyUsage => {
            let q = Query::parse_str(
                req.uri().query().unwrap_or(""),
                &["from", "to", "granularity"],
            )?;
            let range = input::usage::range(&q, now.secs())?;
            let usage = ops::usage::key_usage(app, caller, &key_id(params)?, range).await?;
            Reply::json(StatusCode::OK, &usage)
        }
        Operation::GetUsage => {
            let raw = req.uri().query().unwrap_or("");
            let q = Query::parse_str(
                raw,
                &[
                    "from",
                    "to",
                    "granularity",
                    "group_by",
                    "owner_id",
                    "limit",
                    "cursor",
                ],
            )?;
            let range = input::usage::range(&q, now.secs())?;
            let group = input::usage::group_by(&q)?;
            let owner = input::usage::owner_filter(&q)?;
            let rows = ops::usage::workspace_rows(app, caller, range, group, owner).await?;
            if wants_csv(req) {
                return Ok(Reply::csv(ops::usage::csv(&rows)));
            }
            // A cursor continues only the query it came from (same range and grouping).
            let filters = format!(
                "usage:{}:{}:{}:{}:{}",
                range.from,
                range.to,
                range.granularity.as_str(),
                group.as_str(),
                owner.unwrap_or_default()
            );
            let page = ops::usage::page(
                app,
                caller,
                rows,
                &filters,
                q.limit()?,
                q.cursor().as_deref(),
            )?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::CreateWebhook => {
            let new =
                input::webhook::create(json_body(req, true)?, app.config.webhook_allow_loopback)
                    .map_err(ApiError::Validation)?;
            let made = ops::webhooks::create(app, caller, new, now).await?;
            let location = format!("/v1/workspaces/{ws}/webhooks/{}", made.webhook.id);
            let v = made.webhook.version;
            Ok(Reply::json(StatusCode::CREATED, &made)?
                .etag(v)
                .location(location))
        }
        Operation::ListWebhooks => {
            let q = Query::parse_str(req.uri().query().unwrap_or(""), &["limit", "cursor"])?;
            let page = ops::webhooks::list(app, caller, q.limit()?, q.cursor()).await?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::GetWebhook => {
            let hook = ops::webhooks::get(app, caller, &webhook_id(params)?).await?;
            Ok(Reply::json(StatusCode::OK, &hook)?.etag(hook.version))
        }
        Operation::UpdateWebhook => {
            let id = webhook_id(params)?;
            let patch =
                input::webhook::patch(json_body(req, true)?, app.config.webhook_allow_loopback)
                    .map_err(ApiError::Validation)?;
            let expected = expected_version(req)?;
            let hook = ops::webhooks::update(app, caller, &id, patch, expected, now).await?;
            Ok(Reply::json(StatusCode::OK, &hook)?.etag(hook.version))
        }
        Operation::DeleteWebhook => {
            let id = webhook_id(params)?;
            let expected = expected_version(req)?;
            let hook = ops::webhooks::delete(app, caller, &id, expected, now).await?;
            Reply::json(StatusCode::OK, &hook)
        }
        Operation::ListDeliveries => {
            let id = webhook_id(params)?;
            let q = Query::parse_str(req.uri().query().unwrap_or(""), &["limit", "cursor"])?;
            let page = ops::webhooks::deliveries(app, caller, &id, q.limit()?, q.cursor()).await?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::TestWebhook => {
            let id = webhook_id(params)?;
            let delivery = ops::webhooks::test(app, caller, &id, now).await?;
            Reply::json(StatusCode::OK, &delivery)
        }
        Operation::KeyCredits => {
            let id = key_id(params)?;
            let change =
                input::credits::credit_op(json_body(req, true)?).map_err(ApiError::Validation)?;
            let remaining = ops::credits::key(app, caller, &id, change, now).await?;
            Reply::json(StatusCode::OK, &api::CreditsLeft { remaining })
        }
        Operation::PutOwner => {
            let owner_id = owner_id(params)?;
            let settings =
                input::credits::put_owner(json_body(req, true)?).map_err(ApiError::Validation)?;
            let expected = expected_version(req)?;
            let put = ops::owners::put(app, caller, &owner_id, settings, expected, now).await?;
            let v = put.owner.version;
            if put.created {
                let location = format!(
                    "/v1/workspaces/{ws}/owners/{}",
                    params.owner_id.as_deref().unwrap_or_default()
                );
                Ok(Reply::json(StatusCode::CREATED, &put.owner)?
                    .etag(v)
                    .location(location))
            } else {
                Ok(Reply::json(StatusCode::OK, &put.owner)?.etag(v))
            }
        }
        Operation::GetOwner => {
            let owner = ops::owners::get(app, caller, &owner_id(params)?).await?;
            let v = owner.version;
            Ok(Reply::json(StatusCode::OK, &owner)?.etag(v))
        }
        Operation::ListOwners => {
            let q = Query::parse_str(req.uri().query().unwrap_or(""), &["limit", "cursor"])?;
            let page = ops::owners::list(app, caller, q.limit()?, q.cursor()).await?;
            Reply::json(StatusCode::OK, &page)
        }
        Operation::OwnerCredits => {
            let owner_id = owner_id(params)?;
            let change =
                input::credits::credit_op(json_body(req, true)?).map_err(ApiError::Validation)?;
            let remaining = ops::owners::credits(app, caller, &owner_id, change, now).await?;
            Reply::json(StatusCode::OK, &api::CreditsLeft { remaining })
        }
        // Served by their own functions (`usage`, `console`), never through here.
        Operation::ReportUsage | Operation::Console | Operation::ConsoleFile => {
            Err(ApiError::NotFound)
        }
    }
}

/// The `{id}` of a webhook path; an id that cannot exist is simply not found.
fn webhook_id(params: &PathParams) -> Result<String, ApiError> {
    params
        .id
        .clone()
        .filter(|id| {
            id.len() == 27
                && id.starts_with("wh_")
                && id[3..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or(ApiError::NotFound)
}

/// Whether the caller asked for CSV (`Accept: text/csv`).
fn wants_csv(req: &Request) -> bool {
    req.headers()
        .get_all(lambda_http::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.trim()
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
}

/// The 200 answer with one key: its effective permissions filled in, `ETag` its version.
async fn key_reply(app: &App, mut record: keyward_common::KeyRecord) -> Result<Reply, ApiError> {
    shown(app, &mut record).await?;
    let v = record.version;
    Ok(Reply::json(StatusCode::OK, &record)?.etag(v))
}

/// Fills in a key's effective permissions for an answer.
async fn shown(app: &App, record: &mut keyward_common::KeyRecord) -> Result<(), ApiError> {
    ops::show_permissions(app, std::slice::from_mut(record)).await
}

/// The `{owner_id}` of an owner path, percent-decoded (unless API Gateway did) and checked.
fn owner_id(params: &PathParams) -> Result<String, ApiError> {
    let raw = params.owner_id.as_deref().unwrap_or_default();
    input::credits::owner_id(raw, !params.owner_id_decoded)
        .map_err(|e| ApiError::Validation(vec![e]))
}

/// The `{name}` of a role path; a name that cannot exist is simply not found.
fn role_name(params: &PathParams) -> Result<String, ApiError> {
    params
        .name
        .clone()
        .filter(|n| input::role::name("name", n).is_ok())
        .ok_or(ApiError::NotFound)
}

fn with_secret(k: ops::WithSecret) -> api::KeyWithSecret {
    api::KeyWithSecret {
        record: k.record,
        key: k.secret,
        warning: WARNING,
    }
}
