//! The one place that decides a request's route from its method and path. Both entries into the
//! Worker use it: `dispatch` (called by `edge/js/entry.mjs` for every request) and worker-build's
//! `fetch` handler (the panic-recovery path).

/// The verify API's path.
pub const VERIFY_PATH: &str = "/v1/keys/verify";
/// The sync route.
pub const SYNC_PATH: &str = "/_keyward/sync";
/// The health route.
pub const HEALTH_PATH: &str = "/_keyward/health";
/// Prefix of the internal routes, never proxied.
pub const INTERNAL_PREFIX: &str = "/_keyward";

/// Largest verify API body (8 KiB); more is a 413.
pub const MAX_VERIFY_BODY: usize = 8 * 1024;
/// Largest sync batch body (1 MiB), refused with 413 before its signature is even checked.
pub const MAX_SYNC_BODY: usize = 1024 * 1024;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/keys/verify`.
    Verify,
    /// `POST /_keyward/sync`.
    Sync,
    /// `GET|HEAD /_keyward/health`.
    Health,
    /// A known path with another method: 405 with this `Allow`.
    MethodNotAllowed(&'static str),
    /// Anything else under `/_keyward`: 404, never proxied.
    UnknownInternal,
    /// Everything else: verified and forwarded to the origin.
    Proxy,
}

impl Route {
    /// The route of a request with `method` and the raw (still percent-encoded) `path`.
    ///
    /// Internal routes are recognised on the raw path, and a path whose first segment is an
    /// encoded or cased spelling of `_keyward` is internal too: it is never proxied.
    #[must_use]
    pub fn of(method: &str, path: &str) -> Self {
        match (method, path) {
            ("POST", VERIFY_PATH) => Self::Verify,
            (_, VERIFY_PATH) => Self::MethodNotAllowed("POST"),
            ("POST", SYNC_PATH) => Self::Sync,
            (_, SYNC_PATH) => Self::MethodNotAllowed("POST"),
            ("GET" | "HEAD", HEALTH_PATH) => Self::Health,
            (_, HEALTH_PATH) => Self::MethodNotAllowed("GET, HEAD"),
            (_, p) if is_internal(p) => Self::UnknownInternal,
            _ => Self::Proxy,
        }
    }
}

/// Whether the first segment of `path`, normalised, is `_keyward` (whatever its spelling).
fn is_internal(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let first = first.split(';').next().unwrap_or("");
    match keyward_common::route::normalize_path(&format!("/{first}")) {
        Ok(p) => p.as_str().eq_ignore_ascii_case(INTERNAL_PREFIX),
        Err(_) => first.to_ascii_lowercase().contains("keyward"),
    }
}

/// The path of a serialized URL (`scheme://host[:port]/path?query#fragment`), percent-encoded
/// as sent.
#[must_use]
pub fn path_of(url: &str) -> &str {
    let (path, _) = path_and_query(url);
    path
}

/// The path and the query (without `?`) of a serialized URL.
#[must_use]
pub fn path_and_query(url: &str) -> (&str, Option<&str>) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let Some(start) = rest.find('/') else {
        let query = rest
            .find('?')
            .map(|i| &rest[i + 1..rest.find('#').unwrap_or(rest.len()).max(i + 1)]);
        return ("/", query);
    };
    let rest = &rest[start..];
    let rest = &rest[..rest.find('#').unwrap_or(rest.len())];
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_of_a_url_drops_origin_query_and_fragment() {
        assert_eq!(
            path_of("https://api.example.com/v1/keys/verify"),
            "/v1/keys/verify"
        );
        assert_eq!(path_of("http://127.0.0.1:8787/a/b?c=d#e"), "/a/b");
        assert_eq!(path_of("http://127.0.0.1:8787"), "/");
        assert_eq!(path_of("http://h/?q"), "/");
        assert_eq!(path_of("http://h/%5Fkeyward/x"), "/%5Fkeyward/x");
        assert_eq!(
            path_and_query("http://h/a?b=c&d#frag"),
            ("/a", Some("b=c&d"))
        );
        assert_eq!(path_and_query("http://h/a#f?x"), ("/a", None));
        assert_eq!(path_and_query("http://h?q=1"), ("/", Some("q=1")));
    }

    #[test]
    fn every_route_is_decided_here() {
        assert_eq!(Route::of("POST", "/v1/keys/verify"), Route::Verify);
        assert_eq!(
            Route::of("GET", "/v1/keys/verify"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(Route::of("POST", "/_keyward/sync"), Route::Sync);
        assert_eq!(Route::of("HEAD", "/_keyward/health"), Route::Health);
        assert_eq!(
            Route::of("POST", "/_keyward/health"),
            Route::MethodNotAllowed("GET, HEAD")
        );
        assert_eq!(Route::of("GET", "/v1/keys/verify/x"), Route::Proxy);
        assert_eq!(Route::of("GET", "/v1/items"), Route::Proxy);
    }

    #[test]
    fn any_spelling_of_the_internal_prefix_is_never_proxied() {
        for path in [
            "/_keyward",
            "/_keyward/x",
            "/_KEYWARD/sync",
            "/%5Fkeyward/x",
            "//_keyward/x",
            "/_keyward;x/y",
            "/_keyward%2Fsync",
        ] {
            assert_eq!(Route::of("GET", path), Route::UnknownInternal, "{path}");
        }
        assert_eq!(Route::of("GET", "/keywardish"), Route::Proxy);
    }
}
