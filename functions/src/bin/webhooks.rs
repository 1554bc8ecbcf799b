//! The `webhooks` Lambda function: webhook endpoints (`/v1/workspaces/{workspace}/webhooks`),
//! their deliveries and test events.
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/webhooks/v1/workspaces/{workspace}/webhooks`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("webhooks").await
}
