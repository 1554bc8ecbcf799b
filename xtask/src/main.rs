//! `cargo xtask bootstrap|dev|test|bench|package`: Keyward's own tooling.
fn main() {}
