//! The `sync` Lambda function: DynamoDB stream records of key items → signed batches → the edge.
//!
//! Run locally: part of `cargo xtask dev` (the stream poller invokes it through `cargo lambda watch`);
//! production: the table's stream mapping in `infra/template.yaml`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    keyward_functions::sync::run().await
}
