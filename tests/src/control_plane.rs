//! The control plane's local stack: moto, a fresh table, every function under
//! `cargo lambda watch`, and the router that gives them their production URLs.
//!
//! [`ControlPlane::start`] returns only when every management function answers through the
//! router (compiled and running); dropping the value stops the router and both process groups.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::moto::Moto;
pub use crate::moto::dynamodb_client;
use crate::paths::repo_root;
use crate::process::{Managed, free_port, tail, wait_for_port};
use crate::router::{Router, management_functions};
use crate::table;
use keyward_functions::operation::{Access, OPERATIONS};

/// Issuer of the dev/test JWTs.
pub const DEV_ISSUER: &str = "keyward-dev";
/// Audience of the dev/test JWTs.
pub const DEV_AUDIENCE: &str = "keyward";

/// How long the functions may take to build and answer for the first time.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(900);

/// What a stack is started with.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Extra environment for every function (e.g. `KEYWARD_EDGE_URL`).
    pub extra_env: Vec<(String, String)>,
    /// Secrets by configuration name (`KEYWARD_SYNC_SECRET`, `KEYWARD_USAGE_SECRET`): stored in
    /// moto's Secrets Manager, and the functions get only the `*_SECRET_ID` naming each, as in
    /// production. The JWT key and the cursor secret are always added.
    pub secrets: Vec<(String, String)>,
    /// `KEYWARD_MAX_ACTIVE_KEYS`.
    pub max_active_keys: u64,
    /// `KEYWARD_ALLOWED_SCOPES`; empty means any scope.
    pub allowed_scopes: Vec<String>,
    /// `KEYWARD_DEFAULT_SCOPES`.
    pub default_scopes: Vec<String>,
    /// Instances per function (`cargo lambda watch --concurrency`).
    pub concurrency: u32,
    /// Where logs go; a fresh directory under `target/keyward/runs/` when `None`.
    pub log_dir: Option<PathBuf>,
    /// Build the functions before starting `cargo lambda watch` (so no invocation compiles).
    pub prebuild: bool,
    /// Run the functions' release build (`--release`: the profile deployed), not the dev one.
    /// It is the build `cargo xtask bench` times for Lambda init too.
    pub release: bool,
    /// Create the table with its stream (replication needs it). Off only for the control-plane
    /// benchmark: see [`table::create_table_with`].
    pub stream: bool,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            extra_env: Vec::new(),
            secrets: Vec::new(),
            max_active_keys: 1000,
            allowed_scopes: Vec::new(),
            default_scopes: vec!["read".to_owned()],
            concurrency: 1,
            log_dir: None,
            prebuild: true,
            release: false,
            stream: true,
        }
    }
}

/// The HS256 settings the functions verify JWTs with (dev-only values).
#[derive(Clone)]
pub struct JwtSettings {
    /// Always `HS256` locally.
    pub alg: String,
    /// The shared secret, random per run.
    pub secret: String,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("alg", &self.alg)
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtSettings {
    /// Signs `claims` with the stack's secret (HS256), whatever they hold.
    ///
    /// # Errors
    /// When the claims cannot be serialised.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .context("signing a JWT")
    }

    /// The claims of a valid token for `workspace` with `permissions`, valid for an hour.
    #[must_use]
    pub fn claims(&self, workspace: &str, permissions: &[&str], sub: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "workspace": workspace,
            "permissions": permissions,
            "iat": now,
            "exp": now + 3600,
        })
    }
}

/// A running control plane. Fields drop in order: router, functions, moto.
#[derive(Debug)]
pub struct ControlPlane {
    router: Router,
    watch: Managed,
    moto: Moto,
    lambda_url: String,
    table: String,
    jwt: JwtSettings,
    log_dir: PathBuf,
    dynamodb: Client,
    webhook_queue: crate::queue::Queue,
}

impl ControlPlane {
    /// Starts moto, creates a uniquely named table from `infra/template.yaml`, starts every
    /// function under `cargo lambda watch` and the router, and waits until each function
    /// answers. Needs `moto_server` and `cargo-lambda` in `.venv/bin` (`cargo xtask bootstrap`).
    ///
    /// # Errors
    /// When a component fails to start or does not answer in time; the error carries the tail
    /// of the failing component's log.
    pub async fn start(opts: ControlPlaneOptions) -> Result<Self> {
        let root = repo_root();
        let root = root.canonicalize().unwrap_or(root);
        let venv = root.join(".venv/bin");
        let run_id = format!("{}-{}", unix_now(), random_hex(4));
        let log_dir = match &opts.log_dir {
            Some(dir) => dir.clone(),
            None => root.join("target/keyward/runs").join(&run_id),
        };
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;

        // moto first: the table must exist before a function reads it.
        let moto_log = log_dir.join("moto.log");
        let moto_env = vec![(
            "KEYWARD_AWS_ACTIONS_LOG".to_owned(),
            actions_log(&log_dir, &run_id)?.display().to_string(),
        )];
        let moto = tokio::task::spawn_blocking(move || Moto::start_with_env(&moto_log, &moto_env))
            .await??;
        let moto_url = moto.url().to_owned();

        let dynamodb = dynamodb_client(&moto_url);
        let table = format!("keyward-e2e-{run_id}");
        let definition = table::load_table_definition()?;
        table::create_table_with(&dynamodb, &table, &definition, opts.stream)
            .await
            .with_context(|| format!("creating table {table} on moto"))?;

        // The webhook retry queue and its failure queue, on moto as on AWS.
        let (webhook_queue, _) =
            crate::queue::create_queue(&moto_url, &format!("keyward-webhooks-{run_id}"), 5)
                .await
                .context("creating the webhook retry queue on moto")?;

        let jwt = JwtSettings {
            alg: "HS256".to_owned(),
            secret: random_hex(32),
            issuer: DEV_ISSUER.to_owned(),
            audience: DEV_AUDIENCE.to_owned(),
        };
        let mut env = function_env(&opts, &moto_url, &table, &jwt);
        env.push((
            "KEYWARD_WEBHOOK_QUEUE_URL".to_owned(),
            webhook_queue.url.clone(),
        ));
        let mut secrets = vec![
            ("KEYWARD_JWT_KEY".to_owned(), jwt.secret.clone()),
            ("KEYWARD_CURSOR_SECRET".to_owned(), random_hex(32)),
        ];
        secrets.extend(opts.secrets.iter().cloned());
        env.extend(
            store_secrets(&moto_url, &table, &secrets)
                .await
                .context("storing the functions' secrets in moto's Secrets Manager")?,
        );
        let env_file = log_dir.join("functions.env");
        let mut text = String::new();
        for (k, v) in &env {
            let _ = writeln!(text, "{k}={v}");
        }
        std::fs::write(&env_file, text)
            .with_context(|| format!("writing {}", env_file.display()))?;

        if opts.prebuild {
            prebuild(&root, &log_dir.join("build.log"), opts.release).await?;
        }

        let lambda_port = free_port()?;
        let path = format!(
            "{}:{}",
            venv.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(venv.join("cargo-lambda"));
        cmd.args([
            "lambda",
            "watch",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(lambda_port.to_string())
        .arg("--concurrency")
        .arg(opts.concurrency.max(1).to_string())
        .args(opts.release.then_some("--release"))
        .arg("--env-file")
        .arg(&env_file)
        .current_dir(root.join("functions"))
        .env("PATH", path)
        // The functions also inherit the process environment; set it too, so either way
        // they see the same values.
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // It runs `cargo run --bin <function>`: the same build as `prebuild`'s.
        for name in crate::paths::package_env_vars() {
            cmd.env_remove(name);
        }
        let watch = Managed::spawn("cargo lambda watch", cmd, &log_dir.join("functions.log"))?;
        let watch = wait_blocking(watch, lambda_port, Duration::from_secs(120)).await?;
        let lambda_url = format!("http://127.0.0.1:{lambda_port}");

        let router = Router::start(&lambda_url).await?;
        let mut plane = Self {
            router,
            watch,
            moto,
            lambda_url,
            table,
            jwt,
            log_dir,
            dynamodb,
            webhook_queue,
        };
        plane.warm_up().await?;
        Ok(plane)
    }

    /// Asks every management function, through the router, for something that needs a
    /// credential until each answers itself (401; the console 200): compiled, started, configured.
    async fn warm_up(&mut self) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(WARM_UP_TIMEOUT)
            .build()?;
        let deadline = Instant::now() + WARM_UP_TIMEOUT;
        let base = self.url();
        let probes = management_functions().into_iter().map(|function| {
            let client = client.clone();
            let (method, path, ready) = probe_route(function);
            let url = format!("{base}{path}");
            async move {
                loop {
                    let outcome = client
                        .request(method.clone(), &url)
                        .header("content-type", "application/json")
                        .body("{}")
                        .send()
                        .await;
                    match outcome {
                        Ok(r) if r.status() == ready => return Ok(()),
                        Ok(r) if Instant::now() > deadline => {
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            bail!("{function} answered {status} to warm-up, not {ready}: {body}");
                        }
                        Err(err) if Instant::now() > deadline => {
                            bail!("{function} did not answer warm-up: {err}")
                        }
                        _ => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
            }
        });
        let results = futures_join_all(probes).await;
        for result in results {
            if let Err(err) = result {
                self.watch.check_running()?;
                return Err(err.context(format!(
                    "warming up the functions; last log lines:\n{}",
                    tail(self.watch.log(), 40)
                )));
            }
        }
        Ok(())
    }

    /// The webhook retry queue on moto.
    #[must_use]
    pub fn webhook_queue(&self) -> &crate::queue::Queue {
        &self.webhook_queue
    }

    /// The router's base URL: the API at its production paths (`{url}/v1/workspaces/...`).
    #[must_use]
    pub fn url(&self) -> String {
        self.router.url()
    }

    /// `cargo lambda watch`'s base URL (`/lambda-url/{function}/...`, `/2015-03-31/...`).
    #[must_use]
    pub fn lambda_url(&self) -> &str {
        &self.lambda_url
    }

    /// moto's endpoint.
    #[must_use]
    pub fn moto_url(&self) -> &str {
        self.moto.url()
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// A DynamoDB client for moto.
    #[must_use]
    pub fn dynamodb(&self) -> &Client {
        &self.dynamodb
    }

    /// The JWT settings the functions verify with.
    #[must_use]
    pub fn jwt(&self) -> &JwtSettings {
        &self.jwt
    }

    /// A valid HS256 token for `workspace` with `permissions`, subject `sub`, valid for an hour.
    ///
    /// # Errors
    /// Never in practice (signing a small JSON object).
    pub fn token(&self, workspace: &str, permissions: &[&str], sub: &str) -> Result<String> {
        self.jwt.sign(&self.jwt.claims(workspace, permissions, sub))
    }

    /// The directory holding every log of this stack.
    #[must_use]
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// What the functions printed (through `cargo lambda watch`).
    #[must_use]
    pub fn functions_log(&self) -> &Path {
        self.watch.log()
    }

    /// What moto printed.
    #[must_use]
    pub fn moto_log(&self) -> &Path {
        self.moto.log()
    }

    /// The process groups of moto and of `cargo lambda watch` (with the function processes it
    /// starts), by component name: what a soak samples for resident memory.
    #[must_use]
    pub fn process_groups(&self) -> Vec<(&'static str, u32)> {
        vec![("moto", self.moto.pid()), ("functions", self.watch.pid())]
    }

    /// Fails with a log tail when moto or `cargo lambda watch` has exited.
    ///
    /// # Errors
    /// When either process is gone.
    pub fn check_running(&mut self) -> Result<()> {
        self.moto.check_running()?;
        self.watch.check_running()
    }
}

/// Where moto records the AWS actions each function issues (see `tests/moto_server.py`):
/// `$KEYWARD_IAM_LOG_DIR/<run>.jsonl` when set (`cargo xtask test` sets it and checks the
/// template's policies against the union), else `aws-actions.jsonl` in the run's log directory.
fn actions_log(log_dir: &Path, run_id: &str) -> Result<PathBuf> {
    match std::env::var_os("KEYWARD_IAM_LOG_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(dir.join(format!("{run_id}.jsonl")))
        }
        None => Ok(log_dir.join("aws-actions.jsonl")),
    }
}

/// The variable naming the secret of the configuration value `name` (what
/// `keyward_functions::runtime::SecretVar::id_variable` says).
fn secret_id_variable(name: &str) -> Result<&'static str> {
    Ok(match name {
        "KEYWARD_JWT_KEY" => "KEYWARD_JWT_KEY_SECRET_ID",
        "KEYWARD_CURSOR_SECRET" => "KEYWARD_CURSOR_SECRET_ID",
        "KEYWARD_SYNC_SECRET" => "KEYWARD_SYNC_SECRET_ID",
        "KEYWARD_USAGE_SECRET" => "KEYWARD_USAGE_SECRET_ID",
        other => bail!("{other} is not a secret the functions read"),
    })
}

/// Stores each (configuration name, value) as a secret in moto and returns the environment
/// that names them: `<ID_VARIABLE>=<table>/<ID_VARIABLE>`. The secret's name ends with the
/// variable, which is how `cargo xtask iam` maps a recorded read to the template's secret.
async fn store_secrets(
    moto_url: &str,
    table: &str,
    secrets: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "keyward-tests",
        ))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let mut env = Vec::new();
    for (name, value) in secrets {
        let variable = secret_id_variable(name)?;
        let id = format!("{table}/{variable}");
        client
            .create_secret()
            .name(&id)
            .secret_string(value)
            .send()
            .await
            .with_context(|| format!("creating secret {id}"))?;
        env.push((variable.to_owned(), id));
    }
    Ok(env)
}

/// A route of `function` that needs a credential, for warm-up.
/// A request for `function`'s first row of the operation table, in a workspace no test uses.
/// A request `function` answers once it runs, and the status it answers with: 401 without a
/// credential for a management function, 200 for the console's public page.
fn probe_route(function: &str) -> (reqwest::Method, String, u16) {
    let row = OPERATIONS
        .iter()
        .find(|r| r.function == function)
        .unwrap_or(&OPERATIONS[0]);
    let ready = if row.access == Access::Public {
        200
    } else {
        401
    };
    let method = reqwest::Method::from_bytes(row.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let path = row
        .path
        .replace("{workspace}", "warmup")
        .replace("{id}", "key_0000000000000000000000000");
    (method, path, ready)
}

fn function_env(
    opts: &ControlPlaneOptions,
    moto_url: &str,
    table: &str,
    jwt: &JwtSettings,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto_url),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto_url),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("KEYWARD_TABLE", table),
        ("KEYWARD_JWT_ALG", &jwt.alg),
        ("KEYWARD_JWT_ISSUER", &jwt.issuer),
        ("KEYWARD_JWT_AUDIENCE", &jwt.audience),
        ("KEYWARD_DEFAULT_PREFIX", "kw"),
        // The local stack's webhooks may go to plain http on loopback (test receivers).
        ("KEYWARD_WEBHOOK_ALLOW_LOOPBACK", "true"),
        // Retries compressed from about a day to about half a minute, still exponential.
        ("KEYWARD_WEBHOOK_RETRY_DELAYS_S", "1,2,4,8,16"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "KEYWARD_MAX_ACTIVE_KEYS".into(),
        opts.max_active_keys.to_string(),
    ));
    env.push((
        "KEYWARD_DEFAULT_SCOPES".into(),
        opts.default_scopes.join(","),
    ));
    if !opts.allowed_scopes.is_empty() {
        env.push((
            "KEYWARD_ALLOWED_SCOPES".into(),
            opts.allowed_scopes.join(","),
        ));
    }
    env.extend(opts.extra_env.iter().cloned());
    env
}

/// Builds every function binary once, as `cargo lambda watch` builds them (`cargo run --bin
/// <function>` in `functions/`: this package's features, no extra flags, `--release` when
/// asked), so the first invocations do not compile.
async fn prebuild(root: &Path, log: &Path, release: bool) -> Result<()> {
    let root = root.to_owned();
    let log = log.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = std::fs::File::create(&log)?;
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // Without the variables cargo set for this test or launcher: a build script watching one
        // would make this build differ from `cargo lambda watch`'s and from a shell's.
        for name in crate::paths::package_env_vars() {
            cargo.env_remove(name);
        }
        let status = cargo
            .args(["build", "-p", "keyward-functions", "--bins"])
            .args(release.then_some("--release"))
            .current_dir(&root)
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .context("running cargo build for the functions")?;
        if !status.success() {
            bail!("building the functions failed:\n{}", tail(&log, 40));
        }
        Ok(())
    })
    .await?
}

async fn wait_blocking(mut process: Managed, port: u16, timeout: Duration) -> Result<Managed> {
    tokio::task::spawn_blocking(move || {
        wait_for_port(&mut process, port, timeout)?;
        Ok(process)
    })
    .await?
}

async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    out
}

/// `bytes` random bytes from the OS, as lowercase hex.
#[must_use]
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Seconds since the epoch.
#[must_use]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
