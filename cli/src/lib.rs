//! The `keyward` command line and the typed client of Keyward's management API it is built on
//! (also used by the end-to-end tests).

pub mod args;
pub mod batches;
pub mod client;
pub mod import;
pub mod output;
pub mod run;
