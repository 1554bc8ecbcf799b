//! The soak driver for a minute inside `cargo test`: correctness only (no resurrected secret, no
//! lost write, usage reaches the control plane), never timings. `cargo xtask soak` runs the same
//! driver for ten minutes and reports its figures.
//!
//! Run: `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo test -p keyward-tests --test
//! soak` after `cargo xtask build-edge`.

use std::time::Duration;

use keyward_tests::soak::{self, Rates};
use keyward_tests::stack::{Stack, StackOptions};

/// Long enough for a few dozen writes of each kind at the soak's rates.
const SECONDS: u64 = 60;

async fn a_minute_of_mixed_load_loses_no_write_and_resurrects_no_secret(_: ()) {
    let stack = Stack::start(StackOptions::default())
        .await
        .expect("starting the local stack");
    let report = soak::run(&stack, Duration::from_secs(SECONDS), Rates::default())
        .await
        .expect("running the soak driver");
    println!("{}", report.table());
    let violations = report.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

fn main() {
    keyward_tests::scenarios::main(
        keyward_tests::scenarios![a_minute_of_mixed_load_loses_no_write_and_resurrects_no_secret],
        |selected| async move { keyward_tests::scenarios::run_each(&selected, &()).await },
    );
}
