//! The console's files as an HTTP client sees them, over HTTP and HTTPS: `index.html` at
//! `/console` and `/console/`, modules and stylesheet with their types, a strict
//! Content-Security-Policy on every file, nothing outside the embedded files, and no
//! credentials needed (the pages hold no data).

use tests::tls::TlsClient;
use tests::{http_request, Engine, EngineOptions};

fn header<'a>(response: &'a tests::HttpResponse, name: &str) -> Option<&'a str> {
    response.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn the_console_is_served_with_its_types_and_a_strict_policy() {
    let engine = Engine::start(EngineOptions::default());
    for path in ["/console", "/console/", "/console/index.html"] {
        let page = http_request(engine.http, "GET", path, &[], b"");
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        assert_eq!(header(&page, "content-type"), Some("text/html; charset=utf-8"), "{path}");
        let policy = header(&page, "content-security-policy").unwrap_or_default();
        assert!(policy.starts_with("default-src 'self'"), "{path}: {policy}");
        assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
        assert!(page.text().contains("/console/js/main.js"), "{}", page.text());
    }
    let module = http_request(engine.http, "GET", "/console/js/main.js", &[], b"");
    assert_eq!(module.status, 200);
    assert_eq!(header(&module, "content-type"), Some("text/javascript; charset=utf-8"));
    assert!(header(&module, "content-security-policy").is_some());
    let style = http_request(engine.http, "GET", "/console/console.css", &[], b"");
    assert_eq!(header(&style, "content-type"), Some("text/css; charset=utf-8"));
    // Nothing but the embedded files: no directory walk, no source, no README.
    for path in ["/console/../Cargo.toml", "/console/%2e%2e/Cargo.toml", "/console/README.md", "/console/js/"]
    {
        let missing = http_request(engine.http, "GET", path, &[], b"");
        assert_eq!(missing.status, 404, "{path}: {}", missing.text());
    }
    let posted = http_request(engine.http, "POST", "/console/index.html", &[], b"");
    assert_eq!(posted.status, 405);
    let head = http_request(engine.http, "HEAD", "/console/", &[], b"");
    assert_eq!(head.status, 200);
    let length: usize = header(&head, "content-length").and_then(|l| l.parse().ok()).unwrap_or_default();
    assert!(length > 0 && head.body.is_empty(), "HEAD: the length of the page, no body");

    // HTTPS serves the same files.
    let https = engine.https.expect("the HTTPS listener is on");
    let tls = TlsClient::new(&engine.data_dir.join("tls/ca.pem"), None);
    let page = tls.https_get(https, "/console/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.to_ascii_lowercase().contains("content-security-policy: default-src 'self'"), "{page}");
}
