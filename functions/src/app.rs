//! What a function needs to serve requests, built once per process.

use std::sync::Arc;

use crate::config::Config;
use crate::store::KeyStore;

/// Configuration and storage, shared by every request of a function.
#[derive(Debug, Clone)]
pub struct App {
    /// Configuration.
    pub config: Arc<Config>,
    /// Storage.
    pub store: Arc<dyn KeyStore>,
}
