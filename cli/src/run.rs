//! What each command does: call the client, print the answer for people or for scripts, and
//! say which exit code that is.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use keyward_common::{KeyRecord, KeyStatus, Timestamp};
use serde_json::Value;

use crate::args::{
    AuditArgs, Cli, Command, CreateArgs, GroupBy, KeysCommand, ListArgs, OwnersCommand,
    RolesCommand, Status, Switch, UpdateArgs, UsageCommand, VerifyArgs, Window,
    rate_limits_on_the_wire,
};
use crate::client::{
    self, Answer, ChangeCredits, Client, ClientError, CreateKey, CreateRole, Credits,
    KeyWithSecret, ListKeys, Page, Paging, PutOwner, RotateKey, UpdateKey, UpdateRole, Usage,
    UsageQuery, VerifyKey,
};
use crate::import;
use crate::output::{Style, Table, fields, list};

/// The documented exit codes.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// The API refused, could not be reached, or (`verify`) the key is not valid.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (clap uses the same code).
    pub const USAGE: u8 = 2;
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line asks for something that cannot be done (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The API or the network (exit 1).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Anything else (exit 1), e.g. a file that cannot be read.
    #[error("{0}")]
    Other(String),
    /// Already reported on standard output/error; only the exit code is left (exit 1).
    #[error("")]
    Reported,
}

impl Failure {
    /// Prints the failure on standard error and gives its exit code.
    #[must_use]
    pub fn report(&self) -> ExitCode {
        let code = match self {
            Self::Usage(msg) => {
                eprintln!("error: {msg}");
                exit::USAGE
            }
            Self::Client(ClientError::Api(e)) => {
                eprintln!("error: {} (code: {}, HTTP {})", e.detail, e.code, e.status);
                for f in &e.problem.errors {
                    eprintln!("  {}: {}", f.field, f.message);
                }
                if let Some(id) = &e.request_id {
                    eprintln!("request id: {id}");
                }
                exit::FAILED
            }
            Self::Client(e) => {
                eprintln!("error: {e}");
                exit::FAILED
            }
            Self::Other(msg) => {
                eprintln!("error: {msg}");
                exit::FAILED
            }
            Self::Reported => exit::FAILED,
        };
        ExitCode::from(code)
    }
}

/// The context every command runs in.
#[derive(Debug)]
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// `--json`.
    pub json: bool,
    /// Table style.
    pub style: Style,
}

/// Runs the parsed command line.
///
/// # Errors
/// A [`Failure`] saying what went wrong and which exit code it is.
pub async fn run(cli: Cli, client: Client) -> Result<(), Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let ctx = Ctx {
        client,
        json: cli.json,
        style: Style {
            tty: std::io::stdout().is_terminal(),
            now,
        },
    };
    match cli.command {
        Command::Keys(k) => keys(&ctx, k).await,
        Command::Roles(r) => roles(&ctx, r).await,
        Command::Owners(o) => owners(&ctx, o).await,
        Command::Usage(u) => usage(&ctx, u).await,
        Command::Audit(a) => audit(&ctx, a).await,
        Command::Verify(v) => verify(&ctx, v).await,
    }
}

impl Ctx {
    /// Prints `json` for scripts, else `text`.
    fn print(&self, json: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
            );
        } else {
            print!("{}", text());
        }
    }

    /// Prints a table, or a note on standard error when it is empty.
    fn table(&self, json: &Value, table: &Table, empty: &str) {
        self.print(json, || table.render(self.style.tty));
        if !self.json && table.is_empty() && self.style.tty {
            eprintln!("{empty}");
        }
    }
}

async fn keys(ctx: &Ctx, command: KeysCommand) -> Result<(), Failure> {
    let c = &ctx.client;
    match command {
        KeysCommand::Create(args) => {
            let created = c.create_key(&create_body(args), None).await?;
            show_secret(ctx, &created);
        }
        KeysCommand::List(args) => list_keys(ctx, args).await?,
        KeysCommand::Get { id } => {
            let key = c.get_key(&id).await?;
            ctx.print(&key.json, || key_fields(&key.value, &key.json, ctx.style));
        }
        KeysCommand::Update(args) => {
            let force = args.force;
            let id = args.id.clone();
            let patch = update_body(args)?;
            // Read first, then change only that version: a concurrent change is a 412, not
            // silently overwritten.
            let version = if force {
                None
            } else {
                Some(c.get_key(&id).await?.value.version)
            };
            let key = c.update_key(&id, &patch, version).await?;
            ctx.print(&key.json, || key_fields(&key.value, &key.json, ctx.style));
        }
        KeysCommand::Revoke { id, yes } => {
            if !yes {
                confirm_revoke(c, &id).await?;
            }
            let key = c.revoke_key(&id).await?;
            ctx.print(&key.json, || {
                format!("Revoked {} ({}).\n", key.value.id, key.value.name)
            });
        }
        KeysCommand::Rotate { id, grace } => {
            let body = RotateKey {
                grace_period_s: grace,
            };
            let rotated = c.rotate_key(&id, &body, None).await?;
            show_secret(ctx, &rotated);
        }
        KeysCommand::Import { file } => import_file(ctx, &file).await?,
        KeysCommand::Credits(args) => {
            let (op, value) = args.change();
            let left = c
                .change_credits(&args.id, &ChangeCredits { op, value })
                .await?;
            ctx.print(&left.json, || format!("{}\n", left.value.remaining));
        }
    }
    Ok(())
}

fn create_body(args: CreateArgs) -> CreateKey {
    let (rate_limit, rate_limits) = rate_limits_on_the_wire(&args.rate_limits);
    CreateKey {
        name: args.name,
        scopes: (!args.scopes.is_empty()).then_some(args.scopes),
        roles: args.roles,
        owner_id: args.owner,
        expires_in: args.expires_in,
        allowed_ips: args.ips,
        rate_limit,
        rate_limits,
        credits: args.credits.map(|remaining| Credits {
            remaining,
            refill: args.refill,
        }),
        status: args.disabled.then_some(KeyStatus::Disabled),
        ..CreateKey::default()
    }
}

/// The PATCH an `update` command line asks for.
///
/// # Errors
/// A usage failure when it asks for nothing or gives a time that is not RFC 3339.
pub fn update_body(args: UpdateArgs) -> Result<UpdateKey, Failure> {
    let expires_at = match (args.expires_at, args.no_expiry) {
        (_, true) => Some(None),
        (Some(t), false) => Some(Some(Timestamp::parse_rfc3339(&t).map_err(|_| {
            Failure::Usage(format!("--expires-at `{t}` is not an RFC 3339 time"))
        })?)),
        (None, false) => None,
    };
    let (rate_limit, rate_limits) = if args.no_rate_limit {
        (Some(None), None)
    } else {
        match rate_limits_on_the_wire(&args.rate_limits) {
            (Some(one), _) => (Some(Some(one)), None),
            (None, named) if !named.is_empty() => (None, Some(named)),
            _ => (None, None),
        }
    };
    let replace = |values: Vec<String>, none: bool| {
        if none {
            Some(Vec::new())
        } else {
            (!values.is_empty()).then_some(values)
        }
    };
    let patch = UpdateKey {
        name: args.name,
        scopes: replace(args.scopes, args.no_scopes),
        roles: replace(args.roles, args.no_roles),
        owner_id: if args.no_owner {
            Some(None)
        } else {
            args.owner.map(Some)
        },
        meta: None,
        expires_at,
        allowed_ips: if args.any_ip {
            Some(None)
        } else {
            (!args.ips.is_empty()).then_some(Some(args.ips))
        },
        rate_limit,
        rate_limits,
        credits: if args.no_credits {
            Some(None)
        } else {
            args.credits.map(|remaining| {
                Some(Credits {
                    remaining,
                    refill: args.refill,
                })
            })
        },
        status: args.status.map(|s| match s {
            Switch::Active => KeyStatus::Active,
            Switch::Disabled => KeyStatus::Disabled,
        }),
    };
    if patch.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one setting (see `keyward keys update --help`)"
                .to_owned(),
        ));
    }
    Ok(patch)
}

/// Asks on the terminal; without one, refuses (a script must say `--yes`).
async fn confirm_revoke(c: &Client, id: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "revoking needs confirmation: pass --yes (standard input is not a terminal)".to_owned(),
        ));
    }
    let key = c.get_key(id).await?.value;
    eprint!(
        "Revoke {} ({})? Applications using this key will stop working, and this cannot be \
         undone. [y/N] ",
        key.id, key.name
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Other(format!("reading the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::Other("not revoked".to_owned()))
    }
}

/// Create and rotate: the record, then the secret, once. On a terminal the warning goes to
/// standard error so that a copy of the output holds only what is needed.
fn show_secret(ctx: &Ctx, answer: &Answer<KeyWithSecret>) {
    let KeyWithSecret { record, key } = &answer.value;
    ctx.print(&answer.json, || {
        let mut text = key_fields(record, &answer.json, ctx.style);
        if ctx.style.tty {
            text.push_str(&format!("\nkey: {}\n", key.expose()));
        } else {
            text.push_str(&format!("key\t{}\n", key.expose()));
        }
        text
    });
    if !ctx.json && ctx.style.tty {
        eprintln!("Store this key now: it will not be shown again.");
    }
}

/// Roles of a record's JSON (present once roles exist on the deployment).
fn strings(json: &Value, field: &str) -> Vec<String> {
    json[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn key_fields(k: &KeyRecord, json: &Value, style: Style) -> String {
    let limits = k.rate_limit.map_or_else(
        || "-".to_owned(),
        |r| format!("{}/{}s", r.limit, r.period_s),
    );
    let ips: Vec<String> = k.allowed_ips.iter().map(ToString::to_string).collect();
    let mut pairs = vec![
        ("id", k.id.to_string()),
        ("name", k.name.clone()),
        ("prefix", k.key_prefix.clone()),
        ("status", k.status.as_str().to_owned()),
        ("scopes", list(&k.scopes)),
        ("roles", list(&strings(json, "roles"))),
        (
            "owner",
            k.owner_id.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("allowed ips", list(&ips)),
        ("rate limit", limits),
    ];
    if let Some(n) = json["credits"]["remaining"].as_u64() {
        let refill = serde_json::from_value::<client::Refill>(json["credits"]["refill"].clone());
        pairs.push(("credits", credits_text(n, refill.ok().as_ref())));
    }
    pairs.extend([
        ("created", style.time(Some(k.created_at))),
        ("last used", style.time(k.last_used_at)),
        ("expires", style.time(k.expires_at)),
        ("version", k.version.to_string()),
    ]);
    fields(&pairs, style.tty)
}

/// The keys table: what the console and the seeds' dashboards show.
#[must_use]
pub fn keys_table(keys: &[KeyRecord], json: &[Value], style: Style) -> Table {
    let mut t = Table::new(&[
        "id",
        "name",
        "prefix",
        "roles",
        "owner",
        "status",
        "created",
        "last used",
        "expires",
    ]);
    for (i, k) in keys.iter().enumerate() {
        let roles = json.get(i).map(|j| strings(j, "roles")).unwrap_or_default();
        t.row(vec![
            k.id.to_string(),
            k.name.clone(),
            k.key_prefix.clone(),
            list(&roles),
            k.owner_id.clone().unwrap_or_else(|| "-".to_owned()),
            k.status.as_str().to_owned(),
            style.time(Some(k.created_at)),
            style.time(k.last_used_at),
            style.time(k.expires_at),
        ]);
    }
    t
}

async fn list_keys(ctx: &Ctx, args: ListArgs) -> Result<(), Failure> {
    let query = ListKeys {
        limit: args.limit,
        cursor: None,
        status: args.status.map(|s| match s {
            Status::Active => KeyStatus::Active,
            Status::Disabled => KeyStatus::Disabled,
            Status::Revoked => KeyStatus::Revoked,
        }),
        owner_id: args.owner,
        role: args.role,
    };
    let c = &ctx.client;
    let (keys, json) = pages(args.all, |cursor| {
        let q = ListKeys {
            cursor,
            ..query.clone()
        };
        async move { c.list_keys(&q).await }
    })
    .await?;
    let items = json["data"].as_array().cloned().unwrap_or_default();
    ctx.table(&json, &keys_table(&keys, &items, ctx.style), "No keys.");
    Ok(())
}

/// One page (with its `has_more` and `next_cursor`), or every page as one `{data}` list.
async fn pages<T, F, Fut>(all: bool, mut page: F) -> Result<(Vec<T>, Value), Failure>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Answer<Page<T>>, ClientError>>,
{
    if !all {
        let p = page(None).await?;
        return Ok((p.value.data, p.json));
    }
    let mut items = Vec::new();
    let mut json = Vec::new();
    let mut cursor = None;
    loop {
        let p = page(cursor).await?;
        json.extend(p.json["data"].as_array().cloned().unwrap_or_default());
        items.extend(p.value.data);
        match p.value.next_cursor {
            Some(c) if p.value.has_more => cursor = Some(c),
            _ => break,
        }
    }
    let json = serde_json::json!({ "data": json, "has_more": false, "next_cursor": null });
    Ok((items, json))
}

async fn import_file(ctx: &Ctx, path: &std::path::Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("reading {}: {e}", path.display())))?;
    let parsed =
        import::parse(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let outcome =
        crate::batches::import(&ctx.client, parsed, std::io::stderr().is_terminal()).await?;
    ctx.print(&outcome.to_json(), || outcome.summary());
    if outcome.refused.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

async fn roles(ctx: &Ctx, command: RolesCommand) -> Result<(), Failure> {
    let c = &ctx.client;
    let one = |r: &client::Role| {
        fields(
            &[
                ("name", r.name.clone()),
                ("description", r.description.clone().unwrap_or_default()),
                ("permissions", list(&r.permissions)),
                ("updated", ctx.style.time(r.updated_at)),
            ],
            ctx.style.tty,
        )
    };
    match command {
        RolesCommand::List { all } => {
            let (roles, json) = pages(all, |cursor| async move {
                c.list_roles(&Paging {
                    limit: None,
                    cursor,
                })
                .await
            })
            .await?;
            let mut t = Table::new(&["name", "permissions", "description", "updated"]);
            for r in &roles {
                t.row(vec![
                    r.name.clone(),
                    list(&r.permissions),
                    r.description.clone().unwrap_or_default(),
                    ctx.style.time(r.updated_at),
                ]);
            }
            ctx.table(&json, &t, "No roles.");
        }
        RolesCommand::Get { name } => {
            let r = c.get_role(&name).await?;
            ctx.print(&r.json, || one(&r.value));
        }
        RolesCommand::Create {
            name,
            permissions,
            description,
        } => {
            let body = CreateRole {
                name,
                description,
                permissions,
            };
            let r = c.create_role(&body).await?;
            ctx.print(&r.json, || one(&r.value));
        }
        RolesCommand::Update {
            name,
            permissions,
            description,
        } => {
            let patch = UpdateRole {
                description: description.map(Some),
                permissions: (!permissions.is_empty()).then_some(permissions),
            };
            if patch == UpdateRole::default() {
                return Err(Failure::Usage(
                    "nothing to change: give --permission or --description".to_owned(),
                ));
            }
            let r = c.update_role(&name, &patch).await?;
            ctx.print(&r.json, || one(&r.value));
        }
        RolesCommand::Delete { name } => {
            let json = c.delete_role(&name).await?;
            ctx.print(&json, || format!("Deleted role {name}.\n"));
        }
        RolesCommand::Preset => preset(ctx).await?,
    }
    Ok(())
}

/// The recommended roles (README "CLI"), the same ones the console's button creates.
pub use keyward_common::preset::PRESET_ROLES;

async fn preset(ctx: &Ctx) -> Result<(), Failure> {
    let mut t = Table::new(&["role", "result", "permissions"]);
    let mut created = Vec::new();
    for (name, description, permissions) in PRESET_ROLES {
        let body = CreateRole {
            name: (*name).to_owned(),
            description: Some((*description).to_owned()),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        };
        let result = match ctx.client.create_role(&body).await {
            Ok(r) => {
                created.push(r.json);
                "created"
            }
            Err(ClientError::Api(e)) if e.status == 409 => "exists (unchanged)",
            Err(e) => return Err(e.into()),
        };
        t.row(vec![
            (*name).to_owned(),
            result.to_owned(),
            permissions.join(", "),
        ]);
    }
    ctx.print(&serde_json::json!({ "created": created }), || {
        t.render(ctx.style.tty)
    });
    Ok(())
}

async fn owners(ctx: &Ctx, command: OwnersCommand) -> Result<(), Failure> {
    let c = &ctx.client;
    let one = |o: &client::Owner| {
        let limits: Vec<String> = o
            .rate_limits
            .iter()
            .map(|l| format!("{}={}/{}s", l.name, l.limit, l.period_s))
            .collect();
        fields(
            &[
                ("owner", o.owner_id.clone()),
                (
                    "status",
                    o.status.clone().unwrap_or_else(|| "active".into()),
                ),
                ("rate limits", list(&limits)),
                (
                    "credits",
                    o.credits.as_ref().map_or_else(
                        || "-".to_owned(),
                        |cr| credits_text(cr.remaining, cr.refill.as_ref()),
                    ),
                ),
                (
                    "keys",
                    o.key_count
                        .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                ),
            ],
            ctx.style.tty,
        )
    };
    match command {
        OwnersCommand::List { all } => {
            let (owners, json) = pages(all, |cursor| async move {
                c.list_owners(&Paging {
                    limit: None,
                    cursor,
                })
                .await
            })
            .await?;
            let mut t = Table::new(&["owner", "status", "credits", "keys"]);
            for o in &owners {
                t.row(vec![
                    o.owner_id.clone(),
                    o.status.clone().unwrap_or_else(|| "active".into()),
                    o.credits
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |cr| cr.remaining.to_string()),
                    o.key_count
                        .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                ]);
            }
            ctx.table(&json, &t, "No owners.");
        }
        OwnersCommand::Get { id } => {
            let o = c.get_owner(&id).await?;
            ctx.print(&o.json, || one(&o.value));
        }
        OwnersCommand::Put {
            id,
            status,
            rate_limits,
            credits,
            refill,
            meta,
        } => {
            let meta = meta
                .map(|m| match serde_json::from_str::<serde_json::Value>(&m) {
                    Ok(serde_json::Value::Object(o)) => Ok(o),
                    _ => Err(Failure::Usage(format!(
                        "--meta `{m}` is not a JSON object (e.g. '{{\"plan\": \"pro\"}}')"
                    ))),
                })
                .transpose()?;
            let (single, mut named) = rate_limits_on_the_wire(&rate_limits);
            if let Some(r) = single {
                named.push(client::NamedRateLimit {
                    name: "default".to_owned(),
                    limit: r.limit,
                    period_s: r.period_s,
                });
            }
            let body = PutOwner {
                status: status.map(|s| match s {
                    Switch::Active => "active".to_owned(),
                    Switch::Disabled => "disabled".to_owned(),
                }),
                meta,
                rate_limits: (!named.is_empty()).then_some(named),
                credits: credits.map(|remaining| Credits { remaining, refill }),
            };
            let o = c.put_owner(&id, &body).await?;
            ctx.print(&o.json, || one(&o.value));
        }
        OwnersCommand::Credits(args) => {
            let (op, value) = args.change();
            let left = c
                .change_owner_credits(&args.id, &ChangeCredits { op, value })
                .await?;
            ctx.print(&left.json, || format!("{}\n", left.value.remaining));
        }
    }
    Ok(())
}

/// `N`, or `N (refill AMOUNT/INTERVAL[:DAY])`.
fn credits_text(remaining: u64, refill: Option<&client::Refill>) -> String {
    match refill {
        None => remaining.to_string(),
        Some(r) => format!(
            "{remaining} (refill {}/{}{})",
            r.amount,
            r.interval,
            r.day.map(|d| format!(":{d}")).unwrap_or_default()
        ),
    }
}

fn window(w: Window, group_by: Option<GroupBy>) -> UsageQuery {
    UsageQuery {
        from: w.from,
        to: w.to,
        granularity: w.granularity.map(|g| {
            match g {
                crate::args::Granularity::Hour => "hour",
                crate::args::Granularity::Day => "day",
            }
            .to_owned()
        }),
        group_by: group_by.map(|g| {
            match g {
                GroupBy::Key => "key",
                GroupBy::Owner => "owner",
            }
            .to_owned()
        }),
        ..UsageQuery::default()
    }
}

/// Usage rows as a table: the identifying columns first, then every outcome, in the order
/// [`client::OUTCOMES`] lists them, then anything else the API adds.
#[must_use]
pub fn usage_table(usage: &Usage) -> Table {
    let mut columns: Vec<String> = Vec::new();
    let mut add = |c: &str| {
        if !columns.iter().any(|x| x == c) {
            columns.push(c.to_owned());
        }
    };
    let present = |c: &str| usage.data.iter().any(|r| r.contains_key(c));
    for c in ["start", "key_id", "owner_id"] {
        if present(c) {
            add(c);
        }
    }
    for c in client::OUTCOMES {
        add(c);
    }
    for row in &usage.data {
        for k in row.keys() {
            add(k);
        }
    }
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    for row in &usage.data {
        t.row(
            columns
                .iter()
                .map(|c| match row.get(c) {
                    None | Some(Value::Null) => "0".to_owned(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                })
                .collect(),
        );
    }
    t
}

async fn usage(ctx: &Ctx, command: UsageCommand) -> Result<(), Failure> {
    let c = &ctx.client;
    match command {
        UsageCommand::Key { id, window: w } => {
            let u = c.key_usage(&id, &window(w, None)).await?;
            ctx.table(&u.json, &usage_table(&u.value), "No usage in this window.");
        }
        UsageCommand::Report {
            window: w,
            group_by,
            owner,
            csv,
        } => {
            let q = UsageQuery {
                owner_id: owner,
                ..window(w, group_by)
            };
            if csv {
                print!("{}", c.usage_report_csv(&q).await?);
            } else {
                // Every page: a report is read whole.
                let mut q = UsageQuery {
                    limit: Some(100),
                    ..q
                };
                let mut all = Usage {
                    data: Vec::new(),
                    next_cursor: None,
                };
                loop {
                    let page = c.usage_report(&q).await?.value;
                    all.data.extend(page.data);
                    match page.next_cursor {
                        Some(next) => q.cursor = Some(next),
                        None => break,
                    }
                }
                let json = serde_json::json!({ "data": all.data });
                ctx.table(&json, &usage_table(&all), "No usage in this window.");
            }
        }
    }
    Ok(())
}

async fn audit(ctx: &Ctx, args: AuditArgs) -> Result<(), Failure> {
    let c = &ctx.client;
    let limit = args.limit;
    let (events, json) = pages(args.all, |cursor| async move {
        c.list_audit(&Paging { limit, cursor }).await
    })
    .await?;
    let mut t = Table::new(&["at", "action", "key", "actor", "changed"]);
    for e in &events {
        t.row(vec![
            ctx.style.time(Some(e.at)),
            e.action.clone(),
            e.key_id.clone(),
            e.actor.clone(),
            list(&e.changed),
        ]);
    }
    ctx.table(&json, &t, "No audit events.");
    Ok(())
}

async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<(), Failure> {
    let body = VerifyKey {
        key: args.key,
        scope: args.scope,
        permission: args.permission,
        workspace: args.workspace,
        ..VerifyKey::default()
    };
    let v = ctx.client.verify(&body).await?;
    ctx.print(&v.json, || format!("{}\n", v.value.code.as_str()));
    if v.value.valid {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn update(args: &[&str]) -> Result<UpdateKey, Failure> {
        let cli = Cli::try_parse_from(
            ["keyward", "keys", "update", "key_x"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .unwrap();
        let Command::Keys(KeysCommand::Update(u)) = cli.command else {
            panic!("not an update")
        };
        update_body(u)
    }

    #[test]
    fn an_update_sends_only_what_was_asked_and_null_to_clear() {
        let p = update(&["--name", "n", "--no-owner", "--status", "disabled"]).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"name": "n", "owner_id": null, "status": "disabled"})
        );
        let p = update(&["--any-ip", "--no-rate-limit", "--no-expiry"]).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"allowed_ips": null, "rate_limit": null, "expires_at": null})
        );
    }

    #[test]
    fn an_update_that_changes_nothing_or_has_a_bad_time_is_a_usage_error() {
        assert!(matches!(update(&[]), Err(Failure::Usage(_))));
        assert!(matches!(
            update(&["--expires-at", "tomorrow"]),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn the_preset_roles_split_management_power() {
        let perms = |n: &str| {
            PRESET_ROLES
                .iter()
                .find(|(name, ..)| *name == n)
                .map(|(_, _, p)| *p)
                .unwrap()
        };
        assert_eq!(perms("administrator"), ["api.*"]);
        assert!(!perms("manager").contains(&"api.key.delete"));
        assert!(perms("viewer").iter().all(|p| p.ends_with(".view")));
    }

    #[test]
    fn usage_tables_show_every_outcome_with_zeros_for_missing_counts() {
        let usage: Usage = serde_json::from_value(serde_json::json!({
            "data": [{"start": "2026-01-01T00:00:00Z", "valid": 3, "rate_limited": 1}]
        }))
        .unwrap();
        let text = usage_table(&usage).render(false);
        assert_eq!(text, "2026-01-01T00:00:00Z\t3\t1\t0\t0\t0\t0\t0\t0\n");
    }
}
