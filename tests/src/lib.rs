//! Harness for end-to-end tests: starts the real local stack (moto, cargo lambda watch, wrangler dev).
pub mod poller;
pub mod process;
pub mod table;
pub mod router;
