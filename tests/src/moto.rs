//! moto's DynamoDB server as every test starts it: `tests/moto_server.py` (moto's own server
//! with the fixes that file describes) from the project venv, on a port the OS picks, stopped
//! with its whole process group when dropped.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

use crate::paths::repo_root;
use crate::process::{Managed, free_port, wait_for_port};

/// How long moto may take to listen (its first import is slow on a cold disk).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    process: Managed,
    url: String,
}

impl Moto {
    /// Starts moto with its output in `log` and waits until it listens. Blocks: from async code
    /// call it inside `tokio::task::spawn_blocking`. Needs `.venv` (`cargo xtask bootstrap`).
    ///
    /// # Errors
    /// When the venv's python cannot start, or moto exits or does not listen in time (with the
    /// tail of its log).
    pub fn start(log: &Path) -> Result<Self> {
        Self::start_with_env(log, &[])
    }

    /// [`Moto::start`] with extra environment for `tests/moto_server.py` (for example
    /// `KEYWARD_AWS_ACTIONS_LOG`, where it records which function issued which action).
    ///
    /// # Errors
    /// As [`Moto::start`].
    pub fn start_with_env(log: &Path, env: &[(String, String)]) -> Result<Self> {
        let root = repo_root();
        let port = free_port()?;
        let mut cmd = Command::new(root.join(".venv/bin/python"));
        cmd.arg(root.join("tests/moto_server.py")).args([
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut process = Managed::spawn("moto_server", cmd, log)
            .context("starting moto_server (run `cargo xtask bootstrap`)")?;
        wait_for_port(&mut process, port, START_TIMEOUT)?;
        Ok(Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The endpoint, e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A DynamoDB client for this server (fixed test credentials, `us-east-1`).
    #[must_use]
    pub fn dynamodb(&self) -> Client {
        dynamodb_client(&self.url)
    }

    /// The server's process id (also its process group's).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// What moto printed.
    #[must_use]
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// Fails with the log's tail when moto has exited.
    ///
    /// # Errors
    /// When the process is gone.
    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }
}

/// A DynamoDB client for a local endpoint (moto does not check credentials or signatures).
#[must_use]
pub fn dynamodb_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    Client::from_conf(config)
}
