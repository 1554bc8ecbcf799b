//! The `rotate-key` Lambda function: `POST /v1/workspaces/{workspace}/keys/{id}/rotate`.
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/rotate-key/v1/workspaces/{workspace}/...`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("rotate-key").await
}
