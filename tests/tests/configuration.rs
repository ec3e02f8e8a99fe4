//! Configuration as a newcomer meets it: `print-config` prints a complete, commented default
//! config that the engine accepts back; a bare start (no config at all) makes a default
//! project whose printed curl line works, and a second start reuses it.

use tests::{http_request, run_engine_command, Engine, EngineOptions};

#[test]
fn print_config_prints_every_key_with_a_comment_and_parses_back() {
    let output = run_engine_command(&["print-config"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for key in ["data_dir", "shards", "http_listen", "mqtt_listen", "command_timeout_ms", "durability"] {
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key} missing"));
        assert!(text.lines().nth(line - 1).unwrap().starts_with('#'), "{key} has a comment above it");
    }
    assert!(text.contains("http_listen = \"0.0.0.0:8080\"") && text.contains("command_timeout_ms = 20000"));
    // The printed text is a valid config file: start an engine on it (ports overridden by flags).
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("ringiot.toml");
    std::fs::write(&config, &text).unwrap();
    let options = EngineOptions {
        bare: true,
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    };
    let engine = Engine::start_on(&temp.path().join("data"), &options).unwrap();
    assert_eq!(http_request(engine.http, "GET", "/health", &[], b"").status, 200);
}

#[test]
fn a_bare_start_creates_a_default_project_whose_curl_line_works() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    // No config and no --data-dir: exactly `cargo run --release --bin ringiot`, but on port 0.
    let options = EngineOptions { bare: true, default_data_dir: true, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    assert!(data_dir.join("default-project.toml").exists(), "the default ./data was used");
    let curl = engine
        .stdout_head
        .lines()
        .find(|l| l.trim_start().starts_with("curl "))
        .expect("a curl line")
        .to_owned();
    // curl -H 'X-Auth-Token: TOKEN' http://127.0.0.1:PORT/v5/iot/PROJECT/products
    let token = curl.split("X-Auth-Token: ").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    let url = curl.split_whitespace().last().unwrap();
    let path = &url[url.find("/v5/").unwrap()..];
    let headers = vec![("X-Auth-Token".to_owned(), token.clone())];
    let response = http_request(engine.http, "GET", path, &headers, b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["page"]["count"], 0);
    assert!(engine.stop().success());

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    assert!(!engine.stdout_head.contains(&token), "the token is printed only when it is created");
    assert_eq!(
        http_request(engine.http, "GET", path, &headers, b"").status,
        200,
        "same credentials after a restart"
    );
}

#[test]
fn a_second_engine_cannot_take_the_same_ports() {
    let first = Engine::start(EngineOptions::default());
    let temp = tempfile::tempdir().unwrap();
    for (flag, taken) in [("--mqtt-listen", first.mqtt), ("--http-listen", first.http)] {
        let options = EngineOptions { args: vec![flag.into(), taken.to_string()], ..Default::default() };
        let stderr = match Engine::start_on(&temp.path().join(flag.trim_start_matches('-')), &options) {
            Ok(_) => panic!("a second engine started on the {flag} address {taken}"),
            Err(stderr) => stderr,
        };
        assert!(stderr.contains("in use"), "{flag}: {stderr}");
    }
    assert_eq!(
        http_request(first.http, "GET", "/health", &[], b"").status,
        200,
        "the first engine is unaffected"
    );
}
