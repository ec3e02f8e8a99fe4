//! Hostile TLS clients: half-finished handshakes by the hundred, one that stops mid-handshake,
//! a "ClientHello" of random bytes, plain MQTT and plain HTTP sent to the TLS ports. The
//! handshake is bounded like the CONNECT read (first-byte and connect timeouts, a size cap),
//! failures are counted by reason, and the shards keep serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::mqtt::MqttDevice;
use tests::tls::TlsClient;
use tests::{Engine, EngineOptions};

const SECRET: &str = "hostile-secret-1";
const HALF_HANDSHAKES: usize = 500;

fn metric(engine: &Engine, series: &str) -> f64 {
    let text = tests::http_request(engine.http, "GET", "/metrics", &[], b"").text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The first flight of a real TLS client (its ClientHello).
fn client_hello(tls: &TlsClient) -> Vec<u8> {
    let mut connection = tls.connection().unwrap();
    let mut hello = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut hello).unwrap();
    }
    hello
}

fn random_bytes(count: usize) -> Vec<u8> {
    // xorshift: deterministic garbage is enough, and a failure can be replayed.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Whether the server closes `stream` within `timeout` (EOF or reset; data is skipped).
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error)
                if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn hostile_handshakes_are_bounded_counted_and_disturb_no_one() {
    let engine = Engine::start(EngineOptions {
        shards: 2,
        config_extra: "mqtt_first_byte_timeout_ms = 1500\nmqtt_connect_timeout_ms = 3000\n".into(),
        ..Default::default()
    });
    let client = engine.client_a();
    tests::register_meter_devices(&client, &["steady", "late"], SECRET);
    let tls = TlsClient::new(&engine.data_dir.join("tls/ca.pem"), None);
    let address = engine.mqtt_tls.unwrap();
    let mut steady = MqttDevice::login_tls(address, &tls, "meter_steady", SECRET);

    // 500 connections that sent half a ClientHello, and one that sent all of it and then
    // stopped (it never answers the server's flight).
    let hello = client_hello(&tls);
    let mut held: Vec<TcpStream> = (0..HALF_HANDSHAKES)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream.write_all(&hello[..hello.len() / 2]).unwrap();
            stream
        })
        .collect();
    let mut stopped = TcpStream::connect(address).unwrap();
    stopped.write_all(&hello).unwrap();
    // Garbage, plain MQTT and plain HTTP on the TLS ports: answered with an alert or closed.
    let mut garbage = TcpStream::connect(address).unwrap();
    garbage.write_all(&random_bytes(512)).unwrap();
    let mut plain_mqtt = TcpStream::connect(address).unwrap();
    plain_mqtt.write_all(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0]).unwrap();
    let https = engine.https.unwrap();
    let mut plain_http = TcpStream::connect(https).unwrap();
    plain_http.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    for (name, stream) in
        [("random bytes", &mut garbage), ("plain MQTT", &mut plain_mqtt), ("plain HTTP", &mut plain_http)]
    {
        assert!(closed_within(stream, Duration::from_secs(2)), "{name} on a TLS port was not closed at once");
    }

    // Meanwhile everyone else is served at once: a new TLS login, a command to the steady
    // device, HTTPS.
    let started = Instant::now();
    let _late = MqttDevice::login_tls(address, &tls, "meter_late", SECRET);
    assert!(tls.https_get(https, "/health").contains("200 OK"));
    std::thread::scope(|scope| {
        let call = scope.spawn(|| client.post("devices/meter_steady/commands", &json!({"paras": {}})));
        assert_eq!(
            steady.answer_commands("meter_steady", br#"{"result_code":0}"#, 1, Duration::from_secs(5)).len(),
            1
        );
        assert_eq!(call.join().unwrap().status, 200);
    });
    assert!(started.elapsed() < Duration::from_secs(2), "served only after {:?}", started.elapsed());

    // The half-finished handshakes are closed by the connect timeout (3 s from connecting).
    assert!(closed_within(&mut stopped, Duration::from_secs(6)), "the stalled handshake was never closed");
    let still_open = held
        .iter_mut()
        .map(|stream| closed_within(stream, Duration::from_millis(50)))
        .filter(|closed| !closed)
        .count();
    assert_eq!(still_open, 0, "{still_open} half handshakes still open after the connect timeout");
    let failed = |reason: &str| {
        metric(&engine, &format!("ringiot_tls_handshakes_total{{listener=\"mqtt\",result=\"{reason}\"}}"))
    };
    assert!(failed("timeout") >= (HALF_HANDSHAKES + 1) as f64, "timeouts: {}", failed("timeout"));
    assert!(failed("protocol") >= 2.0, "protocol failures: {}", failed("protocol"));
    let https_failed =
        metric(&engine, "ringiot_tls_handshakes_total{listener=\"https\",result=\"protocol\"}");
    assert!(https_failed >= 1.0, "plain HTTP on the HTTPS port was not counted");
    drop(steady);
}

/// A client that sends more handshake than any real one does is cut off at the size cap.
#[test]
fn an_oversized_handshake_is_cut_off() {
    let engine = Engine::start(EngineOptions::default());
    let address = engine.mqtt_tls.unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    // A TLS record header announcing a 16 KiB handshake record, then endless valid-looking
    // records: never a complete ClientHello that rustls could refuse early.
    let mut refused = false;
    for _ in 0..64 {
        let mut record = vec![0x16, 0x03, 0x01, 0x40, 0x00];
        record.extend(std::iter::repeat_n(0u8, 0x4000));
        if stream.write_all(&record).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused || closed_within(&mut stream, Duration::from_secs(3)), "a 1 MiB handshake was read on");
    let too_large = metric(&engine, "ringiot_tls_handshakes_total{listener=\"mqtt\",result=\"too_large\"}");
    let protocol = metric(&engine, "ringiot_tls_handshakes_total{listener=\"mqtt\",result=\"protocol\"}");
    assert!(too_large + protocol >= 1.0, "the oversized handshake was not counted");
}

/// Regression: over TLS, the CONNECT deadline was the socket's read timeout, which every byte
/// re-armed — a TLS record trickled in byte by byte held the connection for hours. The
/// deadline now races the read.
#[test]
fn a_record_trickled_in_byte_by_byte_does_not_outlive_the_connect_timeout() {
    let engine = Engine::start(EngineOptions {
        config_extra: "mqtt_connect_timeout_ms = 2000\n".into(),
        ..Default::default()
    });
    let tls = TlsClient::new(&engine.data_dir.join("tls/ca.pem"), None);
    let connected = Instant::now();
    let mut socket = TcpStream::connect(engine.mqtt_tls.unwrap()).unwrap();
    let mut connection = tls.connection().unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).unwrap();
    }
    // An application-data record header announcing 1,000 bytes, then one byte every 300 ms.
    socket.write_all(&[23, 3, 3, 0x03, 0xe8]).unwrap();
    let mut closed_after = None;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        if socket.write_all(&[0]).is_err() || closed_within(&mut socket, Duration::from_millis(1)) {
            closed_after = Some(connected.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the trickling connection was still open after 9 s");
    assert!(closed_after < Duration::from_secs(4), "closed only after {closed_after:?}");
}
