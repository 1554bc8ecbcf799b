//! Keyward control plane: handlers, store, auth. Filled by the control-plane issue.
