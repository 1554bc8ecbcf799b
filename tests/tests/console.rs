//! The web console in real headless Chromium and Firefox, driven through WebDriver, against the real local
//! stack: a person signs in, makes a role and a key holding it, copies the secret (shown once;
//! the dialog will not close before "I have copied it"), sees the key in the table, and the
//! secret verifies at the edge; then renames, rotates and revokes it (with the warning), and the
//! edge refuses it. A screenshot per step goes to `target/keyward/console/`. Every page state is
//! checked by axe-core (serious or critical violations fail) and the browser's console must stay
//! free of errors (CSP violations included).
//!
//! Run: `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo test -p keyward-tests --test
//! console` after `cargo xtask bootstrap` (chromium, chromium-driver, axe-core) and
//! `cargo xtask build-edge`. With `KEYWARD_CONSOLE_DEV_JSON=target/keyward/dev.json` it runs
//! against a running `cargo xtask dev` stack instead of starting its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keyward_tests::control_plane::random_hex;
use keyward_tests::paths::workspace_root;
use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::webdriver::{Browser, ESCAPE, Engine};
use serde_json::{Value, json};

#[derive(Clone)]
struct World {
    console: String,
    edge: String,
    token: String,
    workspace: String,
    shots: PathBuf,
    /// The role the scenario creates.
    role: String,
}

type Scenario = keyward_tests::scenarios::Scenario<World>;

const SCENARIOS: &[(&str, Scenario)] = keyward_tests::scenarios![
    a_person_manages_a_key_through_the_console,
    the_same_person_in_firefox
];

fn main() {
    keyward_tests::scenarios::main(SCENARIOS, |selected| async move {
        let shots = workspace_root().join("target/keyward/console");
        let _ = std::fs::remove_dir_all(&shots);
        // Iterating on the console: run against a running `cargo xtask dev` stack instead.
        if let Ok(dev_json) = std::env::var("KEYWARD_CONSOLE_DEV_JSON") {
            let dev: Value = serde_json::from_str(&std::fs::read_to_string(dev_json).unwrap())
                .expect("dev.json");
            let world = World {
                console: format!("{}/console/", dev["control_plane_url"].as_str().unwrap()),
                edge: dev["edge_url"].as_str().unwrap().to_owned(),
                token: dev["admin_token"].as_str().unwrap().to_owned(),
                workspace: dev["workspace"].as_str().unwrap().to_owned(),
                shots,
                role: format!("docs-reader-{}", random_hex(3)),
            };
            return keyward_tests::scenarios::run_each(&selected, &world).await;
        }
        let stack = Stack::start(StackOptions::default())
            .await
            .expect("starting the local stack");
        let workspace = format!("console-{}", random_hex(4));
        let token = stack
            .admin_token(&workspace, "console-test", 3600)
            .expect("an admin token");
        let world = World {
            console: format!("{}/console/", stack.control_plane_url()),
            edge: stack.edge_url(),
            token,
            workspace,
            shots,
            role: "docs-reader".to_owned(),
        };
        let failed = keyward_tests::scenarios::run_each(&selected, &world).await;
        drop(stack);
        failed
    });
}

/// The browser plus the checks every step makes.
struct Session<'w> {
    b: Browser,
    w: &'w World,
    step: usize,
    axe: String,
}

impl Session<'_> {
    /// Screenshot, accessibility check, console check: the end of every step.
    async fn step(&mut self, name: &str) {
        self.step += 1;
        let path = self.w.shots.join(format!("{:02}-{name}.png", self.step));
        self.b.screenshot(&path).await.expect("a screenshot");
        self.accessible(name).await;
        self.no_console_errors(name).await;
    }

    async fn accessible(&self, step: &str) {
        let loaded = self
            .b
            .execute("return typeof window.axe === 'object';", json!([]))
            .await
            .unwrap();
        if loaded != true {
            self.b
                .execute(&format!("{}\nreturn true;", self.axe), json!([]))
                .await
                .expect("injecting axe-core");
        }
        let violations = self
            .b
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then((r) => done(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.map((n) => n.target.join(' '))}))))
                   .catch((e) => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
                json!([]),
            )
            .await
            .expect("running axe-core");
        let serious: Vec<&Value> = violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            serious.is_empty(),
            "{step}: accessibility violations: {}",
            serde_json::to_string_pretty(&serious).unwrap()
        );
    }

    async fn no_console_errors(&self, step: &str) {
        let errors: Vec<String> = self
            .b
            .console_log()
            .await
            .expect("the browser's console log")
            .into_iter()
            .filter(|e| e.level == "SEVERE" || e.level == "ERROR")
            .map(|e| e.message)
            .collect();
        assert!(
            errors.is_empty(),
            "{step}: browser console errors: {errors:#?}"
        );
    }

    /// Waits for a visible element matching `css`; failing, shows the page and its console.
    async fn find(&self, css: &str) -> keyward_tests::webdriver::Element {
        match self.b.find(css).await {
            Ok(e) => e,
            Err(err) => {
                let page = self
                    .b
                    .execute("return document.body.innerText;", json!([]))
                    .await
                    .unwrap_or_default();
                let log = self.b.console_log().await.unwrap_or_default();
                panic!(
                    "{err:#}\nat {}\npage text: {page}\nconsole: {log:#?}",
                    self.b.url().await.unwrap_or_default()
                );
            }
        }
    }

    /// Clicks the first visible element matching `css`.
    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.b.click(&e).await.unwrap();
    }

    /// Replaces the text of the field matching `css`.
    async fn fill(&self, css: &str, text: &str) {
        self.find(css).await;
        self.b.fill(css, text).await.unwrap();
    }

    /// Whether a modal dialog is open, and its text.
    async fn dialog_text(&self) -> Option<String> {
        let v = self
            .b
            .execute(
                "const d = document.querySelector('dialog[open]'); return d ? d.innerText : null;",
                json!([]),
            )
            .await
            .unwrap();
        v.as_str().map(str::to_owned)
    }

    /// Reads the secret from the once-only dialog, proves it cannot close before the
    /// confirmation (Escape, and a disabled Done button), then confirms and closes it.
    async fn take_secret_once(&mut self, shot: &str, prefix: &str) -> String {
        let secret = self
            .b
            .text(&self.find("dialog[open] output.secret-value").await)
            .await
            .unwrap();
        assert!(secret.starts_with(prefix), "a {prefix} secret: {secret:?}");
        let text = self.dialog_text().await.unwrap();
        assert!(text.contains("it will not be shown again"), "{text}");
        self.step(shot).await;
        let done = self.find("dialog[open] .buttons button").await;
        let disabled = self
            .b
            .execute("return arguments[0].disabled;", json!([elem(&done)]))
            .await
            .unwrap();
        assert_eq!(disabled, true, "Done is disabled before the confirmation");
        self.b.press(ESCAPE).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            self.dialog_text().await.is_some(),
            "Escape must not close the secret before \"I have copied it\""
        );
        self.click("dialog[open] .secret button").await;
        self.click("dialog[open] .check input[type=checkbox]").await;
        self.b.click(&done).await.unwrap();
        self.b
            .wait_until(
                "the secret dialog to close",
                "return !document.querySelector('dialog');",
                json!([]),
            )
            .await
            .unwrap();
        let page = self
            .b
            .execute("return document.documentElement.outerHTML;", json!([]))
            .await
            .unwrap();
        assert!(
            !page.as_str().unwrap().contains(&secret),
            "nothing can show the secret again once the dialog is closed"
        );
        secret
    }

    /// The table row of the key named `name` (its key id), once it is shown.
    async fn key_row(&self, name: &str) -> String {
        self.b
            .wait_until(
                &format!("a row for {name}"),
                "for (const tr of document.querySelectorAll('#keys-table tbody tr[data-key-id]'))
                   if (tr.cells[0].textContent === arguments[0]) return tr.dataset.keyId;
                 return null;",
                json!([name]),
            )
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn elem(e: &keyward_tests::webdriver::Element) -> Value {
    e.reference()
}

/// Asks the edge's verify API about `key` until it answers `want` (the edge learns of changes
/// within seconds).
async fn edge_says(edge: &str, key: &str, want: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v: Value = client
            .post(format!("{edge}/v1/keys/verify"))
            .json(&json!({"key": key}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["code"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the edge still answers {} for the key, not {want}",
            v["code"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_person_manages_a_key_through_the_console(w: World) {
    person(w, Engine::Chromium).await;
}

/// The whole walk again in Firefox (its own role; screenshots under `firefox/`). Firefox's
/// driver has no console-log endpoint: the page's errors and CSP violations are collected by a
/// listener the test installs, from the first check on.
async fn the_same_person_in_firefox(w: World) {
    person(w, Engine::Firefox).await;
}

async fn person(w: World, engine: Engine) {
    let w = World {
        shots: w.shots.join(engine.name()),
        role: format!("{}-{}", w.role, engine.name()),
        ..w
    };
    std::fs::create_dir_all(&w.shots).expect("the screenshot directory");
    let axe = std::fs::read_to_string(workspace_root().join("node_modules/axe-core/axe.min.js"))
        .expect("node_modules/axe-core: run `cargo xtask bootstrap`");
    let log = w.shots.join("driver.log");
    let b = Browser::start(engine, &log)
        .await
        .unwrap_or_else(|e| panic!("starting {}: {e:#}", engine.name()));
    let mut s = Session {
        b,
        w: &w,
        step: 0,
        axe,
    };

    // Sign in with the form.
    s.b.goto(&w.console).await.unwrap();
    s.find("#sign-in-token").await;
    s.step("sign-in").await;
    s.fill("#sign-in-token", &w.token).await;
    s.fill("#sign-in-workspace", &w.workspace).await;
    s.click("#sign-in-form button[type=submit]").await;
    s.find("#keys-table").await;
    let stored =
        s.b.execute(
            "return [sessionStorage.length, localStorage.length, document.cookie];",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(
        stored,
        json!([1, 0, ""]),
        "the token lives in sessionStorage only"
    );
    s.step("signed-in").await;

    // A role, from the roles view.
    s.click("#nav a[data-view=roles]").await;
    s.click("#create-role").await;
    s.fill("dialog[open] input[data-field=name]", &w.role).await;
    s.fill(
        "dialog[open] textarea[data-field=permissions]",
        "documents.read, documents.list",
    )
    .await;
    s.step("create-role").await;
    s.click("dialog[open] button[type=submit]").await;
    s.find(&format!("#roles-table tr[data-role={}]", w.role))
        .await;
    s.step("role-created").await;

    // A key holding it.
    s.click("#nav a[data-view=keys]").await;
    s.click("#create-key").await;
    s.fill("dialog[open] input[data-field=name]", "billing service")
        .await;
    s.click(&format!(
        "dialog[open] input[type=checkbox][value={}]",
        w.role
    ))
    .await;
    s.fill("dialog[open] input[data-field=owner_id]", "acme-corp")
        .await;
    s.step("create-key").await;
    s.click("dialog[open] button[type=submit]").await;
    let secret = s.take_secret_once("secret-shown-once", "kw_").await;
    let id = s.key_row("billing service").await;
    let cells = s.find(&format!("tr[data-key-id={id}]")).await;
    let row = s.b.text(&cells).await.unwrap();
    assert!(
        row.contains(&w.role) && row.contains("acme-corp") && row.contains("active"),
        "{row}"
    );
    s.step("key-in-table").await;
    edge_says(&w.edge, &secret, "VALID").await;

    // Rename it.
    s.click(&format!("tr[data-key-id={id}] button[aria-label^=Edit]"))
        .await;
    s.fill(
        "dialog[open] input[data-field=name]",
        "billing service (prod)",
    )
    .await;
    s.step("edit-key").await;
    s.click("dialog[open] button[type=submit]").await;
    assert_eq!(s.key_row("billing service (prod)").await, id);
    s.step("key-renamed").await;

    // Rotate it: a new secret, shown once the same way; the old one stops (no grace).
    s.click(&format!("tr[data-key-id={id}] button[aria-label^=Rotate]"))
        .await;
    s.find("dialog[open] select[data-field=grace_period_s]")
        .await;
    s.step("rotate-key").await;
    s.click("dialog[open] button[type=submit]").await;
    let rotated = s.take_secret_once("rotated-secret-shown-once", "kw_").await;
    assert_ne!(rotated, secret);
    edge_says(&w.edge, &rotated, "VALID").await;

    // Its usage: the verifications above, drawn per day by the page. Counts leave the edge's
    // isolate at most once per second, with a later request.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    edge_says(&w.edge, &rotated, "VALID").await;
    s.click(&format!(
        "tr[data-key-id={id}] button[aria-label^='Usage of']"
    ))
    .await;
    s.find("#usage-form").await;
    s.b.wait_until(
        "the usage chart to show valid requests",
        "if (document.querySelectorAll('#usage-chart rect.bar.valid').length > 0) return true;
         // Ask again once the last answer is drawn (the counts may not have arrived yet).
         const show = document.querySelector('#usage-form button[type=submit]');
         const out = document.querySelector('#usage-out');
         if (show && out && out.children.length) show.click();
         return false;",
        json!([]),
    )
    .await
    .unwrap();
    let today_valid =
        s.b.execute(
            "const rows = document.querySelectorAll('#usage-table tbody tr');
             return Number(rows[rows.length - 1].cells[1].textContent);",
            json!([]),
        )
        .await
        .unwrap();
    assert!(
        today_valid.as_u64().is_some_and(|n| n >= 2),
        "today's valid requests: {today_valid}"
    );
    s.step("key-usage-chart").await;
    s.click("#nav a[data-view=keys]").await;
    s.key_row("billing service (prod)").await;

    // Revoke it, through the warning.
    s.click(&format!("tr[data-key-id={id}] button[aria-label^=Revoke]"))
        .await;
    let text = s.dialog_text().await.unwrap();
    assert!(
        text.contains("Applications using this key will stop working"),
        "{text}"
    );
    s.step("revoke-confirmation").await;
    s.click("dialog[open] button.danger").await;
    s.b.wait_until(
        "the revoked key to leave the active view",
        "return !document.querySelector(`tr[data-key-id=\"${arguments[0]}\"]`) && !document.querySelector('dialog');",
        json!([id]),
    )
    .await
    .unwrap();
    s.step("key-revoked").await;
    edge_says(&w.edge, &rotated, "REVOKED").await;

    // The key's owner, with shared credits: added, then topped up.
    s.click("#nav a[data-view=owners]").await;
    s.click("#put-owner").await;
    s.fill("dialog[open] input[data-field=owner_id]", "acme-corp")
        .await;
    s.fill("dialog[open] input[data-field=credits]", "100")
        .await;
    s.step("add-owner").await;
    s.click("dialog[open] button[type=submit]").await;
    let credits_cell = "return (document.querySelector('#owners-table tr[data-owner-id=\"acme-corp\"]') || {cells: []}).cells[3]?.textContent || null;";
    let shown =
        s.b.wait_until("the owner's row", credits_cell, json!([]))
            .await
            .unwrap();
    assert_eq!(shown, "100", "the owner's credits");
    s.click("#owners-table tr[data-owner-id=acme-corp] button[aria-label^='Change credits']")
        .await;
    s.fill("dialog[open] input[data-field=value]", "5").await;
    s.step("owner-credits").await;
    s.click("dialog[open] button[type=submit]").await;
    s.b.wait_until(
        "the owner's credits to show the increment",
        "const row = document.querySelector('#owners-table tr[data-owner-id=\"acme-corp\"]');
         return row !== null && row.cells[3].textContent === '105';",
        json!([]),
    )
    .await
    .unwrap();
    s.step("owners").await;

    // A webhook endpoint: its secret shown once, a test event delivered to a receiver.
    let (hook_url, received) = keyward_tests::receiver::receiver("200 OK", "").await;
    s.click("#nav a[data-view=webhooks]").await;
    s.click("#add-webhook").await;
    s.fill("dialog[open] input[data-field=url]", &hook_url)
        .await;
    s.step("add-webhook").await;
    s.click("dialog[open] button[type=submit]").await;
    s.take_secret_once("webhook-secret-shown-once", "whsec_")
        .await;
    // The workspace may hold other endpoints (an earlier browser's): act on this one's row,
    // once the table has been drawn again with it (the list is fetched after the dialog closes).
    s.b.wait_until(
        &format!("a row for {hook_url}"),
        "for (const tr of document.querySelectorAll('#webhooks-table tbody tr[data-webhook-id]'))
           if (tr.cells[0].textContent === arguments[0]) {
             tr.querySelector(\"button[aria-label^='Send a test event']\").click();
             return true;
           }
         return false;",
        json!([hook_url]),
    )
    .await
    .unwrap();
    s.b.wait_until(
        "the test delivery",
        "for (const tr of document.querySelectorAll('#webhooks-table tbody tr[data-webhook-id]'))
           if (tr.cells[0].textContent === arguments[0])
             return tr.querySelector('td.last-attempt').textContent.startsWith('delivered (200)');
         return false;",
        json!([hook_url]),
    )
    .await
    .unwrap();
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "the receiver got the test event"
    );
    s.step("webhook-tested").await;

    // The audit log tells the story.
    s.click("#nav a[data-view=audit]").await;
    s.find("#audit-table tbody tr").await;
    s.step("audit").await;

    // Sign out forgets the token; a link with the token in its fragment signs in again and
    // leaves the address bar clean.
    s.click("#sign-out").await;
    s.find("#sign-in-token").await;
    let left =
        s.b.execute("return sessionStorage.length;", json!([]))
            .await
            .unwrap();
    assert_eq!(left, 0, "sign out clears the session");
    s.b.goto(&format!(
        "{}#token={}&workspace={}",
        w.console, w.token, w.workspace
    ))
    .await
    .unwrap();
    s.find("#keys-table").await;
    let url = s.b.url().await.unwrap();
    assert!(!url.contains('#') && !url.contains("token"), "{url}");
    s.step("signed-in-from-link").await;
    s.b.quit().await;
}
