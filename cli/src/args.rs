//! The command line: nouns then verbs (`keyward keys list`), clap's derive API with doc comments
//! as the help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use keyward_common::RateLimit;

use crate::client::{CreditsOp, NamedRateLimit, Refill};

/// Manage Keyward API keys, roles, owners and usage from the terminal.
///
/// Connection: KEYWARD_URL, KEYWARD_EDGE_URL, KEYWARD_TOKEN and KEYWARD_WORKSPACE, or else the
/// running local stack's target/keyward/dev.json under the current directory.
///
/// Exit codes: 0 success, 1 the API refused (or could not be reached; `verify`: the key is not
/// valid), 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, propagate_version = true)]
pub struct Cli {
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to manage.
    #[command(subcommand)]
    pub command: Command,
}

/// The nouns.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, change, rotate, revoke and import API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Named sets of permissions that keys hold.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// The customers behind keys: status, shared limits and credits.
    #[command(subcommand)]
    Owners(OwnersCommand),
    /// Requests by outcome, per key or for billing.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Show the workspace's audit log, newest first.
    Audit(AuditArgs),
    /// Check a key at the edge; prints the verdict's code and exits 0 only when it is VALID.
    Verify(VerifyArgs),
}

/// `keyward keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create(CreateArgs),
    /// List keys, newest first.
    List(ListArgs),
    /// Show one key.
    Get {
        /// The key's id (`key_…`).
        id: String,
    },
    /// Change a key's settings (only the ones given).
    Update(UpdateArgs),
    /// Revoke a key: permanent and immediate.
    Revoke {
        /// The key's id.
        id: String,
        /// Do not ask for confirmation (required when standard input is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Give a key a new secret (printed once), keeping its id and settings.
    Rotate {
        /// The key's id.
        id: String,
        /// Seconds the old secret keeps working (0 to 604800).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u32>,
    },
    /// Import keys your product already issued, from a CSV file.
    ///
    /// Columns: `key` (the plaintext) or `hash` (its SHA-256 hex), `name`, and optionally
    /// `scopes`, `roles` (several values separated by `;`), `owner_id`, `expires_at` (RFC 3339).
    Import {
        /// The CSV file, with a header row.
        file: std::path::PathBuf,
    },
    /// Set, increase or decrease a key's credits.
    Credits(CreditsArgs),
}

/// `keyward keys create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name people recognise (1–128 characters).
    #[arg(long)]
    pub name: String,
    /// A permission the key holds (repeat for several); default: the deployment's.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// A workspace role the key holds (repeat for several).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// The customer behind the key, in your system.
    #[arg(long = "owner", value_name = "OWNER_ID")]
    pub owner: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u64>,
    /// A network the key may be used from, as a CIDR or an address (repeat for several).
    #[arg(long = "ip", value_name = "CIDR")]
    pub ips: Vec<String>,
    /// A rate limit, `LIMIT/PERIOD_S` or `NAME=LIMIT/PERIOD_S` (repeat for several, up to 5).
    #[arg(long = "rate-limit", value_name = "LIMIT/PERIOD_S", value_parser = parse_rate_limit)]
    pub rate_limits: Vec<RateLimitArg>,
    /// A starting credits balance.
    #[arg(long, value_name = "N")]
    pub credits: Option<u64>,
    /// Refill the credits: `AMOUNT/daily` or `AMOUNT/monthly[:DAY]` (needs `--credits`).
    #[arg(long, value_name = "AMOUNT/INTERVAL", value_parser = parse_refill, requires = "credits")]
    pub refill: Option<Refill>,
    /// Create the key switched off.
    #[arg(long)]
    pub disabled: bool,
}

/// `keyward keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only keys with this status.
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    /// Only this owner's keys.
    #[arg(long = "owner", value_name = "OWNER_ID")]
    pub owner: Option<String>,
    /// Only holders of this role.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Page size (1–100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: Option<u32>,
    /// Every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

/// `keyward keys update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The key's id.
    pub id: String,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the scopes (repeat for several).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Remove every scope.
    #[arg(long, conflicts_with = "scopes")]
    pub no_scopes: bool,
    /// Replace the roles (repeat for several).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Remove every role.
    #[arg(long, conflicts_with = "roles")]
    pub no_roles: bool,
    /// New owner.
    #[arg(long = "owner", value_name = "OWNER_ID")]
    pub owner: Option<String>,
    /// Remove the owner.
    #[arg(long, conflicts_with = "owner")]
    pub no_owner: bool,
    /// New expiry (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// Never expire.
    #[arg(long, conflicts_with = "expires_at")]
    pub no_expiry: bool,
    /// Replace the allowed networks (repeat for several).
    #[arg(long = "ip", value_name = "CIDR")]
    pub ips: Vec<String>,
    /// Allow any address.
    #[arg(long, conflicts_with = "ips")]
    pub any_ip: bool,
    /// Replace the rate limits, `LIMIT/PERIOD_S` or `NAME=LIMIT/PERIOD_S`.
    #[arg(long = "rate-limit", value_name = "LIMIT/PERIOD_S", value_parser = parse_rate_limit)]
    pub rate_limits: Vec<RateLimitArg>,
    /// Remove the rate limit.
    #[arg(long, conflicts_with = "rate_limits")]
    pub no_rate_limit: bool,
    /// Replace the credits with a balance of N.
    #[arg(long, value_name = "N")]
    pub credits: Option<u64>,
    /// With `--credits`: refill them, `AMOUNT/daily` or `AMOUNT/monthly[:DAY]`.
    #[arg(long, value_name = "AMOUNT/INTERVAL", value_parser = parse_refill, requires = "credits")]
    pub refill: Option<Refill>,
    /// Remove the credits (the key is no longer limited by them).
    #[arg(long, conflicts_with = "credits")]
    pub no_credits: bool,
    /// Switch the key on or off.
    #[arg(long, value_enum)]
    pub status: Option<Switch>,
    /// Do not send If-Match (overwrite changes made since this command read the key).
    #[arg(long)]
    pub force: bool,
}

/// `keyward keys credits` and `keyward owners credits`: `ID set|increment|decrement N`, or
/// one of `--set N`, `--increment N`, `--decrement N`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("op").required(true).multiple(false))]
pub struct CreditsArgs {
    /// The key's (or owner's) id.
    pub id: String,
    /// What to do: `set`, `increment` or `decrement` (then N).
    #[arg(value_enum, group = "op", requires = "value")]
    pub action: Option<CreditsAction>,
    /// By or to how much.
    #[arg(requires = "action")]
    pub value: Option<u64>,
    /// Set the balance to N.
    #[arg(long, value_name = "N", group = "op")]
    pub set: Option<u64>,
    /// Add N.
    #[arg(long, value_name = "N", group = "op")]
    pub increment: Option<u64>,
    /// Take N away.
    #[arg(long, value_name = "N", group = "op")]
    pub decrement: Option<u64>,
}

/// A credit operation given as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CreditsAction {
    /// The balance becomes N.
    Set,
    /// N more.
    Increment,
    /// N fewer (not below 0).
    Decrement,
}

impl CreditsArgs {
    /// The operation and its value.
    #[must_use]
    pub fn change(&self) -> (CreditsOp, u64) {
        let word = self.action.map(|a| match a {
            CreditsAction::Set => CreditsOp::Set,
            CreditsAction::Increment => CreditsOp::Increment,
            CreditsAction::Decrement => CreditsOp::Decrement,
        });
        match (word, self.set, self.increment, self.decrement) {
            (Some(op), ..) => (op, self.value.unwrap_or(0)),
            (_, Some(n), _, _) => (CreditsOp::Set, n),
            (_, _, Some(n), _) => (CreditsOp::Increment, n),
            (_, _, _, n) => (CreditsOp::Decrement, n.unwrap_or(0)),
        }
    }
}

/// Parses `AMOUNT/daily` or `AMOUNT/monthly[:DAY]`.
///
/// # Errors
/// A message saying what the accepted form is.
pub fn parse_refill(s: &str) -> Result<Refill, String> {
    const FORM: &str = "expected AMOUNT/daily or AMOUNT/monthly[:DAY], e.g. 1000/monthly:1";
    let (amount, rule) = s.split_once('/').ok_or_else(|| FORM.to_owned())?;
    let amount: u64 = amount
        .trim()
        .parse()
        .map_err(|_| format!("`{amount}` is not a whole number of credits"))?;
    let (interval, day) = match rule.split_once(':') {
        Some((i, d)) => (i, Some(d)),
        None => (rule, None),
    };
    let day = day
        .map(|d| match d.trim().parse::<u8>() {
            Ok(n) if (1..=31).contains(&n) => Ok(n),
            _ => Err(format!("the day `{d}` must be 1 to 31")),
        })
        .transpose()?;
    match (interval.trim(), day) {
        ("daily", None) => {}
        ("daily", Some(_)) => return Err("a daily refill takes no day".to_owned()),
        ("monthly", _) => {}
        _ => return Err(FORM.to_owned()),
    }
    Ok(Refill {
        amount,
        interval: interval.trim().to_owned(),
        day,
    })
}

/// A key status a list can filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    /// Verifies.
    Active,
    /// Switched off.
    Disabled,
    /// Revoked for good.
    Revoked,
}

/// The status a key can be switched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    Active,
    /// Off (reversible; revoke with `keys revoke`).
    Disabled,
}

/// One `--rate-limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitArg {
    /// Its name, when given.
    pub name: Option<String>,
    /// The allowance.
    pub limit: RateLimit,
}

/// Parses `LIMIT/PERIOD_S` or `NAME=LIMIT/PERIOD_S`.
///
/// # Errors
/// A message saying what the accepted form is.
pub fn parse_rate_limit(s: &str) -> Result<RateLimitArg, String> {
    let (name, rest) = match s.split_once('=') {
        Some((n, r)) if !n.is_empty() => (Some(n.to_owned()), r),
        Some(_) => return Err("the name before `=` is empty".to_owned()),
        None => (None, s),
    };
    let (limit, period) = rest
        .split_once('/')
        .ok_or_else(|| "expected LIMIT/PERIOD_S, e.g. 100/60".to_owned())?;
    let limit: u32 = limit
        .trim()
        .parse()
        .map_err(|_| format!("`{limit}` is not a whole number of requests"))?;
    let period_s: u32 = period
        .trim()
        .parse()
        .map_err(|_| format!("`{period}` is not a whole number of seconds"))?;
    if limit == 0 || period_s == 0 {
        return Err("LIMIT and PERIOD_S must be at least 1".to_owned());
    }
    Ok(RateLimitArg {
        name,
        limit: RateLimit { limit, period_s },
    })
}

/// How a list of `--rate-limit`s goes on the wire: one unnamed limit as `rate_limit` (the
/// shorthand every deployment accepts), otherwise as named `rate_limits` (`limit1`, … for the
/// unnamed ones).
#[must_use]
pub fn rate_limits_on_the_wire(args: &[RateLimitArg]) -> (Option<RateLimit>, Vec<NamedRateLimit>) {
    match args {
        [] => (None, Vec::new()),
        [RateLimitArg { name: None, limit }] => (Some(*limit), Vec::new()),
        many => (
            None,
            many.iter()
                .enumerate()
                .map(|(i, a)| NamedRateLimit {
                    name: a.name.clone().unwrap_or_else(|| format!("limit{}", i + 1)),
                    limit: a.limit.limit,
                    period_s: a.limit.period_s,
                })
                .collect(),
        ),
    }
}

/// `keyward roles …`.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// List the workspace's roles.
    List {
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
    },
    /// Show one role.
    Get {
        /// The role's name.
        name: String,
    },
    /// Create a role.
    Create {
        /// `[a-z0-9][a-z0-9._-]{0,63}`.
        name: String,
        /// A permission the role grants (repeat for several).
        #[arg(long = "permission", value_name = "PERMISSION", required = true)]
        permissions: Vec<String>,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a role's description or permissions; every holder's verdict follows.
    Update {
        /// The role's name.
        name: String,
        /// Replace the permissions (repeat for several).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a role no key holds.
    Delete {
        /// The role's name.
        name: String,
    },
    /// Create the recommended `administrator`, `manager` and `viewer` roles (existing ones are
    /// left as they are).
    Preset,
}

/// `keyward owners …`.
#[derive(Debug, Subcommand)]
pub enum OwnersCommand {
    /// List owners.
    List {
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
    },
    /// Show one owner, with its key count.
    Get {
        /// The owner's id.
        id: String,
    },
    /// Create or replace an owner's settings.
    Put {
        /// The owner's id.
        id: String,
        /// Switch all the owner's keys on or off.
        #[arg(long, value_enum)]
        status: Option<Switch>,
        /// A rate limit shared by the owner's keys (repeat for several).
        #[arg(long = "rate-limit", value_name = "LIMIT/PERIOD_S", value_parser = parse_rate_limit)]
        rate_limits: Vec<RateLimitArg>,
        /// Credits shared by the owner's keys.
        #[arg(long, value_name = "N")]
        credits: Option<u64>,
        /// Refill the credits: `AMOUNT/daily` or `AMOUNT/monthly[:DAY]` (needs `--credits`).
        #[arg(long, value_name = "AMOUNT/INTERVAL", value_parser = parse_refill, requires = "credits")]
        refill: Option<Refill>,
        /// Free-form metadata, a JSON object (`{"plan": "pro"}`).
        #[arg(long, value_name = "JSON")]
        meta: Option<String>,
    },
    /// Set, increase or decrease the credits the owner's keys share.
    Credits(CreditsArgs),
}

/// `keyward usage …`.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// One key's requests by outcome over time.
    Key {
        /// The key's id.
        id: String,
        #[command(flatten)]
        window: Window,
    },
    /// The workspace's usage for billing, per key or per owner.
    Report {
        #[command(flatten)]
        window: Window,
        /// One row per key or per owner.
        #[arg(long, value_enum)]
        group_by: Option<GroupBy>,
        /// Only the keys of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Print the API's CSV (instead of a table or `--json`).
        #[arg(long)]
        csv: bool,
    },
}

/// A usage window.
#[derive(Debug, Args)]
pub struct Window {
    /// Start, RFC 3339 or YYYY-MM-DD (UTC); default 30 days ago.
    #[arg(long)]
    pub from: Option<String>,
    /// End, exclusive; default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Bucket size.
    #[arg(long, value_enum)]
    pub granularity: Option<Granularity>,
}

/// Usage bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Granularity {
    /// One row per hour.
    Hour,
    /// One row per day.
    Day,
}

/// Usage report grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupBy {
    /// One row per key.
    Key,
    /// One row per owner.
    Owner,
}

/// `keyward audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Page size (1–100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: Option<u32>,
    /// Every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

/// `keyward verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The secret key to check.
    pub key: String,
    /// A permission query the key must satisfy, e.g. `sms.send AND (billing.read OR admin)`.
    #[arg(long, value_name = "QUERY")]
    pub permission: Option<String>,
    /// One permission the key must hold.
    #[arg(long)]
    pub scope: Option<String>,
    /// Refuse keys of other workspaces (NOT_FOUND).
    #[arg(long)]
    pub workspace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("keyward").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create_takes_repeated_flags_and_a_global_json() {
        let cli = parse(&[
            "keys",
            "create",
            "--name",
            "ci",
            "--scope",
            "read",
            "--scope",
            "write",
            "--role",
            "viewer",
            "--rate-limit",
            "100/60",
            "--disabled",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Keys(KeysCommand::Create(c)) = cli.command else {
            panic!("not a create")
        };
        assert_eq!(c.scopes, ["read", "write"]);
        assert_eq!(c.roles, ["viewer"]);
        assert!(c.disabled);
        assert_eq!(c.rate_limits[0].limit.limit, 100);
    }

    #[test]
    fn usage_errors_are_exit_code_2() {
        for args in [
            &["keys", "create"][..],
            &["keys", "list", "--limit", "0"],
            &["keys", "list", "--status", "gone"],
            &["keys", "credits", "key_x"],
            &["keys", "credits", "key_x", "--set", "1", "--increment", "2"],
            &["keys", "credits", "key_x", "set"],
            &["keys", "credits", "key_x", "add", "3"],
            &["keys", "credits", "key_x", "set", "3", "--increment", "2"],
            &["keys", "credits", "key_x", "set", "-1"],
            &["keys", "create", "--name", "n", "--refill", "5/daily"],
            &[
                "keys",
                "create",
                "--name",
                "n",
                "--credits",
                "5",
                "--refill",
                "5/weekly",
            ],
            &[
                "owners",
                "put",
                "o",
                "--credits",
                "5",
                "--refill",
                "5/monthly:32",
            ],
            &["keys", "update", "key_x", "--owner", "a", "--no-owner"],
            &["nope"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn rate_limits_parse_with_and_without_names() {
        assert_eq!(
            parse_rate_limit("burst=10/1").unwrap(),
            RateLimitArg {
                name: Some("burst".into()),
                limit: RateLimit {
                    limit: 10,
                    period_s: 1
                }
            }
        );
        for bad in ["10", "x/60", "10/y", "0/60", "=1/1", "10/0"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_unnamed_limit_is_the_shorthand_and_several_are_named() {
        let one = [parse_rate_limit("5/60").unwrap()];
        assert_eq!(rate_limits_on_the_wire(&one).0.map(|r| r.limit), Some(5));
        let two = [
            parse_rate_limit("5/1").unwrap(),
            parse_rate_limit("day=1000/86400").unwrap(),
        ];
        let (single, named) = rate_limits_on_the_wire(&two);
        assert!(single.is_none());
        let names: Vec<&str> = named.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["limit1", "day"]);
    }

    #[test]
    fn credits_take_exactly_one_operation() {
        let cli = parse(&["keys", "credits", "key_x", "--decrement", "3"]).unwrap();
        let Command::Keys(KeysCommand::Credits(c)) = cli.command else {
            panic!("not credits")
        };
        assert_eq!(c.change(), (CreditsOp::Decrement, 3));
        let cli = parse(&["owners", "credits", "cus/1", "increment", "10"]).unwrap();
        let Command::Owners(OwnersCommand::Credits(c)) = cli.command else {
            panic!("not owner credits")
        };
        assert_eq!(c.id, "cus/1");
        assert_eq!(c.change(), (CreditsOp::Increment, 10));
        let cli = parse(&["keys", "credits", "key_x", "set", "0"]).unwrap();
        let Command::Keys(KeysCommand::Credits(c)) = cli.command else {
            panic!("not credits")
        };
        assert_eq!(c.change(), (CreditsOp::Set, 0));
    }

    #[test]
    fn refills_parse_daily_and_monthly_with_a_day() {
        let daily = parse_refill("100/daily").unwrap();
        assert_eq!(
            (daily.amount, daily.interval.as_str(), daily.day),
            (100, "daily", None)
        );
        let monthly = parse_refill("5000/monthly:31").unwrap();
        assert_eq!(monthly.day, Some(31));
        assert_eq!(parse_refill("5/monthly").unwrap().day, None);
        for bad in [
            "100",
            "x/daily",
            "5/daily:3",
            "5/monthly:0",
            "5/monthly:32",
            "5/yearly",
        ] {
            assert!(parse_refill(bad).is_err(), "{bad}");
        }
    }
}
