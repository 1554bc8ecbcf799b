//! Harness for end-to-end tests: starts the real local stack (moto, cargo lambda watch, wrangler dev).
pub mod app;
pub mod control_plane;
pub mod edge;
pub mod moto;
pub mod origin;
pub mod paths;
pub mod poller;
pub mod process;
pub mod queue;
pub mod receiver;
pub mod router;
pub mod scenarios;
pub mod soak;
pub mod stack;
pub mod table;
pub mod webdriver;
