//! The TLS certificate as an operator meets it: generated on a bare first start (the CA's
//! path printed beside the curl line, keys 0600) and reused afterwards; configured from PEM
//! files; reloaded on SIGHUP without dropping connections; a bad file refused with a clear
//! error at start and ignored (the old certificate kept) at reload.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tests::mqtt::MqttDevice;
use tests::tls::{server_certificate_files, TlsClient};
use tests::{Engine, EngineOptions};

const SECRET: &str = "cert-secret-01";

#[test]
fn a_bare_start_generates_a_ca_prints_it_and_the_next_start_reuses_it() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { bare: true, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let ca = data_dir.join("tls/ca.pem");
    assert!(
        engine.stdout_head.contains(&format!("--cacert {}", ca.display())),
        "the curl line names the CA:\n{}",
        engine.stdout_head
    );
    assert!(engine
        .stdout_head
        .contains(&format!("CA certificate for devices and REST clients: {}", ca.display())));
    for key in ["tls/ca.key", "tls/server.key"] {
        let mode = std::fs::metadata(data_dir.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key} is {mode:o}");
    }
    let tls = TlsClient::new(&ca, None);
    assert!(tls.https_get(engine.https.unwrap(), "/health").contains("200 OK"));
    let first_ca = std::fs::read(&ca).unwrap();
    assert!(engine.stop().success());

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(std::fs::read(&ca).unwrap(), first_ca, "the CA was replaced on restart");
    assert!(tls.https_get(engine.https.unwrap(), "/health").contains("200 OK"));
    // Nothing of the key reaches the log.
    let key = std::fs::read_to_string(data_dir.join("tls/server.key")).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(engine.log_lines_with(&[body]).is_empty());
}

fn configured(cert: &std::path::Path, key: &std::path::Path) -> EngineOptions {
    EngineOptions {
        shards: 2,
        config_extra: format!("tls_cert_file = {:?}\ntls_key_file = {:?}\n", cert.display(), key.display()),
        log_filter: Some("info".into()),
        ..Default::default()
    }
}

#[test]
fn a_configured_certificate_is_served_and_sighup_reloads_it_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (first_ca, cert, key) = server_certificate_files(dir.path(), "first");
    let engine = Engine::start(configured(&cert, &key));
    assert!(!engine.data_dir.join("tls").exists(), "a certificate was generated though one is configured");
    tests::register_meter_devices(&engine.client_a(), &["kept"], SECRET);
    let (https, mqtt_tls) = (engine.https.unwrap(), engine.mqtt_tls.unwrap());
    let trusts_first = TlsClient::new(&first_ca, None);
    assert!(trusts_first.https_get(https, "/health").contains("200 OK"));
    let mut kept = MqttDevice::login_tls(mqtt_tls, &trusts_first, "meter_kept", SECRET);

    // A reload with a key that does not match: refused, the first certificate stays.
    let (_, _, stray_key) = server_certificate_files(dir.path(), "stray");
    std::fs::copy(&stray_key, &key).unwrap();
    hang_up(&engine);
    engine.wait_for_log(&["TLS certificate not reloaded"], Duration::from_secs(10));
    assert!(trusts_first.https_get(https, "/health").contains("200 OK"));

    // The operator installs a certificate from another CA and sends SIGHUP.
    let (second_ca, second_cert, second_key) = server_certificate_files(dir.path(), "second");
    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    hang_up(&engine);
    engine.wait_for_log(&["TLS certificate reloaded"], Duration::from_secs(10));
    let trusts_second = TlsClient::new(&second_ca, None);
    assert!(trusts_second.https_get(https, "/health").contains("200 OK"));
    let refused = trusts_first.try_https(https, "GET", "/health", &[], b"");
    assert!(refused.is_err(), "the old certificate is still served: {refused:?}");
    // The connection from before both reloads is still up.
    assert!(kept.ping(), "the TLS session from before the reload was dropped");
    drop(MqttDevice::login_tls(mqtt_tls, &trusts_second, "meter_kept", SECRET));
}

fn hang_up(engine: &Engine) {
    // SAFETY: kill(2) with a pid of a child this test started.
    let sent = unsafe { libc::kill(engine.pid() as i32, libc::SIGHUP) };
    assert_eq!(sent, 0, "sending SIGHUP");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = server_certificate_files(dir.path(), "one");
    let (_, _, other_key) = server_certificate_files(dir.path(), "other");
    let Err(error) = Engine::start_on(&dir.path().join("data"), &configured(&cert, &other_key)) else {
        panic!("an engine started with a key that does not match its certificate");
    };
    assert!(error.contains("TLS certificate") && error.contains("other.key"), "{error}");
}

/// An operator may run TLS only: both plain listeners off, devices and the REST API over TLS.
#[test]
fn tls_only_with_both_plain_listeners_off() {
    let engine = Engine::start(EngineOptions {
        args: ["--http-listen", "off", "--mqtt-listen", "off"].map(String::from).to_vec(),
        ..Default::default()
    });
    assert!(
        engine.stdout_head.contains("ringiot ready: http=off mqtt=off https=127.0.0.1:"),
        "{}",
        engine.stdout_head
    );
    let tls = TlsClient::new(&engine.data_dir.join("tls/ca.pem"), None);
    let https = engine.https.unwrap();
    let product = r#"{"product_id":"meter","name":"meter","device_type":"Meter","protocol_type":"MQTT","service_capabilities":[]}"#;
    let device = r#"{"node_id":"d1","product_id":"meter","auth_info":{"secret":"cert-secret-01"}}"#;
    for (path, body) in [("products", product), ("devices", device)] {
        let headers = [("x-auth-token", tests::PROJECT_A.token), ("content-type", "application/json")];
        let path = format!("/v5/iot/{}/{path}", tests::PROJECT_A.project_id);
        let answer = tls.try_https(https, "POST", &path, &headers, body.as_bytes()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    drop(MqttDevice::login_tls(engine.mqtt_tls.unwrap(), &tls, "meter_d1", SECRET));
    // Turning off both listeners of one side is refused with a clear error.
    let options = EngineOptions {
        args: ["--mqtt-listen", "off", "--mqtt-tls-listen", "off"].map(String::from).to_vec(),
        ..Default::default()
    };
    let Err(error) = Engine::start_on(&tempfile::tempdir().unwrap().path().join("data"), &options) else {
        panic!("an engine started with no MQTT listener at all");
    };
    assert!(error.contains("mqtt_listen and mqtt_tls_listen are both off"), "{error}");
}
