//! Keyward's control plane: the management API's handlers, auth, validation and storage, shared
//! by one thin Lambda binary per operation (`src/bin/`).

pub mod api;
pub mod auth;
pub mod config;
pub mod cursor;
pub mod error;
pub mod http;
pub mod openapi;
pub mod runtime;
pub mod store;
pub mod validate;

pub mod backfill;
pub mod sync;
pub mod usage;

pub use config::Config;
pub use http::{App, Operation, handle};
pub use runtime::run;
