//! The runtime calls the edge makes on plain JS values — KV reads and writes, Durable Object
//! storage and requests, outbound fetches — where worker's typed wrappers would convert options
//! and values with serde (`serde_wasm_bindgen`, `serde_json`), which the edge's WASM does
//! without: what crosses is strings, read and written with `keyward_common::json`.

use js_sys::{Function, JSON, Object, Promise, Reflect};
use keyward_common::json::{self, FromJson};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Result, Storage, web_sys};

fn get(target: &JsValue, name: &str) -> Result<JsValue> {
    Ok(Reflect::get(target, &JsValue::from_str(name))?)
}

fn object(props: &[(&str, JsValue)]) -> Result<Object> {
    let o = Object::new();
    for (name, value) in props {
        Reflect::set(&o, &JsValue::from_str(name), value)?;
    }
    Ok(o)
}

/// Calls `target.method(...args)` and awaits the promise it returns.
async fn call(target: &JsValue, method: &str, args: &[&JsValue]) -> Result<JsValue> {
    let f: Function = get(target, method)?.unchecked_into();
    let promise = match args {
        [a] => f.call1(target, a),
        [a, b] => f.call2(target, a, b),
        [a, b, c] => f.call3(target, a, b, c),
        _ => f.call0(target),
    }?;
    Ok(JsFuture::from(Promise::from(promise)).await?)
}

/// Parses JSON text the runtime handed over (a KV entry, stored state, an object's answer).
///
/// # Errors
/// Naming `what` and the reason, when the text is not JSON of `T`'s shape.
pub fn parse<T: FromJson>(text: &str, what: &str) -> Result<T> {
    json::from_str(text)
        .map_err(|e| worker::Error::RustError(format!("{what} does not parse: {e}")))
}

/// The text under `key` in the KV namespace bound as `binding`, served from KV's edge cache for
/// up to `cache_ttl_s` seconds when given.
///
/// # Errors
/// When the namespace is not bound or the read fails.
pub async fn kv_get(
    env: &Env,
    binding: &str,
    key: &str,
    cache_ttl_s: Option<u32>,
) -> Result<Option<String>> {
    let kv = get(env, binding)?;
    let mut options = vec![("type", JsValue::from_str("text"))];
    if let Some(ttl) = cache_ttl_s {
        options.push(("cacheTtl", JsValue::from_f64(f64::from(ttl))));
    }
    let value = call(&kv, "get", &[&key.into(), &object(&options)?.into()]).await?;
    Ok(value.as_string())
}

/// Writes `value` under `key` in the KV namespace bound as `binding`, to be forgotten at Unix
/// second `expiration` when given.
///
/// # Errors
/// When the namespace is not bound or the write fails.
pub async fn kv_put(
    env: &Env,
    binding: &str,
    key: &str,
    value: &str,
    expiration: Option<u64>,
) -> Result<()> {
    let kv = get(env, binding)?;
    // Unix seconds are far below 2^53: exact as a JS number.
    #[allow(clippy::cast_precision_loss)]
    let options = match expiration {
        Some(at) => object(&[("expiration", JsValue::from_f64(at as f64))])?,
        None => Object::new(),
    };
    call(&kv, "put", &[&key.into(), &value.into(), &options.into()]).await?;
    Ok(())
}

/// The value a Durable Object stored under `key` (`undefined` when none).
///
/// # Errors
/// When the storage read fails.
pub async fn storage_get(storage: &Storage, key: &str) -> Result<JsValue> {
    let values = storage.get_multiple(vec![key]).await?;
    Ok(values.get(&JsValue::from_str(key)))
}

/// A stored value that is a JS object, as the JSON text of it.
///
/// # Errors
/// When the value cannot be written as JSON.
pub fn stringify(value: &JsValue) -> Result<String> {
    Ok(JSON::stringify(value)?.into())
}

/// The JS object of JSON text (to store as an object, as the state was always stored).
///
/// # Errors
/// When `text` is not JSON.
pub fn to_object(text: &str) -> Result<JsValue> {
    Ok(JSON::parse(text)?)
}

/// POSTs `body` to `url` on the Durable Object called `name` in the namespace bound as
/// `binding`, and returns the answer's status and text.
///
/// # Errors
/// When the namespace is not bound or the object cannot be reached.
pub async fn post_to_object(
    env: &Env,
    binding: &str,
    name: &str,
    url: &str,
    body: &str,
) -> Result<(u16, String)> {
    let stub: JsValue = env
        .durable_object(binding)?
        .id_from_name(name)?
        .get_stub()?
        .into_rpc();
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    let request = web_sys::Request::new_with_str_and_init(url, &init)?;
    let response: web_sys::Response = call(&stub, "fetch", &[&request]).await?.unchecked_into();
    Ok((response.status(), text(&response).await?))
}

/// Sends `request` with the runtime's `fetch`.
///
/// # Errors
/// When the request fails (network, DNS); an answer of any status is `Ok`.
pub async fn fetch(request: &web_sys::Request) -> Result<web_sys::Response> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(JsFuture::from(global.fetch_with_request(request))
        .await?
        .unchecked_into())
}

/// A response's body as text.
///
/// # Errors
/// When the body cannot be read.
pub async fn text(response: &web_sys::Response) -> Result<String> {
    Ok(JsFuture::from(response.text()?)
        .await?
        .as_string()
        .unwrap_or_default())
}
