//! The `owners` Lambda function: every `/v1/workspaces/{workspace}/owners` operation (put,
//! get, list, credit operations).
//!
//! Run locally: `cargo lambda watch` in `functions/` (with `KEYWARD_*` and `AWS_*` set),
//! then call `http://127.0.0.1:9000/lambda-url/owners/v1/workspaces/{workspace}/owners`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::run("owners").await
}
