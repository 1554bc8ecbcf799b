//! Exact per-key rate limits: one Durable Object per key id counts a fixed window.
//!
//! A Durable Object handles one event at a time and its storage calls hold its input gate, so
//! the read-increment-write below cannot interleave with another request for the same key:
//! with `{limit: 5}` exactly five requests of a window pass, however many arrive at once.

use std::cell::Cell;

use keyward_common::verify::rate_window;
use keyward_common::{RateLimit, RateLimitState};
use serde::{Deserialize, Serialize};
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

use crate::config::RATE_LIMITER_BINDING;

const WINDOW_KEY: &str = "window";

/// The counter of the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    start: i64,
    count: u32,
}

/// What the limiter answers: whether this request fits, and the window after counting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// The window's state for the `X-RateLimit-*` headers.
    pub state: RateLimitState,
}

/// Counts one request of `cost` units against `limit` in the window containing `now` (or, with
/// `peek`, only reports the window). A request fits when its whole cost does; a cost of 0 always
/// fits and uses nothing.
fn count(
    window: Option<Window>,
    limit: &RateLimit,
    now: i64,
    peek: bool,
    cost: u32,
) -> (Window, Hit) {
    let (start, end) = rate_window(limit, now);
    let used = window.filter(|w| w.start == start).map_or(0, |w| w.count);
    let allowed = if peek {
        used < limit.limit
    } else {
        used.saturating_add(cost) <= limit.limit
    };
    // Refused requests are not counted: the window stays where it was.
    let count = if allowed && !peek {
        used.saturating_add(cost)
    } else {
        used
    };
    let hit = Hit {
        allowed,
        state: RateLimitState {
            limit: limit.limit,
            // A limit lowered mid-window can leave more counted than it allows: 0 left, not a wrap.
            remaining: limit.limit.saturating_sub(count),
            reset: end,
        },
    };
    (Window { start, count }, hit)
}

/// The limiter's query: the key's allowance, and whether to count or only look.
#[derive(Debug, Deserialize)]
struct Query {
    limit: u32,
    period_s: u32,
    #[serde(default)]
    peek: bool,
    #[serde(default = "one")]
    cost: u32,
}

fn one() -> u32 {
    1
}

/// The Durable Object class (`RateLimiter` in `wrangler.toml`), one instance per key id.
#[durable_object(fetch)]
pub struct RateLimiter {
    state: State,
    // Cached copy of the stored window; `None` until first loaded.
    window: Cell<Option<Option<Window>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("window", &self.window.get())
            .finish_non_exhaustive()
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            window: Cell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let Query {
            limit,
            period_s,
            peek,
            cost,
        } = req.query()?;
        let limit = RateLimit { limit, period_s };
        if limit.validate().is_err() {
            return Response::error("bad limit", 400);
        }
        let storage = self.state.storage();
        if self.window.get().is_none() {
            // Input gate: no other request reaches this object while the read is in flight.
            let stored: Option<Window> = storage.get(WINDOW_KEY).await?;
            if self.window.get().is_none() {
                self.window.set(Some(stored));
            }
        }
        let now = now_s();
        let before = self.window.get().flatten();
        let (window, hit) = count(before, &limit, now, peek, cost);
        if before != Some(window) {
            self.window.set(Some(Some(window)));
            // Output gate: the answer leaves only once the write is durable.
            storage.put(WINDOW_KEY, window).await?;
        }
        Response::from_json(&hit)
    }
}

fn now_s() -> i64 {
    i64::try_from(worker::Date::now().as_millis() / 1000).unwrap_or(i64::MAX)
}

/// Counts one request of `cost` units for `key_id` in its Durable Object; with `peek`, only
/// reads the window (for the headers of a refused request, which must not use up the
/// allowance).
///
/// # Errors
/// When the namespace is not bound or the object cannot be reached.
pub async fn hit(env: &Env, key_id: &str, limit: &RateLimit, peek: bool, cost: u32) -> Result<Hit> {
    let stub = env
        .durable_object(RATE_LIMITER_BINDING)?
        .id_from_name(key_id)?
        .get_stub()?;
    let url = format!(
        "https://rate-limiter/hit?limit={}&period_s={}&peek={peek}&cost={cost}",
        limit.limit, limit.period_s
    );
    let mut resp = stub.fetch_with_str(&url).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "rate limiter answered {}",
            resp.status_code()
        )));
    }
    resp.json().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_PER_MINUTE: RateLimit = RateLimit {
        limit: 5,
        period_s: 60,
    };

    #[test]
    fn exactly_the_limit_passes_in_one_window() {
        let mut w = None;
        let mut passed = 0;
        for _ in 0..8 {
            let (next, hit) = count(w, &FIVE_PER_MINUTE, 125, false, 1);
            w = Some(next);
            passed += u32::from(hit.allowed);
            assert_eq!(hit.state.reset, 180);
        }
        assert_eq!(passed, 5);
        assert_eq!(w.unwrap().count, 5);
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let full = Some(Window {
            start: 120,
            count: 5,
        });
        let (w, hit) = count(full, &FIVE_PER_MINUTE, 180, false, 1);
        assert!(hit.allowed);
        assert_eq!(hit.state.remaining, 4);
        assert_eq!(w.start, 180);
    }

    #[test]
    fn a_limit_lowered_mid_window_leaves_zero_remaining_not_a_wrap() {
        let used = Some(Window {
            start: 120,
            count: 5,
        });
        let two = RateLimit {
            limit: 2,
            period_s: 60,
        };
        for peek in [false, true] {
            let (w, hit) = count(used, &two, 125, peek, 1);
            assert!(!hit.allowed);
            assert_eq!(hit.state.remaining, 0);
            assert_eq!(w.count, 5);
        }
    }

    #[test]
    fn a_request_counts_its_cost_and_must_fit_whole() {
        let (w, hit) = count(None, &FIVE_PER_MINUTE, 125, false, 3);
        assert!(hit.allowed);
        assert_eq!((w.count, hit.state.remaining), (3, 2));
        let (w, hit) = count(Some(w), &FIVE_PER_MINUTE, 125, false, 3);
        assert!(!hit.allowed, "3 more do not fit in 2");
        assert_eq!(w.count, 3);
        let (w, hit) = count(Some(w), &FIVE_PER_MINUTE, 125, false, 0);
        assert!(hit.allowed);
        assert_eq!(w.count, 3, "a free request uses nothing");
        let (_, hit) = count(Some(w), &FIVE_PER_MINUTE, 125, false, u32::MAX);
        assert!(!hit.allowed);
    }

    #[test]
    fn a_peek_reports_without_counting() {
        let (w, hit) = count(None, &FIVE_PER_MINUTE, 125, true, 1);
        assert!(hit.allowed);
        assert_eq!(hit.state.remaining, 5);
        assert_eq!(w.count, 0);
    }
}
