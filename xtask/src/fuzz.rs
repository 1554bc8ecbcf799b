//! `cargo xtask fuzz [--seconds N] [TARGET]`: the cargo-fuzz targets in `fuzz/`, each for a
//! time budget, from its committed corpus (`fuzz/corpus/TARGET`).
//!
//! libFuzzer writes what it discovers into `fuzz/target/corpus/TARGET` (ignored), so a run never
//! dirties the committed seeds, and a crash into `fuzz/artifacts/TARGET/` (also ignored).
//! Reproduce one with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
//!
//! Built with debug assertions (an arithmetic overflow is a crash, as it would be in a test) and
//! without a sanitizer: `common` forbids `unsafe`, so AddressSanitizer would only slow it down.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, output, run};

/// The whole fuzz step of `cargo xtask test` shares this budget (build not included).
pub const TEST_BUDGET: Duration = Duration::from_secs(120);
/// No target gets less than this inside `cargo xtask test`, however many there are.
const MIN_SECONDS_PER_TARGET: u64 = 5;
/// Default run length of `cargo xtask fuzz` per target.
pub const DEFAULT_SECONDS: u64 = 300;
/// One input taking longer than this is reported as a hang.
const INPUT_TIMEOUT_S: u64 = 10;
/// Per-target memory limit for libFuzzer (the machine has 24 GiB shared by everyone).
const RSS_LIMIT_MB: u64 = 2048;

/// What one target did.
#[derive(Debug)]
pub struct Outcome {
    pub target: String,
    pub seconds: u64,
    pub executions: Option<u64>,
    pub corpus: Option<u64>,
}

/// The targets: one file per parser in `fuzz/fuzz_targets/`, sorted.
///
/// # Errors
/// When the directory cannot be read or holds no target.
pub fn targets(repo: &Path) -> Result<Vec<String>> {
    let dir = repo.join("fuzz/fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("{} holds no fuzz target", dir.display());
    }
    Ok(names)
}

/// Seconds per target so that `targets` together fit in [`TEST_BUDGET`].
#[must_use]
pub fn test_seconds(targets: usize) -> u64 {
    (TEST_BUDGET.as_secs() / targets.max(1) as u64).max(MIN_SECONDS_PER_TARGET)
}

/// The toolchain and environment to run cargo-fuzz with: nightly when rustup has one, else the
/// pinned toolchain with `RUSTC_BOOTSTRAP=1` (cargo-fuzz passes `-Z` flags).
pub fn fuzz_env(repo: &Path, env: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let mut env = env.to_vec();
    if has_nightly(repo)? {
        env.push(("RUSTUP_TOOLCHAIN".into(), "nightly".into()));
    } else {
        env.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
    }
    Ok(env)
}

/// Whether rustup has a nightly toolchain installed.
pub fn has_nightly(repo: &Path) -> Result<bool> {
    let list = output(cmd("rustup", repo, &[]).args(["toolchain", "list"]))?;
    Ok(list.lines().any(|l| l.starts_with("nightly")))
}

/// Flags shared by `cargo fuzz build` and `cargo fuzz run`, so `run` never rebuilds.
const BUILD_FLAGS: &[&str] = &["--sanitizer", "none", "--debug-assertions"];

/// Builds every target (once) and runs each listed one for `seconds`, failing on the first crash,
/// panic (a broken property), hang or leak, with the input that caused it.
pub fn fuzz(
    repo: &Path,
    env: &[(String, String)],
    names: &[String],
    seconds: u64,
) -> Result<Vec<Outcome>> {
    let env = fuzz_env(repo, env)?;
    run(cmd("cargo", repo, &env)
        .args(["fuzz", "build"])
        .args(BUILD_FLAGS))
    .context("building the fuzz targets (cargo-fuzz comes from `cargo xtask bootstrap`)")?;
    let mut outcomes = Vec::new();
    for name in names {
        outcomes.push(run_one(repo, &env, name, seconds)?);
    }
    println!("{}", summary(&outcomes));
    Ok(outcomes)
}

fn run_one(repo: &Path, env: &[(String, String)], name: &str, seconds: u64) -> Result<Outcome> {
    let seeds = corpus_dir(repo, name);
    let work = repo.join("fuzz/target/corpus").join(name);
    let logs = repo.join("fuzz/target/logs");
    for dir in [&work, &logs] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = logs.join(format!("{name}.log"));
    let log_file = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = cmd("cargo", repo, env);
    c.args(["fuzz", "run"])
        .args(BUILD_FLAGS)
        .arg(name)
        .arg(&work);
    if seeds.is_dir() {
        c.arg(&seeds);
    }
    c.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    println!("  fuzz {name}: {seconds}s (log: {})", log.display());
    let started = Instant::now();
    let status = c
        .status()
        .with_context(|| format!("starting cargo fuzz run {name}"))?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        bail!(
            "fuzz target `{name}` failed after {:.0}s ({status}): a property broke or the code \
             panicked. Input: {}\nReproduce: cargo +nightly fuzz run {name} <that file>\n\
             Last log lines:\n{}",
            started.elapsed().as_secs_f64(),
            artifact(&text).unwrap_or_else(|| "(see the log)".into()),
            tail(&text, 40)
        );
    }
    Ok(Outcome {
        target: name.to_owned(),
        seconds,
        executions: stat(&text, "stat::number_of_executed_units:"),
        corpus: final_corpus(&text),
    })
}

/// The crash input libFuzzer saved, from its `Test unit written to PATH` line.
fn artifact(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.split_once("Test unit written to "))
        .map(|(_, path)| path.trim().to_owned())
}

/// A `stat::name: value` line of `-print_final_stats=1`.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The corpus size from libFuzzer's last status line (`… corp: 57/1234b …`).
fn final_corpus(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.split_once("corp: "))
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|n| n.trim().parse().ok())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One line per target: seconds, executions, executions per second, corpus size.
#[must_use]
pub fn summary(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "| fuzz target | seconds | executions | exec/s | corpus |\n|---|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let execs = o.executions.map_or("?".into(), |n| n.to_string());
        let rate = o
            .executions
            .map_or("?".into(), |n| (n / o.seconds.max(1)).to_string());
        let corpus = o.corpus.map_or("?".into(), |n| n.to_string());
        s.push_str(&format!(
            "| {} | {} | {execs} | {rate} | {corpus} |\n",
            o.target, o.seconds
        ));
    }
    s
}

/// Parses `[--seconds N] [TARGET]`.
///
/// # Errors
/// For an unknown flag, a bad number, or more than one target.
pub fn parse_args(args: &[String]) -> Result<(Option<u64>, Option<String>)> {
    let mut seconds = None;
    let mut target = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = it.next().context("--seconds needs a number")?;
                seconds =
                    Some(n.parse::<u64>().ok().filter(|n| *n > 0).with_context(|| {
                        format!("--seconds {n}: must be a positive whole number")
                    })?);
            }
            flag if flag.starts_with('-') => bail!("unknown option `{flag}`"),
            name if target.is_none() => target = Some(name.to_owned()),
            extra => bail!("one target at a time (got `{extra}` too)"),
        }
    }
    Ok((seconds, target))
}

/// `cargo xtask fuzz [--seconds N] [TARGET]`.
pub fn fuzz_command(repo: &Path, args: &[String]) -> Result<()> {
    let (seconds, target) = parse_args(args)?;
    let all = targets(repo)?;
    let names = match target {
        Some(t) if all.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target `{t}`; targets: {}", all.join(", ")),
        None => all,
    };
    let env = crate::bootstrap::tool_env(repo)?;
    fuzz(repo, &env, &names, seconds.unwrap_or(DEFAULT_SECONDS)).map(drop)
}

/// Where the committed corpus of `target` lives.
#[must_use]
pub fn corpus_dir(repo: &Path, target: &str) -> PathBuf {
    repo.join("fuzz/corpus").join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_committed_corpus_and_a_bin_entry() {
        let repo = crate::util::repo_root();
        let manifest = fs::read_to_string(repo.join("fuzz/Cargo.toml")).unwrap();
        for t in targets(&repo).unwrap() {
            let seeds = corpus_dir(&repo, &t);
            assert!(
                fs::read_dir(&seeds).is_ok_and(|mut d| d.next().is_some()),
                "{} is empty or missing",
                seeds.display()
            );
            assert!(
                manifest.contains(&format!("path = \"fuzz_targets/{t}.rs\"")),
                "fuzz/Cargo.toml has no [[bin]] for {t}"
            );
        }
    }

    #[test]
    fn the_test_budget_holds_for_any_number_of_targets() {
        assert_eq!(test_seconds(6), 20);
        assert!(test_seconds(8) * 8 <= TEST_BUDGET.as_secs());
        assert_eq!(test_seconds(1000), MIN_SECONDS_PER_TARGET);
    }

    #[test]
    fn arguments_are_seconds_and_one_target() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&[]).unwrap(), (None, None));
        assert_eq!(
            a(&["--seconds", "30", "key"]).unwrap(),
            (Some(30), Some("key".into()))
        );
        assert!(a(&["--seconds", "0"]).is_err());
        assert!(a(&["--seconds", "x"]).is_err());
        assert!(a(&["--fast"]).is_err());
        assert!(a(&["key", "route"]).is_err());
    }

    #[test]
    fn libfuzzer_statistics_are_read_from_its_log() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 3/120b exec/s: 0\n\
                   #5000\tDONE cov: 50 ft: 80 corp: 57/1234b lim: 4096 exec/s: 2500\n\
                   Done 5000 runs in 2 second(s)\n\
                   stat::number_of_executed_units: 5000\n\
                   stat::peak_rss_mb:              40\n\
                   ==1== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='fuzz/artifacts/key/'; Test unit written to fuzz/artifacts/key/crash-ab12\n";
        assert_eq!(stat(log, "stat::number_of_executed_units:"), Some(5000));
        assert_eq!(final_corpus(log), Some(57));
        assert_eq!(
            artifact(log).as_deref(),
            Some("fuzz/artifacts/key/crash-ab12")
        );
        assert_eq!(stat("", "stat::number_of_executed_units:"), None);
    }
}
