//! The web console: its page and static files, built into the binary and served by the
//! `console` function at `/console` (rows `Console` and `ConsoleFile` of the operation table),
//! same origin as the API. Nothing is fetched from a CDN; the page calls the management API with
//! the token a person signs in with, so the files themselves are public and hold no data.

use std::convert::Infallible;

use keyward_common::preset::PRESET_ROLES;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response, service_fn};

use crate::operation::{Operation, Resolution, resolve};

/// The function (binary) that serves the console.
pub const FUNCTION: &str = "console";

/// The page's policy: only this origin's scripts, styles and API; no inline code, no framing,
/// no forms posting anywhere, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// A file of the console: its name under `/console/`, its media type and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// File name (one path segment).
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Contents (all text: served as such, never base64-encoded through API Gateway).
    pub text: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            text: include_str!(concat!("../console/", $name)),
        }
    };
}

/// Every file the console is made of (`functions/console/`). `presets.json` is generated from
/// [`PRESET_ROLES`], the list the CLI's `roles preset` uses.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("keys.js", JS),
    asset!("roles.js", JS),
    asset!("audit.js", JS),
    asset!("usage.js", JS),
    asset!("owners.js", JS),
    asset!("webhooks.js", JS),
];

/// The recommended roles as the console reads them: `[{name, description, permissions}]`.
#[must_use]
pub fn presets_json() -> String {
    let roles: Vec<serde_json::Value> = PRESET_ROLES
        .iter()
        .map(|(name, description, permissions)| {
            serde_json::json!({"name": name, "description": description, "permissions": permissions})
        })
        .collect();
    serde_json::Value::from(roles).to_string()
}

/// Answers one request for the console function: the page, a file, or a problem+json 404/405.
#[must_use]
pub fn respond(method: &str, path: &str) -> Response<Body> {
    let file = match resolve(method, path, |r| r.function == FUNCTION) {
        Resolution::Found(row, _) if row.op == Operation::Console => "index.html".to_owned(),
        Resolution::Found(_, params) => params.file.unwrap_or_default(),
        Resolution::MethodNotAllowed(allow) => {
            return problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{method} is not allowed here; use {}.", allow.join(", ")),
            );
        }
        Resolution::NotFound => String::new(),
    };
    if file == "presets.json" {
        return file_response("application/json", Body::Text(presets_json()));
    }
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => file_response(a.content_type, Body::Text(a.text.to_owned())),
        None => problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "The console has no such file.",
        ),
    }
}

/// The headers every console answer carries.
fn strict(b: lambda_http::http::response::Builder) -> lambda_http::http::response::Builder {
    b.header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin")
        // The files change with each deployment; revalidating keeps the page and its modules
        // of one version.
        .header(header::CACHE_CONTROL, "no-cache")
}

fn file_response(content_type: &str, body: Body) -> Response<Body> {
    strict(Response::builder())
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response<Body> {
    let mut b = strict(Response::builder())
        .status(status)
        .header(header::CONTENT_TYPE, keyward_common::problem::CONTENT_TYPE);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        b = b.header(header::ALLOW, "GET");
    }
    b.body(Body::Text(
        keyward_common::Problem::new(status.as_u16(), code, detail).to_json(),
    ))
    .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Runs the console function until the runtime stops it. It reads no configuration and talks
/// to no AWS service.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run() -> Result<(), lambda_http::Error> {
    crate::runtime::init_logging();
    lambda_http::run(service_fn(|req: Request| async move {
        let response = respond(req.method().as_str(), req.uri().path());
        tracing::info!(
            method = %req.method(),
            path = req.uri().path(),
            status = response.status().as_u16(),
            "console request"
        );
        Ok::<_, Infallible>(response)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn text(r: &Response<Body>) -> String {
        match r.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8(b.clone()).unwrap(),
            _ => String::new(),
        }
    }

    #[test]
    fn the_page_is_served_with_a_strict_policy_at_console_with_or_without_a_slash() {
        for path in ["/console", "/console/"] {
            let r = respond("GET", path);
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
            assert_eq!(
                header(&r, "content-security-policy"),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(header(&r, "x-content-type-options"), "nosniff");
            assert!(text(&r).contains("<script type=\"module\" src=\"/console/app.js\">"));
        }
    }

    #[test]
    fn every_file_has_its_media_type_and_unknown_files_are_404s() {
        for a in ASSETS {
            let r = respond("GET", &format!("/console/{}", a.name));
            assert_eq!(r.status(), 200, "{}", a.name);
            assert_eq!(header(&r, "content-type"), a.content_type, "{}", a.name);
            assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        }
        let r = respond("GET", "/console/nope.js");
        assert_eq!(r.status(), 404);
        assert_eq!(header(&r, "content-type"), "application/problem+json");
        assert_eq!(respond("POST", "/console/app.js").status(), 405);
    }

    #[test]
    fn no_file_holds_inline_script_or_style_or_reaches_another_origin() {
        for a in ASSETS {
            // The SVG namespace is a name, not an address anything is fetched from.
            let text = &a.text.replace("'http://www.w3.org/2000/svg'", "");
            let banned: &[&str] = match a.name.rsplit('.').next() {
                Some("html") => &["<style", " style=", " onclick=", " onload=", " onsubmit="],
                // Markup from strings would bypass the elements the views build.
                Some("js") => &[
                    "innerHTML",
                    "outerHTML",
                    "insertAdjacentHTML",
                    "eval(",
                    "new Function",
                ],
                _ => &[],
            };
            for b in banned.iter().chain(&["http://", "https://"]) {
                assert!(
                    !text.contains(b),
                    "{} contains {b:?}: the CSP refuses inline code and other origins",
                    a.name
                );
            }
            if a.name == "index.html" {
                assert_eq!(text.matches("<script").count(), 1);
                assert!(text.contains("src=\"/console/app.js\""));
            }
        }
    }

    #[test]
    fn the_presets_are_the_clis_recommended_roles() {
        let r = respond("GET", "/console/presets.json");
        assert_eq!(r.status(), 200);
        let roles: serde_json::Value = serde_json::from_str(&text(&r)).unwrap();
        let names: Vec<&str> = roles
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["administrator", "manager", "viewer"]);
        assert_eq!(roles[0]["permissions"], serde_json::json!(["api.*"]));
    }
}
