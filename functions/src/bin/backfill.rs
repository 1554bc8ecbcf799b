//! The `backfill` Lambda function: pushes every key's edge entries from the table to the edge.
//!
//! Run locally: `cargo xtask backfill` (against the running `cargo xtask dev` stack);
//! production: `aws lambda invoke --function-name <BackfillFunctionName> out.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    keyward_functions::backfill::run().await
}
