//! The `usage` Lambda function: `POST /v1/usage`, the edge's signed usage batches.
//!
//! Run locally: part of `cargo xtask dev` (the edge posts to the router's `/v1/usage`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::usage::run().await
}
