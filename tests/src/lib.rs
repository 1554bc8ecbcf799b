//! Harness for end-to-end tests: starts the real local stack (moto, cargo lambda watch, wrangler dev).
pub mod app;
pub mod control_plane;
pub mod edge;
pub mod origin;
pub mod poller;
pub mod process;
pub mod router;
pub mod scenarios;
pub mod stack;
pub mod table;
