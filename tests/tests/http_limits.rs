//! The front desk's limits answer clearly and never stall other clients: a client that never
//! finishes its headers is cut off after the header-read timeout; connections beyond
//! `http_connections_max` are answered 503 and closed while the open ones keep working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::{Engine, EngineOptions};

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let options =
        EngineOptions { config_extra: "http_header_read_timeout_ms = 300".into(), ..Default::default() };
    let engine = Engine::start(options);
    let mut slow = TcpStream::connect(engine.http).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    // The read ends (EOF, or a 408 then EOF) when the engine gives up on the headers.
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "disconnected after {waited:?}");
    assert!(rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"));
    // Meanwhile and afterwards the engine serves others.
    assert_eq!(engine.client_a().get("products").status, 200);
}

#[test]
fn connections_over_the_bound_get_503_and_the_open_ones_keep_working() {
    let options = EngineOptions { config_extra: "http_connections_max = 2".into(), ..Default::default() };
    let engine = Engine::start(options);
    let keep_alive = |stream: &mut TcpStream| {
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buffer = [0u8; 512];
        let read = stream.read(&mut buffer).unwrap();
        assert!(buffer[..read].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..read]));
    };
    let mut first = TcpStream::connect(engine.http).unwrap();
    let mut second = TcpStream::connect(engine.http).unwrap();
    keep_alive(&mut first);
    keep_alive(&mut second);
    let mut third = TcpStream::connect(engine.http).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    third.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many HTTP connections"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "), "{answer}");
    keep_alive(&mut first);
    drop(second);
    // A freed slot is usable again once the engine has noticed the close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(engine.http).unwrap();
        again.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        again.read_to_end(&mut reply).unwrap();
        if reply.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
    }
}

#[test]
fn a_body_that_never_arrives_is_answered_408_and_unauthenticated_bodies_are_not_read() {
    let options =
        EngineOptions { config_extra: "http_body_read_timeout_ms = 300".into(), ..Default::default() };
    let engine = Engine::start(options);
    let target = format!("/v5/iot/{}/products", tests::PROJECT_A.project_id);
    let mut stalled = TcpStream::connect(engine.http).unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        tests::PROJECT_A.token
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buffer = [0u8; 1024];
    let read = stalled.read(&mut buffer).unwrap();
    let answer = String::from_utf8_lossy(&buffer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("IOTDA.000008"), "{answer}");

    // Without a credential the engine answers 401 at once, without waiting for the body.
    let mut anonymous = TcpStream::connect(engine.http).unwrap();
    anonymous
        .write_all(format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").as_bytes())
        .unwrap();
    anonymous.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let read = anonymous.read(&mut buffer).unwrap();
    let answer = String::from_utf8_lossy(&buffer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}
