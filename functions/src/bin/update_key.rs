//! The `update-key` Lambda function: `PATCH /v1/workspaces/{workspace}/keys/{id}`.
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/update-key/v1/workspaces/{workspace}/...`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("update-key").await
}
