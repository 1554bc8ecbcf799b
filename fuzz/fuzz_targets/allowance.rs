//! Requests to an allowance Durable Object (`AllowanceRequest` JSON, as the edge's isolates send
//! them), applied in order to one object's state on a clock that moves forward.
//!
//! Properties: a request that deserialises serialises back to the same request, as the edge's
//! hand-written writer writes it, and that reader reads it back (and reads nothing serde does
//! not); an answer is written as serde writes it and read back; nothing panics
//! (no overflow whatever the values); an admitted request never spends more credits than were
//! free nor more units than a limit had left; a lease holds at most `MAX_BLOCK` units and ends
//! within `LEASE_TTL_MS`; a refused request changes no credits.
#![no_main]

use keyward_common::allowance::{
    Allowance, AllowanceRequest, Answer, LEASE_TTL_MS, MAX_BLOCK, Outcome,
};
use keyward_common::json;
use libfuzzer_sys::fuzz_target;

/// The clock at the first request (2027-01-15), in ms.
const T0: u64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    // Any single request the hand-written reader takes, serde takes too, as the same request.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(ours) = json::from_str::<AllowanceRequest>(text)
    {
        assert_eq!(
            serde_json::from_str::<AllowanceRequest>(text).ok(),
            Some(ours)
        );
    }
    let Ok(requests) = serde_json::from_slice::<Vec<(u32, AllowanceRequest)>>(data) else {
        return;
    };
    let mut state = Allowance::default();
    let mut now = T0;
    for (step_ms, request) in requests {
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<AllowanceRequest>(&json).unwrap(),
            request
        );
        assert_eq!(
            json::to_string(&request),
            json,
            "written as serde writes it"
        );
        assert_eq!(
            json::from_str::<AllowanceRequest>(&json).as_ref(),
            Ok(&request)
        );
        now += u64::from(step_ms);
        match request {
            AllowanceRequest::Acquire {
                rules,
                cost,
                lease,
                returns,
            } => {
                state.settle(&rules, now);
                state.give_back(&returns, &[]);
                let before = state.peek(&rules, now);
                let answer = state.acquire(&rules, cost, lease, now);
                if answer.outcome == Outcome::Admitted {
                    if let Some(c) = before.credits {
                        assert!(
                            c.remaining >= u64::from(cost),
                            "spent credits it did not have"
                        );
                    }
                    for l in &before.limits {
                        assert!(l.remaining >= cost, "went over limit {}", l.name);
                    }
                } else {
                    assert_eq!(answer.credits, before.credits, "a refusal spent credits");
                }
                if let Some(l) = answer.lease {
                    assert!(l.units <= MAX_BLOCK && l.units > 0);
                    assert!(l.expires_ms <= now + LEASE_TTL_MS);
                }
                let json = serde_json::to_string(&answer).unwrap();
                assert_eq!(
                    serde_json::from_str::<keyward_common::allowance::Answer>(&json).unwrap(),
                    answer
                );
                assert_eq!(json::to_string(&answer), json, "written as serde writes it");
                assert_eq!(json::from_str::<Answer>(&json).as_ref(), Ok(&answer));
            }
            AllowanceRequest::Peek { rules } => {
                state.settle(&rules, now);
                let _ = state.peek(&rules, now);
            }
            AllowanceRequest::Return { returns, refunds } => state.give_back(&returns, &refunds),
            AllowanceRequest::Credit { op } => {
                state.settle_credits(now);
                let seq = state.seq;
                let applied = state.apply_op(&op);
                assert_eq!(
                    applied,
                    op.seq > seq,
                    "a seq applied twice, or a new one refused"
                );
                assert!(!state.apply_op(&op), "a replay applied");
            }
        }
    }
});
