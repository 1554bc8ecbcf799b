//! The `console` Lambda function: the web console's page and static files at `/console` and
//! `/console/{file}`, built into the binary. No credentials, no configuration, no AWS calls.
//!
//! Run locally: part of `cargo xtask dev` (open the printed console link), or `cargo lambda
//! watch` in `functions/` and `http://127.0.0.1:9000/lambda-url/console/console/`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keyward_functions::console::run().await
}
