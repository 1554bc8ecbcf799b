//! The `Allowance` Durable Object — one per key (`k:{key_id}`) and per owner
//! (`o:{workspace}:{owner_id}`), the single authority that spends credits and every named
//! limit — and the isolate's side: leases of allowance spent locally, returned when they end.
//!
//! The bookkeeping is `keyward_common::allowance`; this module only stores it and carries it.
//! A Durable Object handles one event at a time and its storage calls hold its input gate, so
//! each request's settle–decide–store cannot interleave with another's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use keyward_common::allowance::{
    Allowance as State_, AllowanceRequest, Answer, CreditState, Held, LEASE_TTL_MS, LeaseReturn,
    LimitScope, LimitState, Outcome, RETURN_DELAY_MS, RETURN_GRACE_MS, Refund, Refusal, Rules,
};
use keyward_common::credits::{CreditOp, CreditTarget};
use keyward_common::json;
use keyward_common::sync::BalanceReport;
use worker::{
    Context, Delay, DurableObject, Env, Request, Response, Result, State, durable_object,
};

use crate::check::now_ms;
use crate::js;

thread_local! {
    /// `CLOCK_OFFSET_S` in ms: the allowance clock of a local stack or test, never of production.
    static CLOCK_OFFSET_MS: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Sets the allowance clock's offset (`CLOCK_OFFSET_S`, unset in production).
pub fn set_clock_offset(seconds: i64) {
    CLOCK_OFFSET_MS.set(seconds.saturating_mul(1000));
}

/// The allowance clock (Unix ms): the runtime's, moved by `CLOCK_OFFSET_S` so a test can reach a
/// refill without waiting for it. Only credits, windows and leases use it.
#[must_use]
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
pub fn clock_ms() -> u64 {
    (now_ms() as i64)
        .saturating_add(CLOCK_OFFSET_MS.get())
        .max(0) as u64
}
use crate::config::ALLOWANCE_BINDING;

const STATE_KEY: &str = "allowance";
/// Largest body the object accepts (a request carries at most a target's rules and returns).
const MAX_BODY: usize = 16 * 1024;

/// The Durable Object class (`Allowance` in `wrangler.toml`).
#[durable_object(fetch)]
pub struct Allowance {
    state: State,
    // The stored state, once loaded.
    cached: RefCell<Option<State_>>,
}

impl std::fmt::Debug for Allowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Allowance").finish_non_exhaustive()
    }
}

/// The object's answer to a credit operation: `{"applied", "remaining"}`.
#[derive(Debug, PartialEq, Eq)]
struct Applied {
    applied: bool,
    remaining: Option<u64>,
}

keyward_common::json_object!(read_write Applied, skip { applied: req, remaining: opt });

impl DurableObject for Allowance {
    fn new(state: State, env: Env) -> Self {
        let offset = env
            .var("CLOCK_OFFSET_S")
            .ok()
            .and_then(|v| v.to_string().trim().parse::<i64>().ok())
            .unwrap_or(0);
        set_clock_offset(offset);
        Self {
            state,
            cached: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let body = req.text().await?;
        if body.len() > MAX_BODY {
            return Response::error("too large", 413);
        }
        let Ok(request) = json::from_str::<AllowanceRequest>(&body) else {
            return Response::error("not an allowance request", 400);
        };
        let storage = self.state.storage();
        if self.cached.borrow().is_none() {
            // Input gate: no other event reaches this object while the read is in flight.
            // Stored as a JS object (as serde_wasm_bindgen once wrote it): read as its JSON.
            let stored = js::storage_get(&storage, STATE_KEY).await?;
            let stored: Option<State_> = if stored.is_undefined() {
                None
            } else {
                Some(js::parse(&js::stringify(&stored)?, "the stored allowance")?)
            };
            let mut cached = self.cached.borrow_mut();
            if cached.is_none() {
                *cached = Some(stored.unwrap_or_default());
            }
        }
        let now = clock_ms();
        let (before, after, reply) = {
            let mut cached = self.cached.borrow_mut();
            let st = cached.get_or_insert_with(State_::default);
            let before = st.clone();
            let reply = answer(st, request, now);
            (before, st.clone(), reply)
        };
        if before != after {
            // Output gate: the answer leaves only once the write is durable.
            storage
                .put_raw(STATE_KEY, js::to_object(&json::to_string(&after))?)
                .await?;
        }
        Response::ok(reply)
    }
}

fn answer(st: &mut State_, request: AllowanceRequest, now: u64) -> String {
    match request {
        AllowanceRequest::Acquire {
            rules,
            cost,
            lease,
            returns,
        } => {
            st.settle(&rules, now);
            st.give_back(&returns, &[]);
            json::to_string(&st.acquire(&rules, cost, lease, now))
        }
        AllowanceRequest::Peek { rules } => {
            st.settle(&rules, now);
            json::to_string(&st.peek(&rules, now))
        }
        AllowanceRequest::Return { returns, refunds } => {
            st.give_back(&returns, &refunds);
            "{}".to_owned()
        }
        AllowanceRequest::Credit { op } => {
            st.settle_credits(now);
            let applied = st.apply_op(&op);
            json::to_string(&Applied {
                applied,
                remaining: st.balance().map(|b| b.0),
            })
        }
    }
}

/// Requests this isolate has made to `object` (reported by `test-hooks`).
#[cfg(feature = "test-hooks")]
#[must_use]
pub fn calls(object: &str) -> u64 {
    CALLS.with_borrow(|c| c.get(object).copied().unwrap_or(0))
}

async fn call(env: &Env, object: &str, request: &AllowanceRequest) -> Result<String> {
    #[cfg(feature = "test-hooks")]
    CALLS.with_borrow_mut(|c| *c.entry(object.to_owned()).or_default() += 1);
    let (status, text) = js::post_to_object(
        env,
        ALLOWANCE_BINDING,
        object,
        "https://allowance/",
        &json::to_string(request),
    )
    .await?;
    if status != 200 {
        return Err(worker::Error::RustError(format!(
            "the allowance object {object} answered {status}"
        )));
    }
    Ok(text)
}

/// Applies a credit operation from a sync batch in its target's object: whether it was new.
///
/// # Errors
/// When the object cannot be reached.
pub async fn apply_op(env: &Env, op: &CreditOp) -> Result<bool> {
    let text = call(
        env,
        &op.target.object_name(),
        &AllowanceRequest::Credit { op: op.clone() },
    )
    .await?;
    let applied: Applied = js::parse(&text, "an allowance object's answer")?;
    // The isolate's view of the target is stale now: forget it (its leases stay valid).
    HELD.with_borrow_mut(|h| {
        if let Some(held) = h.get_mut(&op.target.object_name()) {
            held.credits = None;
            held.limits.clear();
        }
    });
    REFUSED.with_borrow_mut(|r| r.remove(&op.target.object_name()));
    Ok(applied.applied)
}

thread_local! {
    /// Requests made to each object (reported by `test-hooks`).
    #[cfg(feature = "test-hooks")]
    static CALLS: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    /// Objects with a round trip in flight, and the requests waiting for it to land.
    static INFLIGHT: RefCell<std::collections::HashSet<String>> =
        RefCell::new(std::collections::HashSet::new());
    /// The last refusal per object name: when its round trip was sent, for what cost, why.
    static REFUSED: RefCell<HashMap<String, (u64, u32, Refusal)>> = RefCell::new(HashMap::new());
    /// Leases and last-known state per object name.
    static HELD: RefCell<HashMap<String, Held>> = RefCell::new(HashMap::new());
    /// The latest balance an object reported, per object name, for the next usage batch.
    static BALANCES: RefCell<HashMap<String, BalanceReport>> = RefCell::new(HashMap::new());
}

/// One key or owner whose allowance a request spends.
#[derive(Debug, Clone)]
pub struct Target {
    /// Who (names the object).
    pub who: CreditTarget,
    /// Its limits and whether it has credits.
    pub rules: Rules,
    /// `key` or `owner`, for the verify answer.
    pub scope: LimitScope,
    /// `who`'s object name, formatted once: every map here is keyed by it.
    name: String,
}

impl Target {
    /// The allowance of `who` under `rules`, reported under `scope`.
    #[must_use]
    pub fn new(who: CreditTarget, rules: Rules, scope: LimitScope) -> Self {
        let name = who.object_name();
        Self {
            who,
            rules,
            scope,
            name,
        }
    }
}

/// What spending from a target concluded.
#[derive(Debug, Clone, Default)]
pub struct Spent {
    /// Why it was refused, if it was.
    pub refusal: Option<Refusal>,
    /// The limits' state, scoped.
    pub limits: Vec<LimitState>,
    /// The credits' state, scoped.
    pub credits: Option<CreditState>,
}

fn scoped(
    scope: LimitScope,
    (mut limits, credits): (Vec<LimitState>, Option<CreditState>),
) -> (Vec<LimitState>, Option<CreditState>) {
    for l in &mut limits {
        l.scope = scope;
    }
    (limits, credits.map(|c| CreditState { scope, ..c }))
}

/// Spends `cost` from the target's leases in this isolate, with no I/O: `None` when they do not
/// hold enough (a round trip is needed).
pub fn spend_now(target: &Target, cost: u32, now: u64) -> Option<Spent> {
    HELD.with_borrow_mut(|h| {
        let held = h.get_mut(&target.name)?;
        if !held.knows() || !held.spend(cost, now) {
            return None;
        }
        let (limits, credits) = scoped(target.scope, held.view(now));
        Some(Spent {
            refusal: None,
            limits,
            credits,
        })
    })
}

/// Asks `target`'s object for the next block in the background when this isolate's lease is
/// half spent ([`Held::wants_top_up`]) and no round trip to it is in flight: a hot key's next
/// lease then lands before the current one runs out, and no request waits for the object.
/// The request costs nothing and gives back only leases that ended; what it returns is
/// learnt as any answer is (its lease goes back by timer when it ends).
pub fn top_up(env: &Env, ctx: &Context, target: &Target) {
    let now = clock_ms();
    if INFLIGHT.with_borrow(|f| f.contains(&target.name))
        || !HELD.with_borrow(|h| {
            h.get(&target.name)
                .is_some_and(|held| held.wants_top_up(now))
        })
    {
        return;
    }
    let name = target.name.clone();
    let guard = Inflight::begin(&name);
    let returns = HELD.with_borrow_mut(|h| {
        h.get_mut(&name)
            .map(|held| held.take_expired(now))
            .unwrap_or_default()
    });
    let request = AllowanceRequest::Acquire {
        rules: target.rules.clone(),
        cost: 0,
        lease: true,
        returns,
    };
    let (env, target) = (env.clone(), target.clone());
    ctx.wait_until(async move {
        let answer = match call(&env, &name, &request).await {
            Ok(text) => js::parse::<Answer>(&text, "an allowance object's answer"),
            Err(err) => Err(err),
        };
        drop(guard);
        match answer {
            Ok(answer) => {
                if let Some(give_back) = learn_state(&env, &target, &answer, clock_ms()) {
                    give_back.await;
                }
            }
            Err(err) => worker::console_error!("topping up the lease of {name}: {err}"),
        }
    });
}

/// Puts back `cost` just spent with [`spend_now`] (a later target could not spend locally).
pub fn unspend_now(target: &Target, cost: u32, now: u64) {
    HELD.with_borrow_mut(|h| {
        if let Some(held) = h.get_mut(&target.name) {
            held.refund(cost, now);
        }
    });
}

/// Gives back `cost` spent from `target` at `now` (its owner refused the request): into the
/// lease it came from when this isolate still holds one, else to the object (off the
/// response's path).
pub fn refund(env: &Env, ctx: &Context, target: &Target, cost: u32, now: u64) {
    if cost == 0 {
        return;
    }
    let name = target.name.clone();
    if HELD.with_borrow_mut(|h| h.get_mut(&name).is_some_and(|held| held.refund(cost, now))) {
        return;
    }
    let request = AllowanceRequest::Return {
        returns: Vec::new(),
        refunds: vec![Refund {
            units: u64::from(cost),
            at_s: keyward_common::time::unix_seconds(now),
        }],
    };
    let env = env.clone();
    ctx.wait_until(async move {
        if let Err(err) = call(&env, &name, &request).await {
            worker::console_error!("refunding {name}: {err}");
        }
    });
}

/// Spends `cost` from the target: from a lease this isolate holds, else from its object (taking
/// a new lease and giving back the old ones). When the object has too few units but leases
/// are out, waits for them to come back (at most a lease's life and its grace) before
/// refusing.
///
/// # Errors
/// When the object cannot be reached.
pub async fn spend(env: &Env, ctx: &Context, target: &Target, cost: u32) -> Result<Spent> {
    let name = target.name.clone();
    let deadline = clock_ms() + MAX_WAIT_MS;
    let mut waiting_since: Option<u64> = None;
    loop {
        let now = clock_ms();
        if let Some(spent) = spend_now(target, cost, now) {
            return Ok(spent);
        }
        // A round trip sent while this request was already waiting was refused for a cost no
        // larger than this one's: this one is refused too, at the same moment (so an exhausted
        // hot key does not queue its refusals one round trip after another).
        if let Some(since) = waiting_since
            && let Some(refusal) = REFUSED.with_borrow(|r| {
                r.get(&name)
                    .filter(|(sent, c, _)| *sent >= since && *c <= cost)
                    .map(|(_, _, refusal)| *refusal)
            })
        {
            let (limits, credits) = scoped(
                target.scope,
                HELD.with_borrow(|h| h.get(&name).map(|held| held.view(now)).unwrap_or_default()),
            );
            return Ok(Spent {
                refusal: Some(refusal),
                limits,
                credits,
            });
        }
        // One round trip per target at a time in this isolate: the others wait for its lease
        // (a block covers many requests) instead of each fetching one.
        // The waiting request polls on a timer of its own: the runtime cancels a request that
        // waits only on another request's I/O, as hung.
        if INFLIGHT.with_borrow(|f| f.contains(&name)) && now < deadline {
            waiting_since.get_or_insert(now);
            Delay::from(Duration::from_millis(1)).await;
            continue;
        }
        let guard = Inflight::begin(&name);
        let sent = clock_ms();
        forget_idle(sent);
        let returns = HELD.with_borrow_mut(|h| h.entry(name.clone()).or_default().take_all());
        let request = AllowanceRequest::Acquire {
            rules: target.rules.clone(),
            cost,
            lease: cost > 0,
            returns,
        };
        let answer: Answer = js::parse(
            &call(env, &name, &request).await?,
            "an allowance object's answer",
        )?;
        let now = clock_ms();
        learn(ctx, env, target, &answer, now);
        REFUSED.with_borrow_mut(|r| match answer.outcome {
            Outcome::RateLimited => r.insert(name.clone(), (sent, cost, Refusal::RateLimited)),
            Outcome::UsageExceeded => r.insert(name.clone(), (sent, cost, Refusal::UsageExceeded)),
            Outcome::Admitted | Outcome::Wait { .. } => r.remove(&name),
        });
        drop(guard);
        let refusal = match answer.outcome {
            Outcome::Admitted => None,
            Outcome::RateLimited => Some(Refusal::RateLimited),
            Outcome::UsageExceeded => Some(Refusal::UsageExceeded),
            Outcome::Wait { retry_ms, refusal } => {
                if now + retry_ms < deadline {
                    Delay::from(Duration::from_millis(retry_ms)).await;
                    continue;
                }
                Some(refusal)
            }
        };
        let (limits, credits) = scoped(
            target.scope,
            HELD.with_borrow(|h| h.get(&name).map(|held| held.view(now)).unwrap_or_default()),
        );
        return Ok(Spent {
            refusal,
            limits,
            credits,
        });
    }
}

/// Most targets an isolate remembers (leases and last-known state) before it forgets the idle
/// ones: a long-lived isolate that meets ever more limited keys must not grow without bound.
const HELD_CAP: usize = 4096;

/// How long a request may wait for its target's allowance (a lease's life, its grace and half a
/// second), and so how long a refusal can still answer a waiting request.
const MAX_WAIT_MS: u64 = LEASE_TTL_MS + RETURN_GRACE_MS + 500;

/// Past [`HELD_CAP`] targets, forgets what nothing needs: refusals no waiting request can use,
/// and targets that hold no lease, have no round trip in flight and no refusal a waiter may
/// still read. A forgotten target's next request asks its object, as a request without a lease
/// does anyway; no unit is lost (a lease is never forgotten).
fn forget_idle(now: u64) {
    if HELD.with_borrow(HashMap::len) <= HELD_CAP {
        return;
    }
    REFUSED.with_borrow_mut(|r| {
        r.retain(|_, (sent, _, _)| now.saturating_sub(*sent) < MAX_WAIT_MS);
    });
    INFLIGHT.with_borrow(|busy| {
        REFUSED.with_borrow(|refused| {
            HELD.with_borrow_mut(|h| {
                h.retain(|name, held| {
                    !held.is_empty() || busy.contains(name) || refused.contains_key(name)
                });
            });
        });
    });
}

/// Marks a round trip to `name`'s object in flight, until dropped.
struct Inflight(String);

impl Inflight {
    fn begin(name: &str) -> Self {
        INFLIGHT.with_borrow_mut(|f| f.insert(name.to_owned()));
        Self(name.to_owned())
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        INFLIGHT.with_borrow_mut(|f| f.remove(&self.0));
    }
}

/// The target's state without spending (a request refused before its allowance): what this
/// isolate last learnt, else a look at the object.
///
/// # Errors
/// When the object cannot be reached.
pub async fn peek(env: &Env, ctx: &Context, target: &Target) -> Result<Spent> {
    let name = target.name.clone();
    let now = clock_ms();
    let known = HELD.with_borrow(|h| {
        h.get(&name)
            .filter(|held| held.knows())
            .map(|held| held.view(now))
    });
    let view = match known {
        Some(v) => v,
        None => {
            let request = AllowanceRequest::Peek {
                rules: target.rules.clone(),
            };
            let answer: Answer = js::parse(
                &call(env, &name, &request).await?,
                "an allowance object's answer",
            )?;
            learn(ctx, env, target, &answer, now);
            (answer.limits, answer.credits)
        }
    };
    let (limits, credits) = scoped(target.scope, view);
    Ok(Spent {
        refusal: None,
        limits,
        credits,
    })
}

/// Records an answer: its state and lease, the balance for usage, and a timer that gives the
/// lease back when it ends.
fn learn(ctx: &Context, env: &Env, target: &Target, answer: &Answer, now: u64) {
    if let Some(give_back) = learn_state(env, target, answer, now) {
        ctx.wait_until(give_back);
    }
}

/// [`learn`] without the timer: the future that gives the answer's lease back when it ends,
/// for the caller to run off the response's path.
fn learn_state(
    env: &Env,
    target: &Target,
    answer: &Answer,
    now: u64,
) -> Option<impl std::future::Future<Output = ()> + 'static> {
    let name = target.name.clone();
    HELD.with_borrow_mut(|h| h.entry(name.clone()).or_default().learn(answer));
    if let Some(c) = answer.credits {
        let report = BalanceReport {
            target: target.who.clone(),
            remaining: c.remaining,
            seq: answer.seq,
            at_ms: i64::try_from(now).unwrap_or(i64::MAX),
        };
        BALANCES.with_borrow_mut(|b| b.insert(name.clone(), report));
    }
    answer.lease.map(|lease| {
        let env = env.clone();
        async move {
            let wait = lease.expires_ms.saturating_sub(now) + RETURN_DELAY_MS;
            Delay::from(Duration::from_millis(wait)).await;
            let returns: Vec<LeaseReturn> = HELD.with_borrow_mut(|h| {
                h.get_mut(&name)
                    .map(|held| held.take_expired(clock_ms()))
                    .unwrap_or_default()
            });
            if returns.is_empty() {
                return;
            }
            let request = AllowanceRequest::Return {
                returns,
                refunds: Vec::new(),
            };
            if let Err(err) = call(&env, &name, &request).await {
                worker::console_error!("returning leases of {name}: {err}");
            }
        }
    })
}

/// The balances learnt since the last call, latest per target.
#[must_use]
pub fn take_balances() -> Vec<BalanceReport> {
    BALANCES.with_borrow_mut(|b| b.drain().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_common::allowance::Lease;

    #[test]
    fn an_isolate_forgets_idle_targets_past_its_cap_but_never_a_lease() {
        let now = 1_000_000;
        let lease = Lease {
            id: 1,
            units: 10,
            expires_ms: now + 1_000,
            granted_s: 1_000,
        };
        HELD.with_borrow_mut(|h| {
            for i in 0..=HELD_CAP {
                h.entry(format!("idle-{i}"))
                    .or_default()
                    .learn(&Answer::admitted(None));
            }
            h.entry("leased".into())
                .or_default()
                .learn(&Answer::admitted(Some(lease)));
            h.entry("in-flight".into()).or_default();
            h.entry("refused".into()).or_default();
        });
        INFLIGHT.with_borrow_mut(|f| f.insert("in-flight".into()));
        REFUSED.with_borrow_mut(|r| {
            r.insert("refused".into(), (now - 10, 1, Refusal::RateLimited));
            r.insert(
                "idle-0".into(),
                (now - MAX_WAIT_MS, 1, Refusal::RateLimited),
            );
        });
        forget_idle(now);
        let kept: std::collections::BTreeSet<String> =
            HELD.with_borrow(|h| h.keys().cloned().collect());
        assert_eq!(
            kept,
            ["in-flight", "leased", "refused"].map(String::from).into()
        );
        assert!(REFUSED.with_borrow(|r| r.contains_key("refused") && r.len() == 1));
        // Under the cap nothing is forgotten.
        HELD.with_borrow_mut(|h| {
            h.entry("idle-again".into()).or_default();
        });
        forget_idle(now);
        assert_eq!(HELD.with_borrow(HashMap::len), 4);
    }

    #[test]
    fn a_credit_answer_is_written_as_serde_wrote_it() {
        let applied = Applied {
            applied: true,
            remaining: None,
        };
        assert_eq!(
            json::to_string(&applied),
            r#"{"applied":true,"remaining":null}"#
        );
        assert_eq!(
            json::from_str::<Applied>(r#"{"applied":false,"remaining":7}"#),
            Ok(Applied {
                applied: false,
                remaining: Some(7)
            })
        );
    }
}
