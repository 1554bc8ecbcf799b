//! API fuzzing: schemathesis against the real local control plane, generated from `openapi.json`.
//!
//! Run: `cargo xtask test` (its `api fuzz` step), or by hand after `cargo xtask bootstrap`:
//! `eval "$(cargo xtask env)" && cargo run -p keyward-tests --bin api_fuzz -- [--seconds N] [--seed S]`.
//!
//! Starts the control plane as the end-to-end tests do (moto, every function under
//! `cargo lambda watch`, the router), signs an admin JWT (`api.*`) for the workspace `fuzz`, and
//! runs `schemathesis run openapi.json` with it for `--seconds` (default 120). Every request
//! names the workspace `fuzz`, so the generated input reaches the operations instead of a 404.
//!
//! Checks: no 5xx; every status code, content type, header and body is the one the document
//! describes; input the document forbids is refused with a 4xx. A failure prints the request
//! that caused it (with a `curl` line) and the exit code is schemathesis's; reports (JUnit, and a
//! cassette of every exchange) go to `target/keyward/api-fuzz/`.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use keyward_tests::control_plane::{ControlPlane, ControlPlaneOptions};
use keyward_tests::process::repo_root;

/// The workspace every generated request names, and the admin token's.
const WORKSPACE: &str = "fuzz";
/// How long schemathesis generates requests when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 120;
/// What is checked of every answer.
const CHECKS: &[&str] = &[
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
];

const USAGE: &str = "usage: api_fuzz [--seconds N] [--seed S]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (seconds, seed) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("api_fuzz: {err:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(err) => {
            eprintln!("api_fuzz: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(seconds, seed)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("api_fuzz: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<(u64, Option<u64>)> {
    let mut seconds = DEFAULT_SECONDS;
    let mut seed = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64> {
            let value = it
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            value
                .parse()
                .with_context(|| format!("{name} {value}: not a whole number"))
        };
        match arg.as_str() {
            "--seconds" => seconds = number("--seconds")?.max(1),
            "--seed" => seed = Some(number("--seed")?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok((seconds, seed))
}

/// Whether schemathesis found nothing.
async fn run(seconds: u64, seed: Option<u64>) -> Result<bool> {
    let root = repo_root();
    let root = root.canonicalize().unwrap_or(root);
    let out = root.join("target/keyward/api-fuzz");
    // Only this run's reports: an old failure must not be read as a new one.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    println!("api_fuzz: starting the control plane (logs under target/keyward/runs/)");
    let plane = ControlPlane::start(ControlPlaneOptions::default())
        .await
        .context("starting the local control plane")?;
    let token = plane.token(WORKSPACE, &["api.*"], "schemathesis")?;
    let config = out.join("schemathesis.toml");
    std::fs::write(&config, config_text())
        .with_context(|| format!("writing {}", config.display()))?;

    let mut cmd = Command::new(root.join(".venv/bin/schemathesis"));
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(root.join("openapi.json"))
        .args(["--url", &plane.url()])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-time", &seconds.to_string()])
        .args(["--workers", "1", "--request-timeout", "30", "--no-color"])
        .args(["--report", "junit,vcr", "--report-dir"])
        .arg(&out)
        // Failing examples are replayed first on the next run; kept out of the clone.
        .arg("--generation-database")
        .arg(root.join("target/keyward/api-fuzz-examples"))
        .current_dir(&root);
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    println!(
        "api_fuzz: schemathesis against {} for {seconds}s (checks: {})",
        plane.url(),
        CHECKS.join(", ")
    );
    let status = cmd
        .status()
        .context("starting .venv/bin/schemathesis (run `cargo xtask bootstrap`)")?;
    if !status.success() {
        report_logs(&plane, &out);
    }
    Ok(status.success())
}

/// Every generated request names the admin token's workspace.
/// The run's `schemathesis.toml`: the path parameter, the checks (every other check off), and one
/// exception. `POST /keys/import` answers 200 for a call whose items are refused one by one
/// (DESIGN, "Import": each bad item gets its own `validation_failed` problem in `results`, and
/// the call's valid items are created), so an item that violates the schema is not a request to
/// reject: `negative_data_rejection` is off for that one operation, and every other check still
/// runs on it. The checks are set here, not with `--checks`: a check named on the command line
/// is on for every operation, whatever an operation's section says. (`include-path` alone: with
/// `include-method` too, schemathesis applies the section to every `POST`.)
fn config_text() -> String {
    let checks: String = CHECKS
        .iter()
        .map(|c| format!("{c}.enabled = true\n"))
        .collect();
    format!(
        "# Written by tests/src/bin/api_fuzz.rs for one run.\n\
         [parameters]\n\
         \"path.workspace\" = \"{WORKSPACE}\"\n\
         \n\
         [checks]\n\
         enabled = false\n\
         {checks}\
         \n\
         [[operations]]\n\
         include-path = \"/v1/workspaces/{{workspace}}/keys/import\"\n\
         checks.negative_data_rejection.enabled = false\n"
    )
}

fn report_logs(plane: &ControlPlane, out: &Path) {
    eprintln!(
        "api_fuzz: schemathesis found problems (above). Reports: {}; function logs: {}",
        out.display(),
        plane.functions_log().display()
    );
}
