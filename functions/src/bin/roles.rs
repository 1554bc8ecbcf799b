//! The `roles` Lambda function: every `/v1/workspaces/{workspace}/roles` operation (create,
//! list, get, update, delete).
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/roles/v1/workspaces/{workspace}/roles`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("roles").await
}
