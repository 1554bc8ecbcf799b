//! The whole local stack of DESIGN: control plane (moto, functions, router), stream poller,
//! edge under `wrangler dev`, and the echo origin behind it, wired together.
//!
//! Start order: the edge's port is chosen first, so the functions start knowing
//! `KEYWARD_EDGE_URL`; then the control plane, the origin, the edge (its `USAGE_URL` is the
//! router's `/v1/usage`), and last the poller feeding the table's stream to `sync`. The stack
//! writes nothing outside its log and state directories; dropping it stops every process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::control_plane::{ControlPlane, ControlPlaneOptions, random_hex};
use crate::edge::{EdgeBundle, EdgeOptions, EdgeServer};
use crate::origin::EchoOrigin;
use crate::poller::{Poller, PollerConfig, PollerStats};
use crate::process::{free_port, repo_root};
use crate::queue::{QueuePoller, Scheduler};

/// How to start a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The control plane's options; `KEYWARD_EDGE_URL` and the sync and usage secrets are added.
    pub control_plane: ControlPlaneOptions,
    /// Which Worker build the edge runs.
    pub edge_bundle: EdgeBundle,
    /// The edge's route → scope rules (`ROUTE_SCOPES`).
    pub route_scopes: String,
    /// How often an edge isolate reports usage (`USAGE_FLUSH_S`).
    pub usage_flush_s: u64,
    /// Other edge vars (`CACHE_TTL_S`, ...).
    pub edge_vars: Vec<(String, String)>,
    /// Where logs and edge state go; a fresh `target/keyward/runs/<id>` when `None`.
    pub dir: Option<PathBuf>,
    /// The poller's pause between polls of an idle stream.
    pub poll_interval: Duration,
    /// The poller's retries of a failing record before the failure queue takes it.
    pub max_retry_attempts: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            control_plane: ControlPlaneOptions::default(),
            edge_bundle: EdgeBundle::Release,
            route_scopes: String::new(),
            usage_flush_s: 1,
            edge_vars: Vec::new(),
            dir: None,
            poll_interval: Duration::from_millis(50),
            max_retry_attempts: crate::poller::DEV_MAX_RETRY_ATTEMPTS,
        }
    }
}

/// A running stack. Fields drop in order: pollers and scheduler, edge, origin, control plane.
#[derive(Debug)]
pub struct Stack {
    poller: Poller,
    _events_poller: Poller,
    _retries: QueuePoller,
    _scheduler: Scheduler,
    edge: Option<EdgeServer>,
    origin: EchoOrigin,
    plane: ControlPlane,
    edge_options: EdgeOptions,
    sync_secret: String,
    dir: PathBuf,
}

impl Stack {
    /// Starts every component and returns once each answers (functions warmed up, edge
    /// healthy, origin listening, poller reading the stream).
    ///
    /// # Errors
    /// When a component fails to start; the error carries its log's tail.
    pub async fn start(opts: StackOptions) -> Result<Self> {
        let dir = match &opts.dir {
            Some(d) => d.clone(),
            None => repo_root().join("target/keyward/runs").join(format!(
                "stack-{}-{}",
                crate::control_plane::unix_now(),
                random_hex(4)
            )),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let sync_secret = random_hex(32);
        // Chosen before anything starts: the functions are configured with the edge's URL.
        let edge_port = free_port()?;
        let edge_url = format!("http://127.0.0.1:{edge_port}");

        let mut cp = opts.control_plane.clone();
        cp.extra_env.push(("KEYWARD_EDGE_URL".into(), edge_url));
        cp.secrets
            .push(("KEYWARD_SYNC_SECRET".into(), sync_secret.clone()));
        // Separate secrets: control plane → edge (sync) and edge → control plane (usage).
        let usage_secret = random_hex(32);
        cp.secrets
            .push(("KEYWARD_USAGE_SECRET".into(), usage_secret.clone()));
        if cp.log_dir.is_none() {
            cp.log_dir = Some(dir.join("control-plane"));
        }
        let plane = ControlPlane::start(cp).await?;
        warm_up_replication(&plane).await?;
        let origin = EchoOrigin::start()?;

        let mut vars = vec![("USAGE_FLUSH_S".to_owned(), opts.usage_flush_s.to_string())];
        vars.extend(opts.edge_vars.iter().cloned());
        let edge_options = EdgeOptions {
            bundle: opts.edge_bundle,
            origin_url: origin.url(),
            route_scopes: opts.route_scopes.clone(),
            sync_secret: sync_secret.clone(),
            usage_secret,
            usage_url: format!("{}/v1/usage", plane.url()),
            vars,
            state_dir: Some(dir.join("edge")),
            port: Some(edge_port),
            ..EdgeOptions::default()
        };
        let edge = start_edge(edge_options.clone()).await?;

        let poller = Poller::start(PollerConfig {
            dynamodb_url: plane.moto_url().to_owned(),
            table: plane.table().to_owned(),
            lambda_url: plane.lambda_url().to_owned(),
            function: "sync".to_owned(),
            batch_size: 100,
            idle_wait: opts.poll_interval,
            max_retry_attempts: opts.max_retry_attempts,
            failure_function: Some("backfill".to_owned()),
        })
        .await
        .context("starting the stream poller")?;
        // The table's second stream consumer, as in the template: webhook events.
        let events_poller = Poller::start(PollerConfig {
            dynamodb_url: plane.moto_url().to_owned(),
            table: plane.table().to_owned(),
            lambda_url: plane.lambda_url().to_owned(),
            function: "events".to_owned(),
            // Larger batches and calmer polls than sync's: events are not on the revocation
            // path, and moto serves one request at a time for every consumer.
            batch_size: 500,
            idle_wait: opts.poll_interval.max(Duration::from_millis(200)),
            max_retry_attempts: opts.max_retry_attempts,
            failure_function: None,
        })
        .await
        .context("starting the events stream poller")?;
        let retries = QueuePoller::start(
            plane.moto_url(),
            plane.webhook_queue().clone(),
            plane.lambda_url(),
            "webhook-retries",
        )?;
        // Every 2 s here (every 5 minutes in the template): reminders fall due on time.
        let scheduler = Scheduler::start(plane.lambda_url(), "events", Duration::from_secs(2))?;

        Ok(Self {
            poller,
            _events_poller: events_poller,
            _retries: retries,
            _scheduler: scheduler,
            edge: Some(edge),
            origin,
            plane,
            edge_options,
            sync_secret,
            dir,
        })
    }

    /// The control plane (router URL, moto, table, JWT settings, logs).
    #[must_use]
    pub fn control_plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// The management API's base URL (the router).
    #[must_use]
    pub fn control_plane_url(&self) -> String {
        self.plane.url()
    }

    /// `cargo lambda watch`'s base URL (`/2015-03-31/functions/{name}/invocations`).
    #[must_use]
    pub fn lambda_url(&self) -> &str {
        self.plane.lambda_url()
    }

    /// The edge's base URL (also while it is stopped: the port is kept).
    #[must_use]
    pub fn edge_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.edge_options.port.unwrap_or_default()
        )
    }

    /// The running edge, if it is not stopped.
    #[must_use]
    pub fn edge(&self) -> Option<&EdgeServer> {
        self.edge.as_ref()
    }

    /// The echo origin's base URL.
    #[must_use]
    pub fn origin_url(&self) -> String {
        self.origin.url()
    }

    /// The echo origin (what it received).
    #[must_use]
    pub fn origin(&self) -> &EchoOrigin {
        &self.origin
    }

    /// moto's endpoint.
    #[must_use]
    pub fn moto_url(&self) -> &str {
        self.plane.moto_url()
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        self.plane.table()
    }

    /// The secret that signs sync and usage batches (dev-only, random per stack).
    #[must_use]
    pub fn sync_secret(&self) -> &str {
        &self.sync_secret
    }

    /// Every component's process group by name (moto, functions, edge); the poller and the echo
    /// origin run inside this process.
    #[must_use]
    pub fn process_groups(&self) -> Vec<(&'static str, u32)> {
        let mut groups = self.plane.process_groups();
        if let Some(edge) = &self.edge {
            groups.push(("edge", edge.process_group()));
        }
        groups
    }

    /// The poller's counters.
    #[must_use]
    pub fn poller_stats(&self) -> &PollerStats {
        self.poller.stats()
    }

    /// Where this stack's logs and edge state live.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An admin token for `workspace` (`api.*`), valid for `valid_s` seconds.
    ///
    /// # Errors
    /// Never in practice (signing a small JSON object).
    pub fn admin_token(&self, workspace: &str, sub: &str, valid_s: i64) -> Result<String> {
        let jwt = self.plane.jwt();
        let mut claims = jwt.claims(workspace, &ADMIN_PERMISSIONS, sub);
        let now = crate::control_plane::unix_now();
        claims["exp"] = (now + valid_s).into();
        jwt.sign(&claims)
    }

    /// Stops the edge (wrangler and workerd), keeping its port and persisted state.
    pub fn stop_edge(&mut self) {
        // Dropping the server stops its whole process group.
        drop(self.edge.take());
    }

    /// Deletes the stopped edge's local KV data (its Durable Objects stay).
    ///
    /// # Errors
    /// When the edge is running or the data cannot be removed.
    pub fn wipe_edge_kv(&self) -> Result<()> {
        anyhow::ensure!(self.edge.is_none(), "stop the edge before wiping its KV");
        let kv = self.edge_state_dir().join("state/v3/kv");
        if kv.exists() {
            std::fs::remove_dir_all(&kv).with_context(|| format!("removing {}", kv.display()))?;
        }
        Ok(())
    }

    /// Starts the edge again on the same port with the same state (no-op when running).
    ///
    /// # Errors
    /// When it does not become healthy.
    pub async fn start_edge(&mut self) -> Result<()> {
        if self.edge.is_none() {
            self.edge = Some(start_edge(self.edge_options.clone()).await?);
        }
        Ok(())
    }

    fn edge_state_dir(&self) -> PathBuf {
        self.edge_options
            .state_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("edge"))
    }
}

/// An admin's permissions: every management permission (DESIGN: the local stack's
/// `admin_token` holds `api.*`).
pub const ADMIN_PERMISSIONS: [&str; 1] = ["api.*"];

/// Waits until `sync` (invoked as the event source mapping does) and `usage` (through the
/// router, unsigned, so it must answer 401) answer: compiled, started and configured.
async fn warm_up_replication(plane: &ControlPlane) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let sync_url = format!(
        "{}/2015-03-31/functions/sync/invocations",
        plane.lambda_url()
    );
    let usage_url = format!("{}/v1/usage", plane.url());
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let sync = http
            .post(&sync_url)
            .json(&serde_json::json!({ "Records": [] }))
            .send()
            .await;
        let usage = http
            .post(&usage_url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await;
        let sync_ok = sync.as_ref().is_ok_and(|r| r.status() == 200);
        let usage_ok = usage.as_ref().is_ok_and(|r| r.status() == 401);
        if sync_ok && usage_ok {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "sync (ok: {sync_ok}) or usage (ok: {usage_ok}) did not answer warm-up; see {}",
                plane.functions_log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn start_edge(opts: EdgeOptions) -> Result<EdgeServer> {
    tokio::task::spawn_blocking(move || EdgeServer::start(opts))
        .await
        .context("the edge launcher panicked")?
}
