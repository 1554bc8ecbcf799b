//! The runner shared by the end-to-end test binaries (`harness = false`): picks the scenarios
//! named on the command line, answers `--list`, and maps failures to libtest's exit code.

use std::future::Future;
use std::time::Duration;

/// Runs the scenarios selected by the command line (all when no filter is given) through
/// `run`, which starts the stack once and returns how many scenarios failed; exits 101 when
/// any did. With `--list` it only lists them, and when nothing matches it starts nothing.
pub fn main<S: 'static, F, Fut>(scenarios: &'static [(&'static str, S)], run: F)
where
    F: FnOnce(Vec<&'static (&'static str, S)>) -> Fut,
    Fut: Future<Output = usize>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let selected: Vec<&'static (&'static str, S)> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    if selected.is_empty() {
        println!("running 0 tests (no scenario matches {filters:?}; the stack was not started)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let failed = runtime.block_on(run(selected));
    runtime.shutdown_timeout(Duration::from_secs(10));
    if failed > 0 {
        std::process::exit(101);
    }
}

/// One end-to-end scenario: an async test taking the binary's shared world `W`.
pub type Scenario<W> = fn(W) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// `scenarios![a, b, …]`: the named async test functions as `(name, Scenario<W>)` pairs.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|w| Box::pin($name(w))) as $crate::scenarios::Scenario<_>)),*]
    };
}

/// Runs each selected scenario as its own task (a panic fails that scenario only) on clones of
/// `world`, printing libtest-style lines and the summary; returns how many failed.
pub async fn run_each<W: Clone + Send + 'static>(
    selected: &[&(&str, Scenario<W>)],
    world: &W,
) -> usize {
    let started = std::time::Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut failures = Vec::new();
    for (name, scenario) in selected {
        let t = std::time::Instant::now();
        let outcome = tokio::spawn(scenario(world.clone())).await;
        let status = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {status} ({:.1?})", t.elapsed());
        if outcome.is_err() {
            failures.push(*name);
        }
    }
    print_result(selected.len(), &failures, started);
    failures.len()
}

/// Prints libtest's closing lines: the counts, then each failed scenario's name.
pub fn print_result(total: usize, failures: &[&str], started: std::time::Instant) {
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.1?}",
        if failures.is_empty() { "ok" } else { "FAILED" },
        total - failures.len(),
        failures.len(),
        started.elapsed()
    );
    for name in failures {
        println!("    {name}");
    }
}
