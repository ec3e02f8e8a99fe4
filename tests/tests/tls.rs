//! MQTT over TLS and X.509 device login, end to end: paho-mqtt (Python's ssl, TLS 1.2 and
//! 1.3) and rustls clients against the engine's generated CA, two shards so logins are handed
//! to their home shard with their TLS state.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tests::mqtt::{iotda_connect, MqttDevice};
use tests::tls::{device_certificate, device_certificate_v1, TlsClient};
use tests::{Engine, EngineOptions};

const SECRET: &str = "tls-secret-1";

fn ca_file(engine: &Engine) -> std::path::PathBuf {
    engine.data_dir.join("tls/ca.pem")
}

fn add(client: &tests::Client, node_id: &str, auth_info: Value) {
    let body = json!({"node_id": node_id, "product_id": "meter", "auth_info": auth_info});
    let response = client.post("devices", &body);
    assert_eq!(response.status, 201, "{node_id}: {}", response.text());
}

fn metric(engine: &Engine, series: &str) -> f64 {
    let text = tests::http_request(engine.http, "GET", "/metrics", &[], b"").text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Every login rule of spec §1.2/§7.2 through paho-mqtt, with a device that stays connected
/// over TLS throughout and still answers a command at the end (nothing disturbed it).
#[test]
fn paho_logs_in_over_tls_by_secret_and_by_certificate_and_the_rules_hold() {
    let Some(python) = tests::python::python_or_skip(&[("paho-mqtt", "paho.mqtt.client")]) else {
        return;
    };
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    tests::register_meter_devices(&client, &["secret", "bystander"], SECRET);
    let dir = tempfile::tempdir().unwrap();
    let primary = device_certificate(dir.path(), "primary", false);
    let secondary = device_certificate(dir.path(), "secondary", false);
    let stranger = device_certificate(dir.path(), "stranger", false);
    let expired = device_certificate(dir.path(), "expired", true);
    let version_1 = device_certificate_v1(dir.path(), "version1");
    add(
        &client,
        "x509",
        json!({"auth_type": "CERTIFICATES", "fingerprint": primary.sha256_hex.to_uppercase(),
               "secondary_fingerprint": secondary.sha1_hex}),
    );
    add(&client, "x509old", json!({"auth_type": "CERTIFICATES", "fingerprint": expired.sha256_hex}));
    add(&client, "x509v1", json!({"auth_type": "CERTIFICATES", "fingerprint": version_1.sha256_hex}));
    add(&client, "secure", json!({"secret": SECRET, "secure_access": true}));

    let tls_port = engine.mqtt_tls.expect("the MQTT TLS listener").port();
    let plain_port = engine.mqtt.port();
    let case = |name: &str,
                port: u16,
                device: &str,
                tls: Option<&str>,
                cert: Option<&tests::tls::DeviceCertificate>| {
        let secret = if device.starts_with("meter_x509") { Value::Null } else { json!(SECRET) };
        json!({"name": name, "port": port, "device_id": device, "secret": secret, "tls": tls,
               "cert": cert.map(|c| c.cert_file.display().to_string()),
               "key": cert.map(|c| c.key_file.display().to_string())})
    };
    let mut bystander = case("bystander", tls_port, "meter_bystander", Some("1.3"), None);
    bystander["stay"] = json!(true);
    let cases = vec![
        bystander,
        case("secret tls1.2", tls_port, "meter_secret", Some("1.2"), None),
        case("secret tls1.3", tls_port, "meter_secret", Some("1.3"), None),
        case("secret plain", plain_port, "meter_secret", None, None),
        case("x509 tls1.2", tls_port, "meter_x509", Some("1.2"), Some(&primary)),
        case("x509 tls1.3", tls_port, "meter_x509", Some("1.3"), Some(&primary)),
        case("x509 secondary sha1", tls_port, "meter_x509", Some("1.2"), Some(&secondary)),
        case("x509 wrong certificate", tls_port, "meter_x509", Some("1.3"), Some(&stranger)),
        case("x509 no certificate", tls_port, "meter_x509", Some("1.3"), None),
        case("x509 plain", plain_port, "meter_x509", None, None),
        case("x509 expired", tls_port, "meter_x509old", Some("1.2"), Some(&expired)),
        case("x509 version 1 tls1.2", tls_port, "meter_x509v1", Some("1.2"), Some(&version_1)),
        case("x509 version 1 tls1.3", tls_port, "meter_x509v1", Some("1.3"), Some(&version_1)),
        case("secure plain", plain_port, "meter_secure", None, None),
        case("secure tls", tls_port, "meter_secure", Some("1.2"), None),
    ];
    let expected = [
        ("bystander", 0),
        ("secret tls1.2", 0),
        ("secret tls1.3", 0),
        ("secret plain", 0),
        ("x509 tls1.2", 0),
        ("x509 tls1.3", 0),
        ("x509 secondary sha1", 0),
        ("x509 wrong certificate", 4),
        ("x509 no certificate", 4),
        ("x509 plain", 4),
        ("x509 expired", 4),
        ("x509 version 1 tls1.2", 0),
        ("x509 version 1 tls1.3", 0),
        ("secure plain", 5),
        ("secure tls", 0),
    ];
    let spec =
        json!({"host": "127.0.0.1", "ca": ca_file(&engine), "cases": cases, "wait_for_commands_s": 20});
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/paho_tls.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the paho TLS script");
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("a line from the script").expect("reading the script");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    for (name, code) in expected {
        let result = next();
        assert_eq!(result["name"], name, "{result}");
        assert_eq!(result["rc"], code, "{name}: {result}");
    }
    // The bystander, logged in over TLS before every refusal, still gets its command.
    let answer = client.post("devices/meter_bystander/commands", &json!({"paras": {"n": 1}}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["response"]["paras"]["echo"], json!({"n": 1}));
    assert_eq!(next()["name"], "bystander");
    assert_eq!(next()["done"], true);
    assert!(child.wait().unwrap().success());

    // ShowDevice names the fingerprints; lists never carry secrets or secondary secrets.
    let shown = client.get("devices/meter_x509").json();
    assert_eq!(shown["auth_info"]["auth_type"], "CERTIFICATES");
    assert_eq!(shown["auth_info"]["fingerprint"], primary.sha256_hex.to_uppercase());
    assert_eq!(shown["auth_info"]["secondary_fingerprint"], secondary.sha1_hex);
    assert_eq!(shown["auth_info"]["secure_access"], false);
    let listed = client.get("devices").text();
    assert!(!listed.contains(SECRET), "a list shows a secret: {listed}");

    assert!(metric(&engine, "ringiot_tls_handshakes_total{listener=\"mqtt\",result=\"ok\"}") >= 10.0);
}

/// A certificate that is not X.509 at all fails the handshake (no CONNACK), a key that does
/// not match the certificate too, and neither disturbs a device logged in over TLS.
#[test]
fn garbage_certificates_fail_the_handshake_and_disturb_no_one() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    tests::register_meter_devices(&client, &["steady"], SECRET);
    let dir = tempfile::tempdir().unwrap();
    let certificate = device_certificate(dir.path(), "device", false);
    add(&client, "x509", json!({"auth_type": "CERTIFICATES", "fingerprint": certificate.sha256_hex}));
    let address = engine.mqtt_tls.unwrap();
    let ca = ca_file(&engine);
    let mut steady = MqttDevice::login_tls(address, &TlsClient::new(&ca, None), "meter_steady", SECRET);
    steady.subscribe("$oc/devices/meter_steady/sys/commands/#", mqttbytes::QoS::AtLeastOnce, 1);

    let garbage = TlsClient::with_raw_certificate(&ca, b"\x30\x03garbage, not a certificate".to_vec());
    let refused = MqttDevice::connect_tls(address, &garbage, &iotda_connect("meter_x509", SECRET, 1));
    assert!(refused.is_err(), "a garbage certificate got a CONNACK: {:?}", refused.map(|(_, code)| code));
    // The real certificate's bytes with another key: the handshake signature does not verify.
    let stolen = TlsClient::with_raw_certificate(&ca, certificate.der.clone());
    let refused = MqttDevice::connect_tls(address, &stolen, &iotda_connect("meter_x509", SECRET, 1));
    assert!(refused.is_err(), "a certificate without its key logged in: {:?}", refused.map(|(_, code)| code));
    // And the rightful holder gets in.
    let holder = TlsClient::with_certificate(&ca, None, &certificate);
    let (_x509, code) =
        MqttDevice::connect_tls(address, &holder, &iotda_connect("meter_x509", "", 1)).unwrap();
    assert_eq!(code, 0);

    steady.answer_commands_in_background_check(&client);
    assert!(metric(&engine, "ringiot_tls_handshakes_total{listener=\"mqtt\",result=\"protocol\"}") >= 2.0);
}

trait AnswersOneCommand {
    fn answer_commands_in_background_check(&mut self, client: &tests::Client);
}

impl AnswersOneCommand for MqttDevice {
    /// Sends the device a command through the REST API and answers it from here.
    fn answer_commands_in_background_check(&mut self, client: &tests::Client) {
        std::thread::scope(|scope| {
            let call =
                scope.spawn(|| client.post("devices/meter_steady/commands", &json!({"paras": {"k": 2}})));
            let publish = self.next_publish(Duration::from_secs(10)).expect("the command");
            let request_id = tests::mqtt::request_id_of(&publish.topic).to_owned();
            let topic = format!("$oc/devices/meter_steady/sys/commands/response/request_id={request_id}");
            self.publish(&topic, br#"{"result_code":0,"paras":{"ok":true}}"#, mqttbytes::QoS::AtMostOnce, 0);
            let answer = call.join().unwrap();
            assert_eq!(answer.status, 200, "{}", answer.text());
            assert_eq!(answer.json()["response"]["paras"]["ok"], true);
        });
    }
}

/// 32 TLS devices over 2 shards: about half are accepted on a shard that is not their home,
/// so their socket and rustls's state move over the mesh after the CONNECT — every one gets
/// its command. Then one device's TLS session is taken over by a plain login, and back.
#[test]
fn tls_sessions_are_handed_to_their_home_shard_and_taken_over_across_transports() {
    const DEVICES: usize = 32;
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let nodes: Vec<String> = (0..DEVICES).map(|n| format!("t{n}")).collect();
    tests::register_meter_devices(&client, &nodes, SECRET);
    let tls = TlsClient::new(&ca_file(&engine), None);
    let address = engine.mqtt_tls.unwrap();
    let devices: Vec<_> = nodes
        .iter()
        .map(|node| {
            let device_id = format!("meter_{node}");
            let mut device = MqttDevice::login_tls(address, &tls, &device_id, SECRET);
            std::thread::spawn(move || {
                device.answer_commands(
                    &device_id,
                    br#"{"result_code":0,"paras":{"tls":true}}"#,
                    1,
                    Duration::from_secs(15),
                )
            })
        })
        .collect();
    for node in &nodes {
        let answer = client.post(&format!("devices/meter_{node}/commands"), &json!({"paras": {}}));
        assert_eq!(answer.status, 200, "{node}: {}", answer.text());
        assert_eq!(answer.json()["response"]["paras"]["tls"], true);
    }
    for device in devices {
        assert_eq!(device.join().unwrap().len(), 1);
    }
    let open: f64 = (0..2)
        .map(|shard| {
            metric(&engine, &format!("ringiot_tls_connections{{listener=\"mqtt\",shard=\"{shard}\"}}"))
        })
        .sum();
    assert!(open <= DEVICES as f64, "{open} TLS sessions counted for {DEVICES} devices");

    // Takeover: TLS → plain → TLS; each time the older connection is closed and the newest
    // one gets the command.
    let mut over_tls = MqttDevice::login_tls(address, &tls, "meter_t0", SECRET);
    let mut plain = MqttDevice::login(engine.mqtt, "meter_t0", SECRET);
    assert!(over_tls.is_closed_within(Duration::from_secs(5)), "the TLS session was not taken over");
    let mut again = MqttDevice::login_tls(address, &tls, "meter_t0", SECRET);
    assert!(plain.is_closed_within(Duration::from_secs(5)), "the plain session was not taken over");
    std::thread::scope(|scope| {
        let call = scope.spawn(|| client.post("devices/meter_t0/commands", &json!({"paras": {}})));
        assert_eq!(
            again.answer_commands("meter_t0", br#"{"result_code":0}"#, 1, Duration::from_secs(10)).len(),
            1
        );
        assert_eq!(call.join().unwrap().status, 200);
    });
}

/// Rotating a certificate: ResetFingerprint sets the primary or secondary fingerprint (an
/// empty secondary one removes it) and, with `force_disconnect`, ends the live session; a
/// SECRET device has no fingerprint to reset; UpdateDevice turns `secure_access` on.
#[test]
fn reset_fingerprint_rotates_certificates_and_update_device_sets_secure_access() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    tests::register_meter_devices(&client, &["plain"], SECRET);
    let dir = tempfile::tempdir().unwrap();
    let [old, new, spare] = ["old", "new", "spare"].map(|name| device_certificate(dir.path(), name, false));
    add(&client, "x509", json!({"auth_type": "CERTIFICATES", "fingerprint": old.sha256_hex}));
    let (ca, address) = (ca_file(&engine), engine.mqtt_tls.unwrap());
    let login = |certificate: &tests::tls::DeviceCertificate| {
        let tls = TlsClient::with_certificate(&ca, None, certificate);
        MqttDevice::connect_tls(address, &tls, &iotda_connect("meter_x509", "", 1)).unwrap()
    };
    let (mut connected, code) = login(&old);
    assert_eq!(code, 0);

    let reset = |body: Value| client.post("devices/meter_x509/reset-fingerprint", &body);
    let answer = reset(json!({"fingerprint": new.sha1_hex, "force_disconnect": true}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["fingerprint"], new.sha1_hex);
    assert!(connected.is_closed_within(Duration::from_secs(5)), "force_disconnect left the session up");
    assert_eq!(login(&old).1, 4, "the replaced certificate still logs in");
    let (mut connected, code) = login(&new);
    assert_eq!(code, 0);

    // A secondary fingerprint, without disconnecting; then removed again.
    let answer = reset(json!({"fingerprint": spare.sha256_hex, "fingerprint_type": "SECONDARY"}));
    assert_eq!(answer.json()["secondary_fingerprint"], spare.sha256_hex, "{}", answer.text());
    assert!(connected.ping(), "a reset without force_disconnect ended the session");
    assert_eq!(login(&spare).1, 0);
    assert_eq!(reset(json!({"fingerprint": "", "fingerprint_type": "SECONDARY"})).status, 200);
    assert_eq!(login(&spare).1, 4, "the removed secondary certificate still logs in");
    assert!(client.get("devices/meter_x509").json()["auth_info"].get("secondary_fingerprint").is_none());

    tests::assert_invalid(&reset(json!({"fingerprint": "12ab"})), "fingerprint");
    tests::assert_invalid(&reset(json!({})), "fingerprint");
    tests::assert_invalid(
        &reset(json!({"fingerprint": new.sha1_hex, "fingerprint_type": "THIRD"})),
        "fingerprint_type",
    );
    let secret_device =
        client.post("devices/meter_plain/reset-fingerprint", &json!({"fingerprint": new.sha1_hex}));
    tests::assert_invalid(&secret_device, "fingerprint");
    tests::assert_error(
        &client.post("devices/meter_none/reset-fingerprint", &json!({"fingerprint": new.sha1_hex})),
        404,
        "IOTDA.014000",
    );

    // UpdateDevice: secure_access on → the plain listener refuses with 5, TLS still logs in.
    let updated = client.put("devices/meter_plain", &json!({"auth_info": {"secure_access": true}}));
    assert_eq!(updated.json()["auth_info"]["secure_access"], true, "{}", updated.text());
    let (_, code) = MqttDevice::connect(engine.mqtt, &iotda_connect("meter_plain", SECRET, 1));
    assert_eq!(code, 5);
    drop(MqttDevice::login_tls(address, &TlsClient::new(&ca, None), "meter_plain", SECRET));
}
