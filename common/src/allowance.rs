//! The allowance of one key or owner — credits and every named rate limit — as its Durable
//! Object keeps it, and the leases it hands to edge isolates so a hot key does not pay a round
//! trip per request. Pure bookkeeping: the edge adapter stores [`Allowance`] and calls these.
//!
//! A lease is a block of units valid for the credits *and* every limit at once: granting it
//! spends the units in all of them, so no other isolate can admit them; the isolate spends them
//! locally until the lease expires, then returns what it did not use. A lease never holds more
//! than a [`SHARE`]-th of what remains (none when little does), never more than [`MAX_BLOCK`],
//! and expires within [`LEASE_TTL_MS`] and at the earliest window end, so its units always
//! belong to the windows they were taken from. When the object has too few free units but
//! leases are out, it answers [`Outcome::Wait`] rather than refusing: the units may come back.
//! So with `remaining = N`, exactly `N` units are admitted however many isolates race.

use serde::{Deserialize, Serialize};

use crate::credits::{CreditOp, CreditOpKind, MAX_CREDITS, Refill};
use crate::record::NamedRateLimit;

/// Longest life of a lease. Short, because units an isolate holds are unavailable to others
/// until it returns them, and a vanished isolate's lease is only reclaimed after it ends.
pub const LEASE_TTL_MS: u64 = 2_000;
/// How long after a lease's end its holder may still return it; after that the object counts
/// its units as spent (an isolate that vanished) and stops waiting for them.
pub const RETURN_GRACE_MS: u64 = 2_000;
/// When, after a lease ends, its holder's timer gives back what is left — unless a request
/// already gave it back with its next round trip (then the timer has nothing to send).
pub const RETURN_DELAY_MS: u64 = 500;
/// Largest block of units in one lease: a hot key makes about two object calls (the lease and
/// its return) per block, so ≤ 0.01 per request; and with the next block asked for when half
/// of this one is spent ([`Held::wants_top_up`]), 128 requests cover the round trip.
pub const MAX_BLOCK: u64 = 256;
/// A lease takes at most this fraction of what remains after the request's own cost, so
/// concurrent isolates each get a share and little remains stranded when the allowance is low.
pub const SHARE: u64 = 4;
/// No block for a lease that could live less than this (a window about to end).
pub const MIN_LEASE_MS: u64 = 200;
/// Longest a [`Outcome::Wait`] asks the isolate to sleep before asking again.
pub const MAX_WAIT_MS: u64 = 100;
/// The smallest block an isolate asks to follow early ([`Held::wants_top_up`]): a smaller one
/// means little remains, and asking before it runs out would only add round trips.
pub const MIN_TOP_UP_BLOCK: u64 = 16;

/// What the isolate knows about a target from its edge entry: its limits, and whether it has
/// credits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Every limit of the target (empty: none).
    #[serde(default)]
    pub limits: Vec<NamedRateLimit>,
    /// The entry says the target has credits: with no credit operation ever applied, the
    /// object holds none yet and admits nothing (fail closed) rather than everything.
    #[serde(default)]
    pub credited: bool,
}

impl Rules {
    /// Whether the target needs its object at all.
    #[must_use]
    pub fn is_limited(&self) -> bool {
        self.credited || !self.limits.is_empty()
    }
}

/// One limit's counter in its current fixed window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The limit's name.
    pub name: String,
    /// The period the window was counted for (a changed period restarts the count).
    pub period_s: u32,
    /// Unix seconds of the window's start.
    pub start: i64,
    /// Units spent (or leased) in it.
    pub used: u64,
}

/// The target's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Units neither spent nor leased. Negative when an operation lowered the balance below
    /// what is out on lease: the leased units returned unused pay that back first.
    pub free: i64,
    /// The refill rule.
    pub refill: Option<Refill>,
    /// When the credits were last set or refilled (Unix seconds): the refill time base.
    pub last_refill: i64,
}

/// A block of units an isolate holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique within the object.
    pub id: u64,
    /// Units granted.
    pub units: u64,
    /// Unix milliseconds after which the holder spends none of it.
    pub expires_ms: u64,
    /// Unix seconds when it was granted (which windows its units came from).
    pub granted_s: i64,
}

/// Units an isolate gives back: the unused part of lease `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseReturn {
    /// The lease.
    pub id: u64,
    /// Units not spent.
    pub unused: u64,
}

/// Units spent at `at_s` that are given back (a request the owner refused after its key had
/// admitted it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    /// Units.
    pub units: u64,
    /// When they were spent (Unix seconds): a window that has ended since gets nothing back.
    pub at_s: i64,
}

/// Whose limit a [`LimitState`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitScope {
    /// The key's own.
    #[default]
    Key,
    /// Shared by every key of the owner.
    Owner,
}

/// One limit's state after a request, as the verify API reports it in `ratelimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    /// The limit's name.
    pub name: String,
    /// `key` or `owner`.
    #[serde(default)]
    pub scope: LimitScope,
    /// Units per window.
    pub limit: u32,
    /// Units left in the current window.
    pub remaining: u32,
    /// Unix seconds when the window ends.
    pub reset: i64,
}

/// Credits after a request, as the verify API reports them in `credits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditState {
    /// Units left.
    pub remaining: u64,
    /// Unix seconds of the next refill, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill_at: Option<i64>,
    /// `key` or `owner`.
    #[serde(default)]
    pub scope: LimitScope,
}

/// What the object decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The cost was spent.
    Admitted,
    /// A limit has fewer units left than the cost; nothing was spent.
    RateLimited,
    /// The credits are fewer than the cost; nothing was spent.
    UsageExceeded,
    /// Too few free units now, but leases are out whose units may come back: ask again after
    /// `retry_ms`. `refusal` is the answer if they do not.
    Wait {
        /// Milliseconds to wait.
        retry_ms: u64,
        /// What the refusal would be.
        refusal: Refusal,
    },
}

/// Why a request would be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// A limit.
    RateLimited,
    /// The credits.
    UsageExceeded,
}

/// The object's answer to an isolate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The decision.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// A block of further units for the isolate, when the request was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Every limit's state, units on lease counted as used.
    pub limits: Vec<LimitState>,
    /// The credits, when the target has them (units on lease counted as spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditState>,
    /// The last credit operation applied.
    pub seq: u64,
}

impl Answer {
    /// An admission with no state to report, granting `lease` if any (for tests of holders).
    #[must_use]
    pub fn admitted(lease: Option<Lease>) -> Self {
        Self {
            outcome: Outcome::Admitted,
            lease,
            limits: Vec::new(),
            credits: None,
            seq: 0,
        }
    }
}

/// What an isolate asks its target's object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum AllowanceRequest {
    /// Spend `cost` (and lease a block when `lease`), after taking back `returns` and `refunds`.
    Acquire {
        /// The target's rules.
        rules: Rules,
        /// Units the request costs (0–1000).
        cost: u32,
        /// Whether a block may be leased with it.
        #[serde(default)]
        lease: bool,
        /// Leases given back first.
        #[serde(default)]
        returns: Vec<LeaseReturn>,
    },
    /// Only report the state (for a request refused before the allowance).
    Peek {
        /// The target's rules.
        rules: Rules,
    },
    /// Give back unused leases and refunds.
    Return {
        /// Leases.
        #[serde(default)]
        returns: Vec<LeaseReturn>,
        /// Refunds.
        #[serde(default)]
        refunds: Vec<Refund>,
    },
    /// A credit operation from the control plane (via sync).
    Credit {
        /// The operation.
        op: CreditOp,
    },
}

/// The state one Durable Object keeps for its key or owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// The last credit operation applied (0: none).
    #[serde(default)]
    pub seq: u64,
    /// The credits; `None` for none (unlimited, unless the rules say credited and no operation
    /// was ever applied).
    #[serde(default)]
    pub credits: Option<Balance>,
    /// One per limit of the last rules seen.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Leases out.
    #[serde(default)]
    pub leases: Vec<Lease>,
    /// The next lease id.
    #[serde(default)]
    pub next_lease: u64,
}

fn window_of(period_s: u32, now_s: i64) -> (i64, i64) {
    let period = i64::from(period_s.max(1));
    let start = now_s - now_s.rem_euclid(period);
    (start, start + period)
}

fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

fn to_i64(units: u64) -> i64 {
    i64::try_from(units).unwrap_or(i64::MAX)
}

impl Allowance {
    /// Units out on lease.
    #[must_use]
    pub fn leased(&self) -> u64 {
        self.leases.iter().map(|l| l.units).sum()
    }

    /// Brings the state to `now_ms` under `rules`: leases past their return grace are counted
    /// as spent, a due refill sets the credits, and each limit's window is the current one.
    pub fn settle(&mut self, rules: &Rules, now_ms: u64) {
        self.settle_credits(now_ms);
        let now_s = secs(now_ms);
        let mut windows = Vec::with_capacity(rules.limits.len());
        for limit in &rules.limits {
            let (start, _) = window_of(limit.period_s, now_s);
            let used = self
                .windows
                .iter()
                .find(|w| w.name == limit.name && w.period_s == limit.period_s && w.start == start)
                .map_or(0, |w| w.used);
            windows.push(Window {
                name: limit.name.clone(),
                period_s: limit.period_s,
                start,
                used,
            });
        }
        self.windows = windows;
    }

    /// Brings the credits to `now_ms`: leases past their return grace count as spent, and a due
    /// refill sets the credits (call it before a credit operation, so a refill that fell
    /// before the operation does not overwrite it).
    pub fn settle_credits(&mut self, now_ms: u64) {
        self.leases
            .retain(|l| l.expires_ms.saturating_add(RETURN_GRACE_MS) > now_ms);
        self.floor();
        let now_s = secs(now_ms);
        let leased = to_i64(self.leased());
        if let Some(b) = &mut self.credits
            && let Some(refill) = b.refill
            && refill.due(b.last_refill, now_s)
        {
            // Units out on lease are spent from the new period when they are used.
            b.free = to_i64(refill.amount) - leased;
            b.last_refill = now_s;
        }
    }

    /// Whether credits apply, and how many are free: `None` for unlimited.
    fn free_credits(&self, rules: &Rules) -> Option<i64> {
        match &self.credits {
            Some(b) => Some(b.free),
            // Credited, but no operation has reached the object yet: nothing to spend.
            None if rules.credited && self.seq == 0 => Some(0),
            None => None,
        }
    }

    /// Takes back unused lease units (and refunds): each unit goes back to the credits and to
    /// every window it was taken from that is still current. A lease no longer out (already
    /// returned, or past its grace) gives nothing back.
    pub fn give_back(&mut self, returns: &[LeaseReturn], refunds: &[Refund]) {
        let mut back: Vec<Refund> = Vec::with_capacity(returns.len() + refunds.len());
        for r in returns {
            if let Some(i) = self.leases.iter().position(|l| l.id == r.id) {
                let lease = self.leases.swap_remove(i);
                back.push(Refund {
                    units: r.unused.min(lease.units),
                    at_s: lease.granted_s,
                });
            }
        }
        back.extend_from_slice(refunds);
        for r in back.into_iter().filter(|r| r.units > 0) {
            if let Some(b) = &mut self.credits {
                b.free = b
                    .free
                    .saturating_add(to_i64(r.units))
                    .min(to_i64(MAX_CREDITS));
            }
            for w in &mut self.windows {
                if window_of(w.period_s, r.at_s).0 == w.start {
                    w.used = w.used.saturating_sub(r.units);
                }
            }
        }
        self.floor();
    }

    /// A negative balance (a `set` below what was out on lease) never exceeds what is still
    /// out: once every lease is back the balance is at least 0, so a later increment is never
    /// swallowed by an old debt.
    fn floor(&mut self) {
        let leased = to_i64(self.leased());
        if let Some(b) = &mut self.credits {
            b.free = b.free.max(-leased);
        }
    }

    /// Spends `cost` units if every limit and the credits have them, and then, with `lease`,
    /// leases a block. Call [`Allowance::settle`] first.
    pub fn acquire(&mut self, rules: &Rules, cost: u32, lease: bool, now_ms: u64) -> Answer {
        let cost = u64::from(cost);
        let now_s = secs(now_ms);
        // Limits first: a request a limit refuses spends no credits.
        let limit_room = rules
            .limits
            .iter()
            .zip(&self.windows)
            .map(|(l, w)| u64::from(l.limit).saturating_sub(w.used))
            .min();
        let credit_room = self.free_credits(rules);
        let refusal = if limit_room.is_some_and(|r| r < cost) {
            Some(Refusal::RateLimited)
        } else if credit_room.is_some_and(|c| c < to_i64(cost)) {
            Some(Refusal::UsageExceeded)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let outcome = match self.leases.iter().map(|l| l.expires_ms).min() {
                Some(first_end) => Outcome::Wait {
                    retry_ms: first_end
                        .saturating_add(RETURN_GRACE_MS)
                        .saturating_sub(now_ms)
                        .clamp(1, MAX_WAIT_MS),
                    refusal,
                },
                None => match refusal {
                    Refusal::RateLimited => Outcome::RateLimited,
                    Refusal::UsageExceeded => Outcome::UsageExceeded,
                },
            };
            return self.answer(rules, outcome, None, now_s);
        }
        let room_after = [
            limit_room.map(|r| r - cost),
            credit_room.map(|c| u64::try_from(c - to_i64(cost)).unwrap_or(0)),
        ]
        .into_iter()
        .flatten()
        .min();
        let window_end_ms = rules
            .limits
            .iter()
            .map(|l| u64::try_from(window_of(l.period_s, now_s).1).unwrap_or(0) * 1000)
            .min()
            .unwrap_or(u64::MAX);
        let expires_ms = now_ms.saturating_add(LEASE_TTL_MS).min(window_end_ms);
        let block = match room_after {
            // Unlimited: nothing to lease (the isolate does not ask its object).
            None => 0,
            Some(_) if !lease || expires_ms < now_ms.saturating_add(MIN_LEASE_MS) => 0,
            Some(room) => (room / SHARE).min(MAX_BLOCK),
        };
        self.spend(cost + block);
        let granted = (block > 0).then(|| {
            let l = Lease {
                id: self.next_lease,
                units: block,
                expires_ms,
                granted_s: now_s,
            };
            self.next_lease += 1;
            self.leases.push(l);
            l
        });
        self.answer(rules, Outcome::Admitted, granted, now_s)
    }

    fn spend(&mut self, units: u64) {
        if let Some(b) = &mut self.credits {
            b.free -= to_i64(units);
        }
        for w in &mut self.windows {
            w.used = w.used.saturating_add(units);
        }
    }

    /// The state without spending. Call [`Allowance::settle`] first.
    #[must_use]
    pub fn peek(&self, rules: &Rules, now_ms: u64) -> Answer {
        self.answer(rules, Outcome::Admitted, None, secs(now_ms))
    }

    fn answer(&self, rules: &Rules, outcome: Outcome, lease: Option<Lease>, now_s: i64) -> Answer {
        let limits = rules
            .limits
            .iter()
            .zip(&self.windows)
            .map(|(l, w)| LimitState {
                name: l.name.clone(),
                scope: LimitScope::Key,
                limit: l.limit,
                remaining: u32::try_from(u64::from(l.limit).saturating_sub(w.used))
                    .unwrap_or(u32::MAX),
                reset: window_of(l.period_s, now_s).1,
            })
            .collect();
        let credits = self.free_credits(rules).map(|free| CreditState {
            remaining: u64::try_from(free).unwrap_or(0),
            refill_at: self
                .credits
                .and_then(|b| Some(b.refill?.next_after(b.last_refill))),
            scope: LimitScope::Key,
        });
        Answer {
            outcome,
            lease,
            limits,
            credits,
            seq: self.seq,
        }
    }

    /// Applies a credit operation once: `false` (stale) when its `seq` was applied already.
    /// A `set` (and a refill) makes the *total* — free plus what is out on lease — the value,
    /// so units leased before it and spent after it count against it.
    pub fn apply_op(&mut self, op: &CreditOp) -> bool {
        if op.seq <= self.seq {
            return false;
        }
        self.seq = op.seq;
        let leased = to_i64(self.leased());
        if op.op == CreditOpKind::Remove {
            self.credits = None;
            return true;
        }
        let b = self.credits.get_or_insert(Balance {
            free: -leased,
            refill: None,
            last_refill: op.at,
        });
        b.refill = op.refill;
        let value = to_i64(op.value.min(MAX_CREDITS));
        match op.op {
            CreditOpKind::Set => {
                b.free = value - leased;
                b.last_refill = op.at;
            }
            CreditOpKind::Increment => {
                b.free = b.free.saturating_add(value).min(to_i64(MAX_CREDITS));
            }
            // Floored so that the total, once every lease is back, is at least 0.
            CreditOpKind::Decrement => b.free = (b.free - value).max(-leased),
            CreditOpKind::Configure | CreditOpKind::Remove => {}
        }
        true
    }

    /// The balance to report to the control plane: `(remaining, seq)`, units on lease counted
    /// as spent.
    #[must_use]
    pub fn balance(&self) -> Option<(u64, u64)> {
        self.credits
            .map(|b| (u64::try_from(b.free).unwrap_or(0), self.seq))
    }
}

/// The leases an isolate holds for one target, and what it last heard of the target's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    leases: Vec<Lease>,
    /// Unused units of each lease (same order).
    left: Vec<u64>,
    /// The state at the last answer (units on lease counted as used).
    pub limits: Vec<LimitState>,
    /// The credits at the last answer.
    pub credits: Option<CreditState>,
}

impl Held {
    /// Records an answer's state and lease.
    pub fn learn(&mut self, answer: &Answer) {
        self.limits.clone_from(&answer.limits);
        self.credits = answer.credits;
        if let Some(l) = answer.lease {
            self.leases.push(l);
            self.left.push(l.units);
        }
    }

    /// The state as a client sees it: the last answer's, plus the units this isolate still
    /// holds (they are this isolate's to admit).
    #[must_use]
    pub fn view(&self, now_ms: u64) -> (Vec<LimitState>, Option<CreditState>) {
        let held = self.units(now_ms);
        let limits = self
            .limits
            .iter()
            .map(|l| LimitState {
                remaining: u32::try_from(u64::from(l.remaining) + held)
                    .unwrap_or(u32::MAX)
                    .min(l.limit),
                ..l.clone()
            })
            .collect();
        let credits = self.credits.map(|c| CreditState {
            remaining: c.remaining.saturating_add(held),
            ..c
        });
        (limits, credits)
    }

    /// Whether to ask the object for the next block now, in the background, while this one
    /// still admits requests: the isolate holds at most half of its latest block, and that block
    /// was at least [`MIN_TOP_UP_BLOCK`]. So a hot key's next lease lands before the current one
    /// runs out, and no request waits for the round trip; a key with little left asks only when
    /// it must.
    #[must_use]
    pub fn wants_top_up(&self, now_ms: u64) -> bool {
        self.leases.iter().max_by_key(|l| l.id).is_some_and(|last| {
            last.units >= MIN_TOP_UP_BLOCK && self.units(now_ms).saturating_mul(2) <= last.units
        })
    }

    /// Whether an answer was ever learnt.
    #[must_use]
    pub fn knows(&self) -> bool {
        !self.limits.is_empty() || self.credits.is_some()
    }

    /// Units this isolate holds, unexpired, at `now_ms`.
    #[must_use]
    pub fn units(&self, now_ms: u64) -> u64 {
        self.leases
            .iter()
            .zip(&self.left)
            .filter(|(l, _)| l.expires_ms > now_ms)
            .map(|(_, n)| n)
            .sum()
    }

    /// Spends `cost` from one unexpired lease that has it: `true` when it did (no round trip).
    pub fn spend(&mut self, cost: u32, now_ms: u64) -> bool {
        let cost = u64::from(cost);
        let found = self
            .leases
            .iter()
            .zip(&self.left)
            .position(|(l, n)| l.expires_ms > now_ms && *n >= cost);
        match found {
            Some(i) => {
                self.left[i] -= cost;
                true
            }
            None => false,
        }
    }

    /// Puts `units` back into an unexpired lease (a refund of a local spend): `false` when no
    /// lease can take them (the caller refunds the object instead).
    pub fn refund(&mut self, units: u32, now_ms: u64) -> bool {
        let units64 = u64::from(units);
        // Only into a lease with room: a lease gives back at most what it was granted.
        match self
            .leases
            .iter()
            .zip(&self.left)
            .position(|(l, n)| l.expires_ms > now_ms && n + units64 <= l.units)
        {
            Some(i) => {
                self.left[i] += units64;
                true
            }
            None => false,
        }
    }

    /// Gives up every lease (to return them with the next request to the object).
    pub fn take_all(&mut self) -> Vec<LeaseReturn> {
        let left = std::mem::take(&mut self.left);
        self.leases
            .drain(..)
            .zip(left)
            .map(|(l, unused)| LeaseReturn { id: l.id, unused })
            .collect()
    }

    /// Gives up the leases that ended by `now_ms` (their holder's timer fired).
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<LeaseReturn> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.leases.len() {
            if self.leases[i].expires_ms <= now_ms {
                let l = self.leases.swap_remove(i);
                let unused = self.left.swap_remove(i);
                out.push(LeaseReturn { id: l.id, unused });
            } else {
                i += 1;
            }
        }
        out
    }

    /// Whether no lease is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod top_up_tests {
    use super::*;

    #[test]
    fn a_large_block_is_followed_early_once_half_spent_and_a_small_one_never() {
        let now = 1_000;
        let mut held = Held::default();
        assert!(!held.wants_top_up(now));
        held.learn(&Answer::admitted(Some(Lease {
            id: 1,
            units: 64,
            expires_ms: now + LEASE_TTL_MS,
            granted_s: 1,
        })));
        for _ in 0..31 {
            assert!(held.spend(1, now));
        }
        assert!(!held.wants_top_up(now), "33 of 64 left");
        assert!(held.spend(1, now));
        assert!(held.wants_top_up(now), "32 of 64 left");
        // The next block landed: nothing more to ask for until it is half spent too.
        held.learn(&Answer::admitted(Some(Lease {
            id: 2,
            units: 64,
            expires_ms: now + LEASE_TTL_MS,
            granted_s: 1,
        })));
        assert!(!held.wants_top_up(now));

        let mut small = Held::default();
        small.learn(&Answer::admitted(Some(Lease {
            id: 7,
            units: MIN_TOP_UP_BLOCK - 1,
            expires_ms: now + LEASE_TTL_MS,
            granted_s: 1,
        })));
        for _ in 0..MIN_TOP_UP_BLOCK - 1 {
            assert!(small.spend(1, now));
        }
        assert!(!small.wants_top_up(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credits::{CreditTarget, Interval};
    use proptest::prelude::*;

    const T0: u64 = 1_800_000_000_000; // a whole hour, in ms

    fn limit(name: &str, limit: u32, period_s: u32) -> NamedRateLimit {
        NamedRateLimit {
            name: name.into(),
            limit,
            period_s,
        }
    }

    fn credited() -> Rules {
        Rules {
            limits: vec![],
            credited: true,
        }
    }

    fn op(seq: u64, kind: CreditOpKind, value: u64) -> CreditOp {
        CreditOp {
            target: CreditTarget::Owner {
                workspace: "acme".into(),
                owner_id: "o".into(),
            },
            seq,
            op: kind,
            value,
            refill: None,
            at: secs(T0),
        }
    }

    fn with_credits(n: u64) -> Allowance {
        let mut a = Allowance::default();
        assert!(a.apply_op(&op(1, CreditOpKind::Set, n)));
        a
    }

    fn acquire(a: &mut Allowance, rules: &Rules, cost: u32, lease: bool, now: u64) -> Answer {
        a.settle(rules, now);
        a.acquire(rules, cost, lease, now)
    }

    #[test]
    fn a_credited_target_with_no_operation_yet_admits_nothing() {
        let mut a = Allowance::default();
        let ans = acquire(&mut a, &credited(), 1, true, T0);
        assert_eq!(ans.outcome, Outcome::UsageExceeded);
        assert_eq!(ans.credits.unwrap().remaining, 0);
    }

    #[test]
    fn a_removed_credit_rule_is_unlimited_and_leases_nothing() {
        let mut a = with_credits(0);
        assert!(a.apply_op(&op(2, CreditOpKind::Remove, 0)));
        let ans = acquire(&mut a, &credited(), 5, true, T0);
        assert_eq!(ans.outcome, Outcome::Admitted);
        assert_eq!((ans.lease, ans.credits), (None, None));
    }

    #[test]
    fn an_operation_applies_once_and_a_replay_is_stale() {
        let mut a = with_credits(10);
        assert!(!a.apply_op(&op(1, CreditOpKind::Set, 99)));
        assert!(a.apply_op(&op(2, CreditOpKind::Increment, 5)));
        assert!(!a.apply_op(&op(2, CreditOpKind::Increment, 5)));
        assert_eq!(a.balance(), Some((15, 2)));
        assert!(a.apply_op(&op(3, CreditOpKind::Decrement, 100)));
        assert_eq!(a.balance(), Some((0, 3)));
    }

    #[test]
    fn a_lease_is_a_share_of_what_remains_and_none_when_little_does() {
        let mut a = with_credits(10_000);
        let ans = acquire(&mut a, &credited(), 1, true, T0);
        assert_eq!(ans.lease.unwrap().units, MAX_BLOCK);
        let mut a = with_credits(41);
        let ans = acquire(&mut a, &credited(), 1, true, T0);
        assert_eq!(ans.lease.unwrap().units, 10, "a quarter of the 40 left");
        assert_eq!(ans.credits.unwrap().remaining, 30);
        let mut a = with_credits(4);
        let ans = acquire(&mut a, &credited(), 1, true, T0);
        assert_eq!(ans.lease, None, "3 left: no block");
    }

    #[test]
    fn a_lease_ends_at_the_earliest_window_end_and_none_is_granted_just_before_it() {
        let rules = Rules {
            limits: vec![limit("burst", 1000, 1), limit("day", 100_000, 86_400)],
            credited: false,
        };
        let mut a = Allowance::default();
        let ans = acquire(&mut a, &rules, 1, true, T0 + 500);
        assert_eq!(ans.lease.unwrap().expires_ms, T0 + 1000);
        let ans = acquire(&mut a, &rules, 1, true, T0 + 1900);
        assert_eq!(ans.lease, None);
        assert_eq!(ans.limits.len(), 2);
    }

    #[test]
    fn a_refused_request_spends_nothing_and_a_limit_is_checked_before_credits() {
        let rules = Rules {
            limits: vec![limit("minute", 2, 60)],
            credited: true,
        };
        let mut a = with_credits(10);
        for _ in 0..2 {
            assert_eq!(
                acquire(&mut a, &rules, 1, false, T0).outcome,
                Outcome::Admitted
            );
        }
        let ans = acquire(&mut a, &rules, 1, false, T0);
        assert_eq!(ans.outcome, Outcome::RateLimited);
        assert_eq!(
            ans.credits.unwrap().remaining,
            8,
            "the limit refused: no credit spent"
        );
        let ans = acquire(&mut a, &rules, 1, false, T0 + 60_000);
        assert_eq!(ans.outcome, Outcome::Admitted, "a new window");
        let ans = acquire(&mut a, &rules, 8, false, T0 + 60_000);
        assert_eq!(
            ans.outcome,
            Outcome::RateLimited,
            "8 > the 1 left in the window"
        );
        let mut b = with_credits(1);
        let ans = acquire(&mut b, &rules, 2, false, T0);
        assert_eq!(ans.outcome, Outcome::UsageExceeded);
    }

    #[test]
    fn with_leases_out_a_short_object_asks_to_wait_then_refuses_once_they_are_reclaimed() {
        let mut a = with_credits(9);
        let first = acquire(&mut a, &credited(), 1, true, T0);
        let lease = first.lease.unwrap();
        assert_eq!(lease.units, 2);
        acquire(&mut a, &credited(), 6, false, T0);
        match acquire(&mut a, &credited(), 1, false, T0).outcome {
            Outcome::Wait { refusal, .. } => assert_eq!(refusal, Refusal::UsageExceeded),
            other => panic!("{other:?}"),
        }
        // The holder returns one unused unit: it can be spent again.
        a.give_back(
            &[LeaseReturn {
                id: lease.id,
                unused: 1,
            }],
            &[],
        );
        assert_eq!(
            acquire(&mut a, &credited(), 1, false, T0).outcome,
            Outcome::Admitted
        );
        // A lease never returned is counted as spent after its grace.
        let mut b = with_credits(20);
        assert_eq!(
            acquire(&mut b, &credited(), 7, true, T0)
                .lease
                .unwrap()
                .units,
            3
        );
        acquire(&mut b, &credited(), 10, false, T0);
        let later = T0 + LEASE_TTL_MS + RETURN_GRACE_MS;
        assert_eq!(
            acquire(&mut b, &credited(), 1, false, later).outcome,
            Outcome::UsageExceeded
        );
    }

    #[test]
    fn a_refill_sets_the_credits_on_its_day_and_reports_the_next_one() {
        let daily = Refill {
            amount: 5,
            interval: Interval::Daily,
            day: None,
        };
        let mut a = Allowance::default();
        let mut set = op(1, CreditOpKind::Set, 1);
        set.refill = Some(daily);
        a.apply_op(&set);
        assert_eq!(
            acquire(&mut a, &credited(), 1, false, T0).outcome,
            Outcome::Admitted
        );
        let ans = acquire(&mut a, &credited(), 1, false, T0);
        assert_eq!(ans.outcome, Outcome::UsageExceeded);
        let midnight = u64::try_from(daily.next_after(secs(T0))).unwrap() * 1000;
        assert_eq!(ans.credits.unwrap().refill_at, Some(secs(midnight)));
        let ans = acquire(&mut a, &credited(), 1, false, midnight);
        assert_eq!(ans.outcome, Outcome::Admitted);
        assert_eq!(ans.credits.unwrap().remaining, 4);
    }

    #[test]
    fn a_refund_goes_back_to_the_credits_and_to_windows_still_current() {
        let rules = Rules {
            limits: vec![limit("minute", 5, 60)],
            credited: true,
        };
        let mut a = with_credits(10);
        acquire(&mut a, &rules, 3, false, T0);
        a.give_back(
            &[],
            &[Refund {
                units: 3,
                at_s: secs(T0),
            }],
        );
        let ans = a.peek(&rules, T0);
        assert_eq!(
            (ans.limits[0].remaining, ans.credits.unwrap().remaining),
            (5, 10)
        );
        acquire(&mut a, &rules, 3, false, T0);
        a.settle(&rules, T0 + 60_000);
        a.give_back(
            &[],
            &[Refund {
                units: 3,
                at_s: secs(T0),
            }],
        );
        let ans = a.peek(&rules, T0 + 60_000);
        assert_eq!(
            (ans.limits[0].remaining, ans.credits.unwrap().remaining),
            (5, 10)
        );
    }

    #[test]
    fn a_set_below_what_is_on_lease_is_paid_back_by_returns_and_never_swallows_an_increment() {
        let mut a = with_credits(100);
        let lease = acquire(&mut a, &credited(), 1, true, T0).lease.unwrap();
        assert_eq!(lease.units, 24);
        a.apply_op(&op(2, CreditOpKind::Set, 10));
        assert_eq!(a.balance().unwrap().0, 0, "10 - 24 on lease");
        a.give_back(
            &[LeaseReturn {
                id: lease.id,
                unused: 24,
            }],
            &[],
        );
        assert_eq!(a.balance().unwrap().0, 10);
        let lease = acquire(&mut a, &credited(), 1, true, T0).lease.unwrap();
        a.apply_op(&op(3, CreditOpKind::Set, 0));
        a.give_back(
            &[LeaseReturn {
                id: lease.id,
                unused: 0,
            }],
            &[],
        );
        a.apply_op(&op(4, CreditOpKind::Increment, 5));
        assert_eq!(a.balance().unwrap().0, 5);
    }

    #[test]
    fn the_wire_forms_round_trip() {
        let mut a = with_credits(100);
        let ans = acquire(&mut a, &credited(), 1, true, T0);
        let json = serde_json::to_string(&ans).unwrap();
        assert!(json.contains(r#""outcome":"admitted""#), "{json}");
        assert_eq!(serde_json::from_str::<Answer>(&json).unwrap(), ans);
        let wait = Answer {
            outcome: Outcome::Wait {
                retry_ms: 5,
                refusal: Refusal::RateLimited,
            },
            ..ans
        };
        let json = serde_json::to_string(&wait).unwrap();
        assert_eq!(serde_json::from_str::<Answer>(&json).unwrap(), wait);
        let req = AllowanceRequest::Acquire {
            rules: credited(),
            cost: 3,
            lease: true,
            returns: vec![LeaseReturn { id: 1, unused: 2 }],
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            serde_json::from_str::<AllowanceRequest>(&json).unwrap(),
            req
        );
    }

    #[test]
    fn an_isolate_spends_its_lease_locally_until_it_ends_and_gives_back_the_rest() {
        // 257 credits: the request's 1, then a quarter of the 256 left on lease.
        let mut a = with_credits(257);
        let ans = acquire(&mut a, &credited(), 1, true, T0);
        let mut held = Held::default();
        held.learn(&ans);
        assert_eq!(held.units(T0), 64);
        assert!(held.spend(60, T0));
        assert!(!held.spend(5, T0), "4 left");
        let (_, credits) = held.view(T0);
        assert_eq!(
            credits.unwrap().remaining,
            192 + 4,
            "what the object has plus the 4 held"
        );
        assert!(held.refund(3, T0));
        assert!(
            !held.refund(60, T0),
            "never more than the lease was granted"
        );
        let end = ans.lease.unwrap().expires_ms;
        assert!(!held.spend(1, end), "an ended lease spends nothing");
        let back = held.take_expired(end);
        assert_eq!(back, vec![LeaseReturn { id: 0, unused: 7 }]);
        a.give_back(&back, &[]);
        assert_eq!(a.balance(), Some((199, 1)));
        assert!(held.is_empty());
    }

    /// One step of a race between isolates sharing one object.
    #[derive(Debug, Clone)]
    enum Step {
        /// A client request of `cost` at isolate `i`.
        Request(usize, u32),
        /// The object's oldest answer in flight to isolate `i` arrives.
        Deliver(usize),
        /// The control plane adds credits.
        Increment(u64),
        /// Time passes; isolates' timers return the leases that end meanwhile.
        Advance(u64),
    }

    fn step(isolates: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..isolates, 0..4u32).prop_map(|(i, c)| Step::Request(i, c)),
            6 => (0..isolates).prop_map(Step::Deliver),
            1 => (0..20u64).prop_map(Step::Increment),
            2 => (0..1_500u64).prop_map(Step::Advance),
        ]
    }

    struct Race {
        object: Allowance,
        rules: Rules,
        now: u64,
        held: Vec<Held>,
        in_flight: Vec<std::collections::VecDeque<(u32, Answer)>>,
        admitted: u64,
        seq: u64,
        incremented: u64,
    }

    impl Race {
        fn new(isolates: usize, rules: Rules, credits: Option<u64>) -> Self {
            let mut object = Allowance::default();
            if let Some(n) = credits {
                object.apply_op(&op(1, CreditOpKind::Set, n));
            }
            Self {
                object,
                rules,
                now: T0,
                held: vec![Held::default(); isolates],
                in_flight: vec![std::collections::VecDeque::new(); isolates],
                admitted: 0,
                seq: 1,
                incremented: 0,
            }
        }

        /// An isolate's request: from its lease, else a round trip (answered later). Returns
        /// whether it was decided locally.
        fn request(&mut self, i: usize, cost: u32) -> bool {
            if self.held[i].spend(cost, self.now) {
                self.admitted += u64::from(cost);
                return true;
            }
            let returns = self.held[i].take_all();
            self.object.settle(&self.rules, self.now);
            self.object.give_back(&returns, &[]);
            let ans = self.object.acquire(&self.rules, cost, true, self.now);
            self.in_flight[i].push_back((cost, ans));
            false
        }

        fn deliver(&mut self, i: usize) -> Option<Outcome> {
            let (cost, ans) = self.in_flight[i].pop_front()?;
            if ans.outcome == Outcome::Admitted {
                self.admitted += u64::from(cost);
            }
            self.held[i].learn(&ans);
            Some(ans.outcome)
        }

        fn deliver_all(&mut self) {
            for i in 0..self.held.len() {
                while self.deliver(i).is_some() {}
            }
        }

        fn advance(&mut self, ms: u64) {
            // Answers are in flight for far less than a lease lives.
            self.deliver_all();
            // Each lease comes back when it ends, before its grace does.
            for i in 0..self.held.len() {
                let back = self.held[i].take_expired(self.now + ms);
                self.object.give_back(&back, &[]);
            }
            self.now += ms;
        }

        /// Clients keep asking, one unit at a time, until the object refuses for good.
        fn drain(&mut self) {
            self.deliver_all();
            for _ in 0..10_000 {
                let mut refused = true;
                for i in 0..self.held.len() {
                    while self.request(i, 1) {}
                    match self.deliver(i) {
                        Some(Outcome::RateLimited | Outcome::UsageExceeded) => {}
                        _ => refused = false,
                    }
                }
                if refused {
                    return;
                }
                self.advance(MAX_WAIT_MS);
            }
            panic!("the race never settled");
        }
    }

    fn run(race: &mut Race, steps: &[Step], budget: impl Fn(&Race) -> u64) {
        for s in steps {
            match *s {
                Step::Request(i, cost) => {
                    race.request(i, cost);
                }
                Step::Deliver(i) => {
                    race.deliver(i);
                }
                Step::Increment(v) => {
                    race.seq += 1;
                    race.object.settle(&race.rules, race.now);
                    let mut inc = op(race.seq, CreditOpKind::Increment, v);
                    inc.at = secs(race.now);
                    race.object.apply_op(&inc);
                    race.incremented += v;
                }
                Step::Advance(ms) => race.advance(ms),
            }
            assert!(
                race.admitted <= budget(race),
                "admitted {} > {}",
                race.admitted,
                budget(race)
            );
        }
        race.drain();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn racing_isolates_admit_exactly_the_credits_plus_every_increment(
            n in 0..300u64,
            isolates in 1..8usize,
            steps in proptest::collection::vec(step(8), 0..300),
        ) {
            let steps: Vec<Step> = steps.into_iter().map(|s| match s {
                Step::Request(i, c) => Step::Request(i % isolates, c),
                Step::Deliver(i) => Step::Deliver(i % isolates),
                other => other,
            }).collect();
            let increments: u64 = steps.iter().map(|s| match s { Step::Increment(v) => *v, _ => 0 }).sum();
            let mut race = Race::new(isolates, credited(), Some(n));
            run(&mut race, &steps, |r| n + r.incremented);
            prop_assert_eq!(race.admitted, n + increments);
        }

        #[test]
        fn racing_isolates_admit_exactly_the_tightest_limit_in_one_window(
            a in 1..200u32,
            b in 1..200u32,
            credits in proptest::option::of(0..300u64),
            isolates in 1..8usize,
            steps in proptest::collection::vec(step(8), 0..200),
        ) {
            // A window of an hour and time advances that stay inside it.
            let steps: Vec<Step> = steps.into_iter().filter_map(|s| match s {
                Step::Request(i, c) => Some(Step::Request(i % isolates, c)),
                Step::Deliver(i) => Some(Step::Deliver(i % isolates)),
                Step::Advance(ms) => Some(Step::Advance(ms / 10)),
                Step::Increment(_) => None,
            }).collect();
            let rules = Rules {
                limits: vec![limit("a", a, 3_600), limit("b", b, 86_400)],
                credited: credits.is_some(),
            };
            let expected = u64::from(a.min(b)).min(credits.unwrap_or(u64::MAX));
            let mut race = Race::new(isolates, rules, credits);
            run(&mut race, &steps, |_| expected);
            prop_assert_eq!(race.admitted, expected);
        }
    }
}
