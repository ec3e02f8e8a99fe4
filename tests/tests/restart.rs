//! Restarting on the same ports with devices (plain and TLS) and HTTP(S) clients connected
//! (regression: the start-up check that refuses a port another process holds tripped over the
//! previous run's lingering connections, so a restart failed for about a minute after SIGTERM
//! or kill -9), while a port another *live* process listens on is still refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use tests::mqtt::MqttDevice;
use tests::tls::TlsClient;
use tests::{http_request, register_meter_devices, Engine, EngineOptions};

const SECRET: &str = "restart-secret-01";
const DEVICES: usize = 20;

/// The four listeners' addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ports {
    http: SocketAddr,
    mqtt: SocketAddr,
    https: SocketAddr,
    mqtt_tls: SocketAddr,
}

impl Ports {
    fn of(engine: &Engine) -> Ports {
        Ports {
            http: engine.http,
            mqtt: engine.mqtt,
            https: engine.https.expect("HTTPS is on"),
            mqtt_tls: engine.mqtt_tls.expect("MQTT over TLS is on"),
        }
    }
}

/// An engine on fixed ports (the ones a first start on port 0 got) and a kept data dir.
fn options_on(ports: Ports) -> EngineOptions {
    let flags = [
        ("--http-listen", ports.http),
        ("--mqtt-listen", ports.mqtt),
        ("--https-listen", ports.https),
        ("--mqtt-tls-listen", ports.mqtt_tls),
    ];
    EngineOptions {
        shards: 2,
        args: flags.iter().flat_map(|(flag, address)| [flag.to_string(), address.to_string()]).collect(),
        ..Default::default()
    }
}

fn tls_client(data_dir: &Path) -> TlsClient {
    TlsClient::new(&data_dir.join("tls/ca.pem"), None)
}

/// What a busy engine has open when it goes down: logged-in devices, keep-alive HTTP clients
/// (one mid-conversation), and connections that already closed from the client side.
struct Traffic {
    _devices: Vec<MqttDevice>,
    _keep_alive_clients: Vec<TcpStream>,
}

fn open_traffic(engine: &Engine) -> Traffic {
    // Half the devices over TLS.
    let tls = tls_client(&engine.data_dir);
    let devices = (0..DEVICES)
        .map(|index| match index % 2 {
            0 => MqttDevice::login(engine.mqtt, &format!("meter_n{index}"), SECRET),
            _ => MqttDevice::login_tls(engine.mqtt_tls.unwrap(), &tls, &format!("meter_n{index}"), SECRET),
        })
        .collect();
    let mut keep_alive_clients = Vec::new();
    for _ in 0..4 {
        let mut client = TcpStream::connect(engine.http).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        client.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        keep_alive_clients.push(client);
    }
    // Connections the clients closed themselves: the engine's side lingers in TIME_WAIT.
    for _ in 0..20 {
        assert_eq!(http_request(engine.http, "GET", "/health", &[], b"").status, 200);
        assert!(tls.https_get(engine.https.unwrap(), "/health").contains("200 OK"));
    }
    Traffic { _devices: devices, _keep_alive_clients: keep_alive_clients }
}

/// Starts again on the same ports and data dir at once, and checks it serves: the devices are
/// still registered and log in again.
fn restart_at_once(data_dir: &Path, ports: Ports, how: &str) -> Engine {
    let started = Instant::now();
    let engine = Engine::start_on(data_dir, &options_on(ports))
        .unwrap_or_else(|stderr| panic!("the restart after {how} on the same ports failed:\n{stderr}"));
    eprintln!("after {how}: serving again on the same ports in {:?}", started.elapsed());
    assert_eq!(Ports::of(&engine), ports);
    assert_eq!(http_request(engine.http, "GET", "/health", &[], b"").status, 200);
    // The generated certificate is reused: clients that trust the first start's CA connect.
    let tls = tls_client(data_dir);
    assert!(tls.https_get(ports.https, "/health").contains("200 OK"));
    for index in 0..DEVICES {
        let device_id = format!("meter_n{index}");
        drop(match index % 2 {
            0 => MqttDevice::login(engine.mqtt, &device_id, SECRET),
            _ => MqttDevice::login_tls(ports.mqtt_tls, &tls, &device_id, SECRET),
        });
    }
    engine
}

fn first_engine(data_dir: &Path) -> Engine {
    let engine = Engine::start_on(data_dir, &EngineOptions { shards: 2, ..Default::default() }).unwrap();
    let nodes: Vec<String> = (0..DEVICES).map(|index| format!("n{index}")).collect();
    register_meter_devices(&engine.client_a(), &nodes, SECRET);
    engine
}

#[test]
fn same_port_restart_after_sigterm_with_devices_and_http_clients_connected() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut engine = first_engine(&data_dir);
    let ports = Ports::of(&engine);
    let traffic = open_traffic(&engine);
    assert!(engine.stop().success());
    let mut engine = restart_at_once(&data_dir, ports, "SIGTERM");
    // And once more, now that the first restart's own connections linger too.
    let second_traffic = open_traffic(&engine);
    assert!(engine.stop().success());
    drop(restart_at_once(&data_dir, ports, "a second SIGTERM"));
    drop((traffic, second_traffic));
}

#[test]
fn same_port_restart_after_kill_9_with_devices_and_http_clients_connected() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut engine = first_engine(&data_dir);
    let ports = Ports::of(&engine);
    let traffic = open_traffic(&engine);
    engine.kill9();
    let engine = restart_at_once(&data_dir, ports, "kill -9");
    let listed = engine.client_a().get("devices?limit=50");
    assert_eq!(listed.json()["devices"].as_array().map(Vec::len), Some(DEVICES), "{}", listed.text());
    drop(traffic);
}

#[test]
fn a_port_another_program_listens_on_is_refused() {
    // Not another ringiot: any listener, e.g. a broker, on the MQTT or the HTTP port.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = other.local_addr().unwrap();
    let temp = tempfile::tempdir().unwrap();
    for flag in ["--mqtt-listen", "--http-listen", "--mqtt-tls-listen", "--https-listen"] {
        let options = EngineOptions { args: vec![flag.into(), taken.to_string()], ..Default::default() };
        let stderr = match Engine::start_on(&temp.path().join(flag.trim_start_matches('-')), &options) {
            Ok(_) => panic!("the engine started on {taken}, where another program listens ({flag})"),
            Err(stderr) => stderr,
        };
        assert!(stderr.contains("in use") && stderr.contains(&taken.to_string()), "{flag}: {stderr}");
    }
    drop(other);
}
