//! The HTTP front desk, before any resource logic: `/health`, `X-Request-Id` on every answer,
//! 404 / 405 for paths and methods that do not exist, the 1 MiB body limit, invalid JSON, and
//! several requests on one keep-alive connection.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tests::{http_request, Engine, EngineOptions, HttpResponse, PROJECT_A};

/// The engine's default `http_body_bytes_max`.
const BODY_BYTES_MAX: usize = 1024 * 1024;

fn token_headers() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into()), ("X-Auth-Token".into(), PROJECT_A.token.into())]
}

#[test]
fn health_answers_without_credentials_and_reports_the_shard_count() {
    let engine = Engine::start(EngineOptions { shards: 2, ..EngineOptions::default() });

    let response = http_request(engine.http, "GET", "/health", &[], b"");

    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), serde_json::json!({"status": "ok", "shards": 2}));
    assert_eq!(response.header("Content-Type"), Some("application/json"));
}

#[test]
fn every_answer_carries_its_own_request_id() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();

    let answers = [
        http_request(engine.http, "GET", "/health", &[], b""),
        client.get("products"),
        client.get("products/no-such-product"),
        http_request(engine.http, "GET", "/v5/iot/proj_a/products", &[], b""),
        http_request(engine.http, "GET", "/no/such/path", &[], b""),
        client.call("POST", "products", b"{not json"),
    ];

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 404, 401, 404, 400]);
    let mut seen = HashSet::new();
    for answer in &answers {
        let request_id = answer
            .header("X-Request-Id")
            .unwrap_or_else(|| panic!("no X-Request-Id on a {} answer: {:?}", answer.status, answer.headers));
        assert!(!request_id.is_empty());
        assert!(seen.insert(request_id.to_owned()), "X-Request-Id {request_id} was handed out twice");
    }
}

#[test]
fn unknown_paths_are_404_and_unknown_methods_405() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();

    for answer in [
        http_request(engine.http, "GET", "/", &[], b""),
        http_request(engine.http, "GET", "/v4/iot/proj_a/products", &token_headers(), b""),
        client.get("no-such-resource"),
        client.get("products/some-product/no-such-child"),
    ] {
        assert_eq!(answer.status, 404, "{}", answer.text());
        assert_eq!(answer.error_code(), "IOTDA.000029");
    }

    for answer in [
        client.call("PATCH", "products", b"{}"),
        client.call("DELETE", "products", b""),
        client.call("POST", "devices/some-device", b"{}"),
        http_request(engine.http, "POST", "/health", &[], b""),
    ] {
        assert_eq!(answer.status, 405, "{}", answer.text());
        assert_eq!(answer.error_code(), "IOTDA.000029");
    }
}

#[test]
fn a_body_over_one_mebibyte_is_refused_with_413() {
    let engine = Engine::start(EngineOptions::default());
    let target = "/v5/iot/proj_a/products";

    let at_the_limit = json_object_of_exactly(BODY_BYTES_MAX);
    let answer = http_request(engine.http, "POST", target, &token_headers(), &at_the_limit);
    assert_ne!(answer.status, 413, "a body of exactly the limit is read: {}", answer.text());
    assert_eq!(answer.status, 400, "{}", answer.text());

    let over_the_limit = json_object_of_exactly(BODY_BYTES_MAX + 1);
    let answer = http_request(engine.http, "POST", target, &token_headers(), &over_the_limit);
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert!(answer.header("X-Request-Id").is_some());
    assert!(!answer.error_code().is_empty(), "413 still has an IoTDA error body: {}", answer.text());
}

/// `{"name":"aaa…"}` padded to exactly `bytes` bytes: valid JSON, but a name far too long.
fn json_object_of_exactly(bytes: usize) -> Vec<u8> {
    let frame = br#"{"name":""}"#.len();
    format!(r#"{{"name":"{}"}}"#, "a".repeat(bytes - frame)).into_bytes()
}

#[test]
fn a_body_that_is_not_json_is_400_iotda_000008() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();

    for body in [&b"{\"name\": \"meter\","[..], b"", b"not json at all", b"[1, 2"] {
        let answer = client.call("POST", "products", body);
        assert_eq!(answer.status, 400, "{:?}: {}", String::from_utf8_lossy(body), answer.text());
        assert_eq!(answer.error_code(), "IOTDA.000008", "{:?}", String::from_utf8_lossy(body));
        assert!(answer.json()["error_msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[test]
fn one_keep_alive_connection_carries_several_requests() {
    let engine = Engine::start(EngineOptions::default());
    let mut connection = TcpStream::connect(engine.http).expect("connecting");
    connection.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut received = Vec::new();

    connection.write_all(b"GET /health HTTP/1.1\r\nHost: ringiot\r\n\r\n").unwrap();
    let first = read_one_response(&mut connection, &mut received);
    let products = format!(
        "GET /v5/iot/proj_a/products HTTP/1.1\r\nHost: ringiot\r\nX-Auth-Token: {}\r\n\r\n",
        PROJECT_A.token
    );
    connection.write_all(products.as_bytes()).unwrap();
    let second = read_one_response(&mut connection, &mut received);

    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["status"], "ok");
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["page"]["count"], 0);
    assert_ne!(first.header("X-Request-Id"), second.header("X-Request-Id"));
    assert!(received.is_empty(), "bytes after the second answer: {:?}", String::from_utf8_lossy(&received));
}

/// Reads exactly one `Content-Length`-framed response off `connection`; bytes read past it stay
/// in `received` for the next call.
fn read_one_response(connection: &mut TcpStream, received: &mut Vec<u8>) -> HttpResponse {
    let head_end = loop {
        if let Some(position) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break position + 4;
        }
        read_more(connection, received);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let content_length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.parse().expect("numeric content-length"))
        .expect("a keep-alive answer is framed by Content-Length");
    while received.len() < head_end + content_length {
        read_more(connection, received);
    }
    let body = received[head_end..head_end + content_length].to_vec();
    received.drain(..head_end + content_length);
    HttpResponse { status: status.expect("a status line"), headers, body }
}

fn read_more(connection: &mut TcpStream, received: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let read = connection.read(&mut chunk).expect("reading an answer");
    assert!(read > 0, "the engine closed the keep-alive connection");
    received.extend_from_slice(&chunk[..read]);
}
