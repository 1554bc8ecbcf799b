//! The `list-keys` Lambda function: `GET /v1/workspaces/{workspace}/keys`.
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/list-keys/v1/workspaces/{workspace}/...`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("list-keys").await
}
