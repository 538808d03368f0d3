//! The dashboard's files, embedded at build time, served with headers that let the page run
//! its own script and style and nothing else: no inline script, no other origin, no framing.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the page may load and run: its own files, calls to its own origin, nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The page and its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { file("image/svg+xml", ICON) }),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = super::INDEX;
        for needed in ["/assets/app.js", "/assets/app.css"] {
            assert!(page.contains(needed), "{needed}");
        }
        // nothing from elsewhere, and no inline script or style for the policy to block
        for banned in [
            "http://", "https://", "<script>", "<style", " style=", "onclick",
        ] {
            assert!(!page.contains(banned), "{banned}");
        }
        assert!(!super::SCRIPT.contains("innerHTML"), "text goes in as text");
        assert!(!super::SCRIPT.contains("eval("));
    }
}
