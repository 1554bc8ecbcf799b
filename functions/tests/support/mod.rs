//! The handler tests' world: an app on the in-memory store, JWTs, and one call helper that
//! routes a request to its function through the operation table, as API Gateway would.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keyward_functions::operation::{OPERATIONS, Resolution, match_path, resolve};
use keyward_functions::store::memory::MemoryStore;
use keyward_functions::{App, Config, handle};
use lambda_http::Body;
use lambda_http::http::{self, HeaderMap, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub const ISS: &str = "https://auth.keyward.test/";
pub const AUD: &str = "keyward";

pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

pub fn config(extra: &[(&str, &str)], alg: &str, key: &str) -> Config {
    let mut pairs = vec![
        ("KEYWARD_TABLE", "t".to_owned()),
        ("KEYWARD_JWT_ALG", alg.to_owned()),
        ("KEYWARD_JWT_KEY", key.to_owned()),
        ("KEYWARD_JWT_ISSUER", ISS.to_owned()),
        ("KEYWARD_JWT_AUDIENCE", AUD.to_owned()),
    ];
    if alg != "HS256" {
        // With a public key there is nothing secret to derive cursors from: one must be given.
        pairs.push((
            "KEYWARD_CURSOR_SECRET",
            "cursor-secret-of-at-least-32-bytes-0123".to_owned(),
        ));
    }
    pairs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Config::from_lookup(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .unwrap()
}

pub struct World {
    pub app: App,
    pub store: Arc<MemoryStore>,
}

pub fn world_with(cfg: Config) -> World {
    let store = Arc::new(MemoryStore::new());
    World {
        app: App {
            config: Arc::new(cfg),
            store: store.clone(),
        },
        store,
    }
}

pub fn world() -> World {
    world_with(config(&[], "HS256", SECRET))
}

pub const ALL: [&str; 13] = [
    "api.key.create",
    "api.key.view",
    "api.key.update",
    "api.key.delete",
    "api.role.create",
    "api.role.view",
    "api.role.update",
    "api.role.delete",
    "api.usage.view",
    "api.webhook.view",
    "api.webhook.manage",
    "api.owner.view",
    "api.owner.update",
];

pub fn claims(ws: &str, perms: &[&str]) -> Value {
    json!({"sub": "admin", "workspace": ws, "permissions": perms, "iss": ISS, "aud": AUD,
           "exp": now() + 600})
}

pub fn hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token holding every management permission (`api.*`), like the local stack's admin token.
pub fn admin(ws: &str) -> String {
    hs(&claims(ws, &["api.*"]))
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// The function API Gateway would invoke for `method` + `path`, from the operation table. A path
/// no row has goes to a function anyway, as a misrouted request would, and must answer 404.
pub fn function_for(method: &str, path: &str) -> &'static str {
    let path = path.split('?').next().unwrap();
    match resolve(method, path, |_| true) {
        Resolution::Found(row, _) => row.function,
        _ => OPERATIONS
            .iter()
            .find(|r| match_path(r.path, path).is_some())
            .map_or("get-key", |r| r.function),
    }
}

impl World {
    pub async fn send(&self, function: &str, req: http::Request<Body>) -> Resp {
        let resp = handle(&self.app, function, req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = match resp.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8(b.clone()).unwrap(),
            _ => String::new(),
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = body.map_or(Body::Empty, |v| Body::Text(v.to_string()));
        self.send(function_for(method, path), b.body(body).unwrap())
            .await
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, Some(token), body, &[]).await
    }

    pub async fn create(&self, ws: &str, body: Value) -> Resp {
        let r = self
            .call(
                "POST",
                &format!("/v1/workspaces/{ws}/keys"),
                &admin(ws),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r
    }
}

pub fn id(r: &Resp) -> String {
    r.body["id"].as_str().unwrap().to_owned()
}

pub fn code(r: &Resp) -> &str {
    r.body["code"].as_str().unwrap_or("")
}
