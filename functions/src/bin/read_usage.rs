//! The `read-usage` Lambda function: `GET /v1/workspaces/{workspace}/usage` (JSON pages or
//! CSV) and `GET /v1/workspaces/{workspace}/keys/{id}/usage`.
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/read-usage/v1/workspaces/{workspace}/usage`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("read-usage").await
}
