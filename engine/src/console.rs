//! The operator console: static files (`engine/console/`, embedded at build time by
//! `build.rs`) served at `/console/…` on the REST listeners, without authentication — the
//! pages hold no data; they call the REST API with the token the operator signs in with.
//!
//! Invariants:
//! - Only embedded files are served: a path is looked up in the table, never on disk, so no
//!   `..` or symlink can reach anything else.
//! - Every answer carries a strict `Content-Security-Policy` (`default-src 'self'`: no inline
//!   script or style, no other origin), `X-Content-Type-Options: nosniff`,
//!   `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`; the pages escape what they
//!   show (text nodes only).
//! - `/console` and `/console/` serve `index.html`; the pages route by URL fragment
//!   (`#/devices/…`), so every page's URL is `/console/#/…` and needs no server route.

use http::{Method, StatusCode};

use crate::app::{ApiResponse, ApiResult};
use crate::http::error::ApiError;

/// Where the console is served.
pub const PREFIX: &str = "/console/";

/// The embedded files: (path under [`PREFIX`], bytes).
pub static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/console_files.rs"));

const HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
];

/// `GET` (or `HEAD`) of `file`, a path under [`PREFIX`] ("" = `index.html`).
pub fn serve(method: &Method, file: &str) -> ApiResult {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed(format!("{method} {PREFIX}{file}")));
    }
    let file = if file.is_empty() { "index.html" } else { file };
    let Some((name, bytes)) = FILES.iter().find(|(name, _)| *name == file) else {
        return Err(ApiError::NoRoute(format!("{PREFIX}{file}")));
    };
    Ok(ApiResponse {
        status: StatusCode::OK,
        // For HEAD too: hyper leaves the body out and keeps its Content-Length.
        body: bytes.to_vec(),
        content_type: content_type(name),
        headers: HEADERS,
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_embedded_files_are_served_with_their_type() {
        assert!(FILES.iter().any(|(name, _)| *name == "index.html"), "the console has an index.html");
        let index = serve(&Method::GET, "").expect("index.html");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(index.headers.iter().any(
            |(name, value)| *name == "content-security-policy" && value.starts_with("default-src 'self'")
        ));
        assert!(serve(&Method::GET, "../Cargo.toml").is_err());
        assert!(serve(&Method::GET, "no-such-file.js").is_err());
        assert!(serve(&Method::POST, "index.html").is_err());
        for (name, _) in FILES {
            assert_ne!(content_type(name), "application/octet-stream", "{name} has a known type");
        }
    }
}
