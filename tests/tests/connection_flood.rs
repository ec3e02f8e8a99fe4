//! A flood of MQTT connections that never send a CONNECT must not starve the REST API
//! (regression: 24,000 half-open connections against a 20,000 open-files limit made
//! `GET /health` time out and REST accepts fail with EMFILE until the CONNECT timeout reaped
//! them). The engine runs here with a lowered open-files limit so the flood fits in a test.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::mqtt::MqttDevice;
use tests::{register_meter_devices, Engine, EngineOptions};

/// The engine's open-files limit: the plan gives MQTT 500 of them, REST 404.
const OPEN_FILES: u64 = 1000;
/// Half-open connections the attacker holds: three times the engine's descriptors.
const FLOOD_CONNECTIONS: usize = 3000;
/// A REST call that takes longer than this during the flood counts as starved (the
/// regression's calls hung until the 10 s CONNECT timeout reaped the flood).
const ANSWER_DEADLINE: Duration = Duration::from_secs(3);

fn flooded_engine() -> Engine {
    Engine::start(EngineOptions {
        shards: 2,
        open_files_limit: Some(OPEN_FILES),
        // Neither timeout may be what saves the REST API here, only the bounds (the waiting
        // connections' bound is the default, which the engine lowers to fit the limit).
        config_extra: "mqtt_first_byte_timeout_ms = 60000\nmqtt_connect_timeout_ms = 60000\n".into(),
        ..Default::default()
    })
}

/// A GET with its own deadline; `None` if it failed or took longer. `path` is absolute
/// (`/health`) or relative to the project (`devices`).
fn get_within(engine: &Engine, path: &str) -> Option<u16> {
    let started = Instant::now();
    let response = std::thread::scope(|scope| {
        let call = scope.spawn(|| match path.starts_with('/') {
            true => tests::http_request(engine.http, "GET", path, &[], b"").status,
            false => engine.client_a().get(path).status,
        });
        while !call.is_finished() && started.elapsed() < ANSWER_DEADLINE {
            std::thread::sleep(Duration::from_millis(5));
        }
        call.is_finished().then(|| call.join().ok()).flatten()
    });
    response.filter(|_| started.elapsed() < ANSWER_DEADLINE)
}

/// The attacker holds FLOOD_CONNECTIONS sockets in this process: raise its soft limit.
fn raise_own_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    assert!(
        limit.rlim_cur > FLOOD_CONNECTIONS as u64 + 200,
        "the test needs more open files: {}",
        limit.rlim_cur
    );
}

#[test]
fn half_open_mqtt_connections_never_starve_the_rest_api() {
    raise_own_open_files_limit();
    let engine = flooded_engine();
    register_meter_devices(&engine.client_a(), &["d1"], "flood-secret-1");
    let mqtt = engine.mqtt;
    // A steady attacker: opens connections that say nothing and never closes one, for as long
    // as the checks run (bounded by FLOOD_CONNECTIONS and a deadline).
    let flooding = Arc::new(AtomicBool::new(true));
    let attacker = std::thread::spawn({
        let flooding = flooding.clone();
        move || {
            let mut held: Vec<TcpStream> = Vec::with_capacity(FLOOD_CONNECTIONS);
            let deadline = Instant::now() + Duration::from_secs(60);
            while flooding.load(Ordering::Relaxed) && Instant::now() < deadline {
                if held.len() >= FLOOD_CONNECTIONS {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                match TcpStream::connect_timeout(&mqtt, Duration::from_millis(500)) {
                    Ok(stream) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            held.len()
        }
    });
    // Let the flood pass the engine's open-files limit before checking.
    std::thread::sleep(Duration::from_millis(1500));
    for round in 0..20 {
        assert_eq!(get_within(&engine, "/health"), Some(200), "GET /health starved in round {round}");
        assert_eq!(get_within(&engine, "devices"), Some(200), "ListDevices starved in round {round}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // While the flood goes on: the bounds hold, and the oldest waiting connections went.
    let metrics = tests::http_request(engine.http, "GET", "/metrics", &[], b"").text();
    let sum_of = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        metrics.contains("ringiot_mqtt_connections_max 500\n"),
        "the derived bound is exported:\n{metrics}"
    );
    let waiting = sum_of("ringiot_mqtt_connections_waiting{");
    assert!(waiting <= 250.0, "at most 125 wait per shard (half of each shard's share): {waiting}");
    let evicted = sum_of("ringiot_mqtt_connections_closed_before_login_total{reason=\"evicted\"");
    assert!(evicted > 0.0, "no waiting connection was evicted:\n{metrics}");
    // A device still gets in: its CONNECT comes at once, long before it is the oldest waiting.
    drop(MqttDevice::login(mqtt, "meter_d1", "flood-secret-1"));
    flooding.store(false, Ordering::Relaxed);
    let held = attacker.join().unwrap();
    assert!(held > OPEN_FILES as usize, "the flood held only {held} connections");
}

/// Regression: glommio accepts without waiting while the backlog holds connections, so a burst
/// larger than the waiting bound was accepted in one go and evicted connections whose CONNECT
/// sat unread in their socket. The engine is paused while the burst queues up, so the whole
/// burst — devices first, then silent connections — is in the backlog when it resumes.
#[test]
fn devices_queued_before_a_burst_of_silent_connections_are_not_evicted() {
    raise_own_open_files_limit();
    let engine = Engine::start(EngineOptions {
        shards: 2,
        config_extra: "mqtt_connecting_per_shard_max = 50\n".into(),
        ..Default::default()
    });
    let nodes: Vec<String> = (0..10).map(|index| format!("b{index}")).collect();
    register_meter_devices(&engine.client_a(), &nodes, "burst-secret-1");
    let pid = engine.pid() as i32;
    // SAFETY: signals to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mut devices: Vec<MqttDevice> = nodes
        .iter()
        .map(|node| {
            let mut device = MqttDevice::open(engine.mqtt);
            let connect = tests::mqtt::iotda_connect(&format!("meter_{node}"), "burst-secret-1", 1);
            device.send(|out| connect.write(out).map(drop).unwrap());
            device
        })
        .collect();
    let silent: Vec<TcpStream> = (0..600).filter_map(|_| TcpStream::connect(engine.mqtt).ok()).collect();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    for (node, device) in nodes.iter().zip(&mut devices) {
        match device.next_packet(Duration::from_secs(20)) {
            Some(mqttbytes::v4::Packet::ConnAck(connack)) => {
                assert_eq!(connack.code as u8, 0, "meter_{node} refused")
            }
            other => panic!("meter_{node}: expected a CONNACK, got {other:?} (evicted unread?)"),
        }
    }
    drop(silent);
}

/// Regression (CI): 1,000 concurrent REST callers got 503 "too many HTTP connections" once the
/// REST reserve was spent, though no device used the MQTT share. REST now borrows up to half
/// of the MQTT share while devices leave it unused — and is still bounded.
#[test]
fn rest_clients_beyond_the_reserve_borrow_what_devices_leave_unused() {
    use std::io::{Read, Write};
    raise_own_open_files_limit();
    let engine = flooded_engine();
    // The plan: MQTT 500, REST 404. Up to 250 more can be borrowed while no device is connected.
    let mut held = Vec::new();
    let (mut served, mut refused) = (0, 0);
    for _ in 0..800 {
        let mut stream = TcpStream::connect(engine.http).expect("the REST listener accepts");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nhost: ringiot\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("an answer");
        match &head {
            b"HTTP/1.1 200" => served += 1,
            b"HTTP/1.1 503" => refused += 1,
            other => panic!("unexpected answer {:?}", String::from_utf8_lossy(other)),
        }
        held.push(stream);
    }
    assert!(served >= 600, "only {served} REST connections were served at once ({refused} refused)");
    assert!(refused > 0, "REST connections are still bounded: {served} served");
    // Borrowed descriptors come back when their connections close.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get_within(&engine, "/health"), Some(200));
}
