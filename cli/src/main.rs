//! `keyward`: manage API keys from the terminal.
//!
//! Run: `cargo run -p keyward-cli -- keys list` (with `cargo xtask dev` running, or the
//! `KEYWARD_*` variables set). `keyward --help` lists the commands.

use std::process::ExitCode;

use clap::Parser;
use keyward_cli::args::Cli;
use keyward_cli::client::{Client, Connection, default_dir};
use keyward_cli::run::{Failure, run};

fn main() -> ExitCode {
    // clap prints help and usage errors itself and exits 0 or 2.
    let cli = Cli::parse();
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("starting the runtime: {e}")))
        .and_then(|rt| {
            rt.block_on(async {
                let connection = Connection::from_env_or_dev_json(&default_dir())?;
                run(cli, Client::new(connection)?).await
            })
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
