//! Keyward's control plane: the management API's operations, auth, input and storage, shared by
//! one thin Lambda binary per function (`src/bin/`), plus the stream, usage and backfill
//! functions.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod cursor;
pub mod error;
pub mod events;
pub mod http;
pub mod input;
pub mod jwt;
pub mod metrics;
pub mod openapi;
pub mod operation;
pub mod ops;
pub mod permission;
pub mod runtime;
pub mod seal;
pub mod store;
pub mod webhook;

pub mod backfill;
pub mod sync;
pub mod usage;

pub use app::App;
pub use config::Config;
pub use http::handle;
pub use operation::Operation;
pub use runtime::run;
