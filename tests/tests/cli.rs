//! The `keyward` CLI end to end: the built binary against the real local stack (moto, functions,
//! router, poller, `wrangler dev`), as a script would run it: standard input and output are not
//! terminals, connection from the `KEYWARD_*` variables.
//!
//! Run: `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo test -p keyward-tests --test cli`
//! after `cargo xtask build-edge` (`-- <words>` runs only matching scenarios, `-- --list` lists
//! them). The binary is built first (`cargo build -p keyward-cli`).
//!
//! Every `--json` answer is parsed back into the API's types; every scenario has its own
//! workspace.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyward_cli::client::{AuditEvent, CreateKey, KeyWithSecret, ListKeys, Page};
use keyward_common::{KeyRecord, KeyStatus, Verdict, VerdictCode};
use keyward_tests::app::TestApp;
use keyward_tests::control_plane::{JwtSettings, random_hex};
use keyward_tests::stack::{ADMIN_PERMISSIONS, Stack, StackOptions};
use serde::de::DeserializeOwned;

/// How long a change may take to reach the edge here. DESIGN's 2 s bound is tested by the edge
/// and replication suites; these scenarios share one stack with the 5,000-key import, whose
/// stream backlog (two consumers on a moto that serves one request at a time) takes the local
/// stack about a minute to drain, and a key created meanwhile waits behind it.
const PROPAGATION: Duration = Duration::from_secs(120);

#[derive(Clone)]
struct World {
    bin: PathBuf,
    api: String,
    edge: String,
    jwt: JwtSettings,
    app: TestApp,
    /// The control plane's log directory, quoted when a function fails.
    logs: PathBuf,
}

impl World {
    /// The functions' panics and errors so far (the last 20 lines), for a failure message.
    fn function_trouble(&self) -> String {
        let log = std::fs::read_to_string(self.logs.join("functions.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("\"level\":\"ERROR\""))
            .collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }

    #[track_caller]
    fn json<T: DeserializeOwned>(&self) -> T {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not the API's type: {e}: {self:?}"))
    }
}

/// A workspace and an admin token for it, through which the binary is run.
struct Cli<'w> {
    world: &'w World,
    ws: String,
    token: String,
}

impl World {
    fn cli(&self, label: &str) -> Cli<'_> {
        let ws = format!("{label}-{}", random_hex(4));
        let claims = self.jwt.claims(&ws, &ADMIN_PERMISSIONS, "user_cli");
        let token = self.jwt.sign(&claims).expect("signing a token");
        Cli {
            world: self,
            ws,
            token,
        }
    }
}

impl Cli<'_> {
    /// Runs `keyward args…` with standard input closed (not a terminal).
    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.world.bin);
        cmd.args(args)
            .env_clear()
            .env("KEYWARD_URL", &self.world.api)
            .env("KEYWARD_EDGE_URL", &self.world.edge)
            .env("KEYWARD_TOKEN", &self.token)
            .env("KEYWARD_WORKSPACE", &self.ws)
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("the runner panicked")
            .expect("running keyward");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `keyward verify KEY` until it prints `want` (the edge learns of changes in the
    /// background); returns the last run.
    async fn verify_until(&self, key: &str, extra: &[&str], want: VerdictCode) -> Run {
        let deadline = Instant::now() + PROPAGATION;
        loop {
            let mut args = vec!["verify", key];
            args.extend_from_slice(extra);
            let run = self.run(&args).await;
            if run.stdout.trim() == want.as_str() || Instant::now() > deadline {
                assert_eq!(run.stdout.trim(), want.as_str(), "verify: {run:?}");
                return run;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Cli<'_> {
    /// `keyward verify KEY` until the key is refused (any code but VALID).
    async fn refused_soon(&self, key: &str) -> Run {
        let deadline = Instant::now() + PROPAGATION;
        loop {
            let run = self.run(&["verify", key]).await;
            if run.stdout.trim() != VerdictCode::Valid.as_str() || Instant::now() > deadline {
                assert_ne!(run.stdout.trim(), "VALID", "still valid: {run:?}");
                return run;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

type Scenario = keyward_tests::scenarios::Scenario<World>;

const SCENARIOS: &[(&str, Scenario)] = keyward_tests::scenarios![
    a_key_lives_its_whole_life_through_the_cli,
    create_takes_every_setting_and_get_shows_it_to_a_pipe,
    update_sends_only_the_settings_given,
    list_and_audit_page_and_filter,
    an_api_error_prints_its_code_and_detail_and_exits_1,
    usage_errors_exit_2_without_calling_the_api,
    revoke_refuses_to_run_unconfirmed_without_a_terminal,
    roles_are_managed_and_their_holders_verified_through_the_cli,
    a_five_thousand_row_csv_imports_with_progress_and_a_summary,
    owners_and_credits_are_managed_through_the_cli,
    usage_is_read_through_the_cli_as_tables_json_and_csv,
];

fn main() {
    keyward_tests::scenarios::main(SCENARIOS, |selected| async move {
        let bin = build_binary();
        let mut options = StackOptions::default();
        // Room for the 5,000-row import in one workspace.
        options.control_plane.max_active_keys = 10_000;
        let stack = Stack::start(options)
            .await
            .expect("starting the local stack");
        println!(
            "stack up: api {} edge {} (logs in {})",
            stack.control_plane_url(),
            stack.edge_url(),
            stack.dir().display()
        );
        let world = World {
            bin,
            api: stack.control_plane_url(),
            edge: stack.edge_url(),
            jwt: stack.control_plane().jwt().clone(),
            app: TestApp::new(stack.control_plane(), None),
            logs: stack.control_plane().log_dir().to_path_buf(),
        };
        let failed = keyward_tests::scenarios::run_each(&selected, &world).await;
        drop(world);
        drop(stack);
        failed
    });
}

/// Builds the `keyward` binary next to this test's (`target/<profile>/keyward`).
fn build_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "keyward-cli", "--bin", "keyward"])
        .current_dir(keyward_tests::paths::workspace_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building keyward failed");
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/cli-… → target/<profile>/keyward
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a target directory")
        .join("keyward");
    assert!(bin.exists(), "no binary at {}", bin.display());
    bin
}

async fn a_key_lives_its_whole_life_through_the_cli(w: World) {
    let cli = w.cli("cli-life");
    let created: KeyWithSecret = cli
        .run(&[
            "keys", "create", "--name", "billing", "--scope", "read", "--json",
        ])
        .await
        .json();
    let id = created.record.id.to_string();
    let secret = created.key.expose().to_owned();
    assert_eq!(created.record.name, "billing");
    assert_eq!(created.record.scopes, ["read"]);
    assert!(secret.starts_with("kw_"), "a DESIGN key");

    // The typed client sees what the CLI made.
    let admin = w.app.with_token(Some(cli.token.clone()));
    assert_eq!(admin.key(&cli.ws, &id).await, created.record);

    let valid = cli.verify_until(&secret, &[], VerdictCode::Valid).await;
    assert_eq!(valid.code, 0);
    let refused = cli.run(&["verify", &secret, "--scope", "write"]).await;
    assert_eq!(
        (refused.code, refused.stdout.trim()),
        (1, "FORBIDDEN_SCOPE"),
        "{refused:?}"
    );
    let verdict: Verdict = cli
        .run(&["verify", &secret, "--scope", "read", "--json"])
        .await
        .json();
    assert!(verdict.valid);
    assert_eq!(verdict.key_id.as_deref(), Some(id.as_str()));

    let got: KeyRecord = cli.run(&["keys", "get", &id, "--json"]).await.json();
    // `last_used_at` follows the verifications above, in the background.
    assert_eq!(
        (got.id, got.name, got.scopes, got.version),
        (
            created.record.id.clone(),
            created.record.name.clone(),
            created.record.scopes.clone(),
            created.record.version
        )
    );

    let rotated: KeyWithSecret = cli
        .run(&["keys", "rotate", &id, "--grace", "0", "--json"])
        .await
        .json();
    assert_eq!(rotated.record.id, created.record.id);
    assert_ne!(rotated.key.expose(), secret, "a new secret");
    let new_secret = rotated.key.expose().to_owned();
    cli.verify_until(&new_secret, &[], VerdictCode::Valid).await;
    let old = cli.refused_soon(&secret).await;
    assert_eq!(old.code, 1, "a refused key exits 1: {old:?}");

    let revoked: KeyRecord = cli
        .run(&["keys", "revoke", &id, "--yes", "--json"])
        .await
        .json();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    cli.verify_until(&new_secret, &[], VerdictCode::Revoked)
        .await;
    // Revoking again is idempotent.
    let again = cli.run(&["keys", "revoke", &id, "--yes"]).await;
    assert!(again.ok().stdout.contains(&id), "{again:?}");

    // Secrets appear only in the create and rotate answers.
    for args in [
        &["keys", "get", id.as_str()][..],
        &["keys", "list", "--status", "revoked"],
        &["audit"],
    ] {
        let run = cli.run(args).await;
        assert!(
            !run.ok().stdout.contains(&secret) && !run.stdout.contains(&new_secret),
            "{args:?} shows a secret"
        );
    }
}

async fn create_takes_every_setting_and_get_shows_it_to_a_pipe(w: World) {
    let cli = w.cli("cli-create");
    let created: KeyWithSecret = cli
        .run(&[
            "keys",
            "create",
            "--name",
            "ingest",
            "--scope",
            "read",
            "--scope",
            "write",
            "--owner",
            "cust_7",
            "--expires-in",
            "3600",
            "--ip",
            "10.0.0.0/8",
            "--ip",
            "192.0.2.1",
            "--rate-limit",
            "100/60",
            "--json",
        ])
        .await
        .json();
    let k = &created.record;
    assert_eq!(k.scopes, ["read", "write"]);
    assert_eq!(k.owner_id.as_deref(), Some("cust_7"));
    let ips: Vec<String> = k.allowed_ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.0.0.0/8", "192.0.2.1/32"]);
    assert_eq!(k.rate_limit.map(|r| (r.limit, r.period_s)), Some((100, 60)));
    let expires = k.expires_at.expect("an expiry").unix();
    assert!((expires - k.created_at.unix() - 3600).abs() <= 2);

    // Without --json and without a terminal: tab-separated `field\tvalue` lines, RFC 3339 times.
    let text = cli.run(&["keys", "get", k.id.as_str()]).await;
    let lines: Vec<(&str, &str)> = text
        .ok()
        .stdout
        .lines()
        .map(|l| l.split_once('\t').expect("field\tvalue"))
        .collect();
    assert!(lines.contains(&("id", k.id.as_str())), "{text:?}");
    assert!(lines.contains(&("owner", "cust_7")));
    assert!(lines.contains(&("rate limit", "100/60s")));
    assert!(lines.contains(&("expires", k.expires_at.unwrap().to_rfc3339().as_str())));

    // Create without --json prints the secret once, on its own `key` line.
    let plain = cli.run(&["keys", "create", "--name", "plain"]).await;
    let secret = plain
        .ok()
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key\t"))
        .expect("a key line");
    keyward_common::PresentedKey::parse(secret).expect("a DESIGN key");
    // A disabled key is created switched off where the API takes create's `status` (DESIGN,
    // new); an API without it refuses the field by name, exit 1, and creates nothing.
    let off = cli
        .run(&["keys", "create", "--name", "off", "--disabled", "--json"])
        .await;
    if off.code == 0 {
        let off: KeyWithSecret = off.json();
        assert_eq!(off.record.status, KeyStatus::Disabled);
    } else {
        assert_eq!(off.code, 1, "{off:?}");
        assert!(off.stderr.contains("status: "), "{off:?}");
    }
}

async fn update_sends_only_the_settings_given(w: World) {
    let cli = w.cli("cli-update");
    let admin = w.app.with_token(Some(cli.token.clone()));
    let created = admin
        .new_key(
            &cli.ws,
            &CreateKey {
                scopes: Some(vec!["read".into()]),
                owner_id: Some("cust_1".into()),
                ..CreateKey::named("before")
            },
        )
        .await;
    let id = created.record.id.to_string();
    let updated: KeyRecord = cli
        .run(&[
            "keys", "update", &id, "--name", "after", "--status", "disabled", "--json",
        ])
        .await
        .json();
    assert_eq!(updated.name, "after");
    assert_eq!(updated.status, KeyStatus::Disabled);
    assert_eq!(updated.owner_id.as_deref(), Some("cust_1"), "kept");
    assert_eq!(updated.scopes, ["read"], "kept");
    assert_eq!(updated.version, created.record.version + 1);
    cli.verify_until(created.key.expose(), &[], VerdictCode::Disabled)
        .await;

    let cleared: KeyRecord = cli
        .run(&[
            "keys",
            "update",
            &id,
            "--no-owner",
            "--status",
            "active",
            "--force",
            "--json",
        ])
        .await
        .json();
    assert_eq!(cleared.owner_id, None);
    assert_eq!(cleared.status, KeyStatus::Active);
    let read = admin.key(&cli.ws, &id).await;
    assert_eq!((read.version, read.owner_id), (cleared.version, None));

    // A revoked key cannot be switched back on: the API's refusal, exit 1.
    admin.revoke(&cli.ws, &id).await;
    let refused = cli
        .run(&["keys", "update", &id, "--status", "active"])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("code: "), "{refused:?}");
}

async fn list_and_audit_page_and_filter(w: World) {
    let cli = w.cli("cli-list");
    let admin = w.app.with_token(Some(cli.token.clone()));
    let mut ids = Vec::new();
    for i in 0..3 {
        let k = admin
            .new_key(&cli.ws, &CreateKey::named(format!("k{i}")))
            .await;
        ids.push(k.record.id.to_string());
    }
    admin.revoke(&cli.ws, &ids[0]).await;

    let page: Page<KeyRecord> = cli
        .run(&["keys", "list", "--limit", "2", "--json"])
        .await
        .json();
    assert_eq!(page.data.len(), 2);
    assert!(page.has_more && page.next_cursor.is_some());
    let newest: Vec<String> = page.data.iter().map(|k| k.id.to_string()).collect();
    assert_eq!(newest, [ids[2].clone(), ids[1].clone()], "newest first");

    let all: Page<KeyRecord> = cli
        .run(&["keys", "list", "--limit", "1", "--all", "--json"])
        .await
        .json();
    assert_eq!(all.data.len(), 3, "--all follows the cursor");
    assert_eq!(
        all.data,
        admin.keys(&cli.ws, &ListKeys::default()).await.data,
        "the CLI and the typed client agree"
    );

    let revoked = cli.run(&["keys", "list", "--status", "revoked"]).await;
    let rows: Vec<Vec<&str>> = revoked
        .ok()
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one tab-separated row, no header: {revoked:?}"
    );
    assert_eq!(rows[0][0], ids[0]);
    assert!(rows[0].contains(&"revoked"));

    let audit: Page<AuditEvent> = cli.run(&["audit", "--all", "--json"]).await.json();
    let actions: Vec<&str> = audit.data.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["key.revoke", "key.create", "key.create", "key.create"]
    );
    assert!(audit.data.iter().all(|e| e.actor == "jwt:user_cli"));
    let one: Page<AuditEvent> = cli.run(&["audit", "--limit", "1", "--json"]).await.json();
    assert_eq!(one.data.len(), 1);
    assert!(one.has_more);
}

async fn an_api_error_prints_its_code_and_detail_and_exits_1(w: World) {
    let cli = w.cli("cli-errors");
    let unknown = keyward_common::KeyId::new(1, [7; 10]).to_string();
    let run = cli.run(&["keys", "get", &unknown]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.is_empty(), "errors go to stderr: {run:?}");
    assert!(run.stderr.contains("code: not_found"), "{run:?}");
    assert!(run.stderr.contains("request id: "), "{run:?}");

    // A validation problem names its fields.
    let bad = cli
        .run(&["keys", "create", "--name", "x", "--scope", "bad scope"])
        .await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("validation_failed"), "{bad:?}");
    assert!(bad.stderr.contains("scopes[0]"), "{bad:?}");

    // A token of another workspace: every key of this one is unknown.
    let created = w
        .app
        .with_token(Some(cli.token.clone()))
        .new_key(&cli.ws, &CreateKey::named("mine"))
        .await;
    let other = w.cli("cli-other");
    let run = other
        .run(&["keys", "revoke", created.record.id.as_str(), "--yes"])
        .await;
    assert_eq!(run.code, 1, "{run:?}");

    // A bad credential is the API's 401: exit 1.
    let mut dead = w.cli("cli-dead");
    dead.token = "not-a-token".to_owned();
    let run = dead.run(&["keys", "list"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("code: unauthorized"), "{run:?}");

    // A malformed key is refused by the edge's checksum: MALFORMED, exit 1.
    let run = cli.run(&["verify", "kw_nope"]).await;
    assert_eq!((run.code, run.stdout.trim()), (1, "MALFORMED"), "{run:?}");
}

async fn usage_errors_exit_2_without_calling_the_api(w: World) {
    let cli = w.cli("cli-usage");
    for args in [
        &["keys", "create"][..],
        &["keys", "get"],
        &["keys", "list", "--limit", "101"],
        &["keys", "update", "key_x"],
        &["keys", "update", "key_x", "--expires-at", "soon"],
        &["keys", "rotate", "key_x", "--grace", "-1"],
        &["keys", "credits", "key_x"],
        &["frobnicate"],
    ] {
        let run = cli.run(args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: usage errors go to stderr");
        assert!(!run.stderr.is_empty(), "{args:?}: says why");
    }
    // Nothing was created by any of them.
    let audit: Page<AuditEvent> = cli.run(&["audit", "--json"]).await.json();
    assert!(audit.data.is_empty(), "{audit:?}");
}

async fn revoke_refuses_to_run_unconfirmed_without_a_terminal(w: World) {
    let cli = w.cli("cli-revoke");
    let admin = w.app.with_token(Some(cli.token.clone()));
    let k = admin.new_key(&cli.ws, &CreateKey::named("keep")).await;
    let id = k.record.id.to_string();
    let run = cli.run(&["keys", "revoke", &id]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--yes"), "{run:?}");
    assert_eq!(admin.key(&cli.ws, &id).await.status, KeyStatus::Active);
    let listed = admin.keys(&cli.ws, &ListKeys::default()).await;
    assert_eq!(listed.data.len(), 1);
}

async fn a_five_thousand_row_csv_imports_with_progress_and_a_summary(w: World) {
    let cli = w.cli("cli-import");
    let dir = std::env::temp_dir().join(format!("keyward-import-{}", random_hex(4)));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("keys.csv");
    let mut csv = String::from("key,name,scopes,owner_id\n");
    let mut sample = Vec::new();
    for i in 0..5000 {
        let key = format!("legacy_live_{}{:06}", random_hex(12), i);
        csv.push_str(&format!("{key},customer {i},read;write,cust_{}\n", i % 50));
        if i % 1000 == 7 {
            sample.push(key);
        }
    }
    // Two rows the file itself gets wrong, one the API refuses (a duplicate of line 2).
    csv.push_str(",no key,,\n");
    let first_key = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .unwrap_or_default()
        .to_owned();
    csv.push_str(&format!("{first_key},duplicate,,\n"));
    csv.push_str("legacy_live_x,,,\n");
    std::fs::write(&path, csv).expect("writing the CSV");
    let t = Instant::now();
    let run = cli
        .run(&["keys", "import", path.to_str().expect("a UTF-8 path")])
        .await;
    let took = t.elapsed();
    println!(
        "    CLI import of 5,000 rows: {:.1} s ({:.0} keys/s)",
        took.as_secs_f64(),
        5000.0 / took.as_secs_f64()
    );
    assert_eq!(
        run.code,
        1,
        "refused rows make the exit code 1: {run:?}\nfunction errors:\n{}",
        w.function_trouble()
    );
    assert!(
        run.stdout.contains("Imported 5000 keys; refused 3."),
        "{run:?}"
    );
    assert!(run.stdout.contains("line 5003"), "{run:?}");
    assert!(run.stdout.contains("duplicate_key"), "{run:?}");
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("sent "))
        .collect();
    assert_eq!(
        progress,
        [
            "sent 1000 of 5001 keys",
            "sent 2000 of 5001 keys",
            "sent 3000 of 5001 keys",
            "sent 4000 of 5001 keys",
            "sent 5000 of 5001 keys",
            "sent 5001 of 5001 keys"
        ],
        "{run:?}"
    );
    // Imported keys verify at the edge in their own format, with their settings.
    for key in &sample {
        cli.verify_until(key, &["--scope", "write"], VerdictCode::Valid)
            .await;
    }
    // Running the same file again creates nothing twice.
    let again = cli
        .run(&[
            "keys",
            "import",
            path.to_str().expect("a UTF-8 path"),
            "--json",
        ])
        .await;
    let summary: serde_json::Value = serde_json::from_str(&again.stdout).expect("a JSON summary");
    assert_eq!(summary["refused"], 3, "{again:?}");
    let listed: Page<KeyRecord> = cli
        .run(&["keys", "list", "--limit", "100", "--all", "--json"])
        .await
        .json();
    assert_eq!(listed.data.len(), 5000, "no key was created twice");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn roles_are_managed_and_their_holders_verified_through_the_cli(w: World) {
    let cli = w.cli("cli-roles");
    let made: keyward_common::RoleRecord = cli
        .run(&[
            "roles",
            "create",
            "sms-sender",
            "--permission",
            "sms.send",
            "--json",
        ])
        .await
        .json();
    assert_eq!(made.permissions, ["sms.send"]);
    cli.run(&["roles", "preset"]).await.ok();
    cli.run(&["roles", "preset"]).await.ok();
    let listed: Page<keyward_common::RoleRecord> =
        cli.run(&["roles", "list", "--all", "--json"]).await.json();
    let names: Vec<&str> = listed.data.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["administrator", "manager", "sms-sender", "viewer"]);
    let created: KeyWithSecret = cli
        .run(&[
            "keys",
            "create",
            "--name",
            "sender",
            "--role",
            "sms-sender",
            "--json",
        ])
        .await
        .json();
    assert_eq!(created.record.roles, ["sms-sender"]);
    let secret = created.key.expose().to_owned();
    cli.verify_until(&secret, &["--permission", "sms.send"], VerdictCode::Valid)
        .await;
    let both = ["--permission", "sms.send AND billing.read"];
    cli.verify_until(&secret, &both, VerdictCode::ForbiddenScope)
        .await;
    cli.run(&[
        "roles",
        "update",
        "sms-sender",
        "--permission",
        "sms.send",
        "--permission",
        "billing.read",
    ])
    .await
    .ok();
    cli.verify_until(&secret, &both, VerdictCode::Valid).await;
    let got: keyward_common::RoleRecord = cli
        .run(&["roles", "get", "sms-sender", "--json"])
        .await
        .json();
    assert_eq!(got.version, 2);
    let in_use = cli.run(&["roles", "delete", "sms-sender"]).await;
    assert_eq!(in_use.code, 1, "{in_use:?}");
    assert!(in_use.stderr.contains("role_in_use"), "{in_use:?}");
    let id = created.record.id.to_string();
    cli.run(&["keys", "revoke", &id, "--yes"]).await.ok();
    cli.run(&["roles", "delete", "sms-sender"]).await.ok();
    let gone = cli.run(&["roles", "get", "sms-sender"]).await;
    assert_eq!(gone.code, 1, "{gone:?}");
    assert!(gone.stderr.contains("not_found"), "{gone:?}");
}

async fn owners_and_credits_are_managed_through_the_cli(w: World) {
    let cli = w.cli("cli-owners");
    let put: serde_json::Value = cli
        .run(&[
            "owners",
            "put",
            "cus/1",
            "--meta",
            r#"{"plan": "pro"}"#,
            "--rate-limit",
            "minute=3/60",
            "--rate-limit",
            "month=1000/2678400",
            "--credits",
            "100",
            "--refill",
            "100/monthly:31",
            "--json",
        ])
        .await
        .json();
    assert_eq!(put["owner_id"], "cus/1");
    assert_eq!(put["meta"]["plan"], "pro");
    assert_eq!(put["rate_limits"][1]["period_s"], 2_678_400);
    assert_eq!(put["credits"]["refill"]["day"], 31);

    let key: KeyWithSecret = cli
        .run(&[
            "keys",
            "create",
            "--name",
            "metered",
            "--owner",
            "cus/1",
            "--rate-limit",
            "10/1",
            "--credits",
            "50",
            "--refill",
            "50/daily",
            "--json",
        ])
        .await
        .json();
    assert_eq!(key.record.credits.map(|c| c.remaining), Some(50));
    assert_eq!(key.record.rate_limits[0].name, "default");
    let id = key.record.id.to_string();

    // Credit operations, as words or flags; the answer is the balance.
    let left = cli.run(&["keys", "credits", &id, "decrement", "20"]).await;
    assert_eq!(left.ok().stdout.trim(), "30");
    let left = cli.run(&["keys", "credits", &id, "--increment", "5"]).await;
    assert_eq!(left.ok().stdout.trim(), "35");
    let left: serde_json::Value = cli
        .run(&["owners", "credits", "cus/1", "set", "7", "--json"])
        .await
        .json();
    assert_eq!(left, serde_json::json!({"remaining": 7}));

    // People get a table with the count of live keys and the refill rule.
    let shown = cli.run(&["owners", "get", "cus/1"]).await;
    let text = &shown.ok().stdout;
    assert!(text.contains("7 (refill 100/monthly:31)"), "{text}");
    assert!(text.contains("keys"), "{text}");
    let got: serde_json::Value = cli.run(&["owners", "get", "cus/1", "--json"]).await.json();
    assert_eq!(got["key_count"], 1);
    let listed: serde_json::Value = cli.run(&["owners", "list", "--json"]).await.json();
    assert_eq!(listed["data"][0]["owner_id"], "cus/1");

    // Update: new credits, then none.
    let updated: KeyRecord = cli
        .run(&["keys", "update", &id, "--credits", "9", "--json"])
        .await
        .json();
    assert_eq!(updated.credits.map(|c| c.remaining), Some(9));
    let updated: KeyRecord = cli
        .run(&["keys", "update", &id, "--no-credits", "--json"])
        .await
        .json();
    assert_eq!(updated.credits, None);

    // An increment without credits is the API's 400: code and detail, exit 1.
    let refused = cli.run(&["keys", "credits", &id, "increment", "1"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("validation_failed"), "{refused:?}");
    // A bad refill never reaches the API: exit 2.
    let usage = cli
        .run(&[
            "owners",
            "put",
            "x",
            "--credits",
            "1",
            "--refill",
            "1/monthly:0",
        ])
        .await;
    assert_eq!(usage.code, 2, "{usage:?}");
}

async fn usage_is_read_through_the_cli_as_tables_json_and_csv(w: World) {
    let cli = w.cli("cli-usage");
    let key: KeyWithSecret = cli
        .run(&[
            "keys", "create", "--name", "billed", "--owner", "cus_9", "--json",
        ])
        .await
        .json();
    let id = key.record.id.to_string();
    let secret = key.key.expose().to_owned();
    cli.verify_until(&secret, &[], VerdictCode::Valid).await;
    for _ in 0..3 {
        assert_eq!(
            cli.run(&["verify", &secret]).await.ok().stdout.trim(),
            "VALID"
        );
    }
    // Counts leave the edge's isolate at most once a second, with a later request.
    let deadline = Instant::now() + Duration::from_secs(20);
    let valid = loop {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        cli.run(&["verify", &secret]).await;
        let usage: serde_json::Value = cli
            .run(&["usage", "key", &id, "--granularity", "hour", "--json"])
            .await
            .json();
        let valid: u64 = usage["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["valid"].as_u64())
            .sum();
        if valid >= 4 || Instant::now() > deadline {
            break valid;
        }
    };
    assert!(valid >= 4, "the verifications were counted: {valid}");
    // Off a terminal the table is tab-separated rows: the 30 days, today last.
    let table = cli.run(&["usage", "key", &id]).await;
    let rows: Vec<&str> = table.ok().stdout.lines().collect();
    assert_eq!(rows.len(), 30, "{table:?}");
    let today = keyward_common::Timestamp(keyward_tests::control_plane::unix_now()).day();
    assert!(rows[29].starts_with(&today), "{table:?}");
    let csv = cli.run(&["usage", "report", "--csv"]).await;
    let text = &csv.ok().stdout;
    assert!(text.starts_with("start,key_id,owner_id,valid,"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&id) && l.contains(",cus_9,")),
        "{text}"
    );
    let by_owner: serde_json::Value = cli
        .run(&[
            "usage",
            "report",
            "--group-by",
            "owner",
            "--owner",
            "cus_9",
            "--json",
        ])
        .await
        .json();
    let rows = by_owner["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{by_owner}");
    assert_eq!(rows[0]["owner_id"], "cus_9");
    let bad = cli.run(&["usage", "key", &id, "--from", "yesterday"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("from"), "{bad:?}");
}
