//! Keyward's pure core: everything the control plane and the edge must agree on, with no I/O.
//!
//! Time and randomness are always passed in, so every decision here is a plain function of its
//! inputs and runs the same natively (Lambda) and in `wasm32-unknown-unknown` (the edge).

pub mod allowance;
pub mod base62;
pub mod crc32;
pub mod credentials;
pub mod credits;
pub mod id;
pub mod json;
pub mod key;
pub mod origin;
pub mod preset;
pub mod problem;
pub mod query;
pub mod record;
pub mod route;
pub mod secret;
pub mod sync;
pub mod time;
pub mod verify;
pub mod verify_api;
mod wire;

pub use id::KeyId;
pub use key::{KeyFormatError, KeyHash, PresentedKey, SecretKey};
pub use problem::{FieldError, Problem, ProblemCode};
pub use query::{Query, QueryError};
pub use record::{EdgeEntry, KeyRecord, KeyStatus, RateLimit, RoleEntry, RoleRecord};
pub use secret::Secret;
pub use time::Timestamp;
pub use verify::{
    RateLimitState, RequestContext, Verdict, VerdictCode, effective_permissions, verify,
    verify_with_permissions,
};
