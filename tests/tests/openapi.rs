//! `GET /v5/openapi.json`: the OpenAPI 3.1 description of the REST API, served without
//! credentials. The document is valid (`openapi-spec-validator` from PyPI) and is the one in
//! the repository; every operation it lists is served — never the router's "no route" (404) or
//! "method not allowed" (405) `IOTDA.000029` — and answers with a status the operation lists;
//! a method a described path does not list is refused 405 `IOTDA.000029`.
//!
//! (The other direction, every route of the router is described, is a unit test of the router.)

use std::process::Command;

use serde_json::Value;
use tests::{http_request, Auth, Client, Engine, EngineOptions, HttpResponse, PROJECT_A};

const DOCUMENT_PATH: &str = "/v5/openapi.json";
/// The router's answer to a path it does not serve.
const NO_ROUTE: (u16, &str) = (404, "IOTDA.000029");
/// The router's answer to a method a path does not take.
const NOT_ALLOWED: (u16, &str) = (405, "IOTDA.000029");
/// The methods probed on every described path.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "PATCH"];
/// The keys of an OpenAPI path item that are operations.
const OPERATION_KEYS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const VALIDATE: &str = r#"
import json, sys
from openapi_spec_validator import validate
with open(sys.argv[1]) as f:
    validate(json.load(f))
print("valid")
"#;

/// `GET /v5/openapi.json` without credentials: 200, JSON, with a request id.
fn fetch_document(engine: &Engine) -> HttpResponse {
    let answer = http_request(engine.http, "GET", DOCUMENT_PATH, &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");
    assert!(answer.header("x-request-id").is_some(), "no X-Request-Id");
    answer
}

/// Follows a local `$ref` (`#/components/...`), repeatedly.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(document, target)
        }
        None => value,
    }
}

/// `(path template, path item, METHOD, operation)` for every operation of the document.
fn operations(document: &Value) -> Vec<(&str, &Value, String, &Value)> {
    let paths = document["paths"].as_object().expect("the document has paths");
    let mut all = Vec::new();
    for (template, item) in paths {
        for (key, operation) in item.as_object().expect("a path item is an object") {
            if OPERATION_KEYS.contains(&key.as_str()) {
                all.push((template.as_str(), item, key.to_uppercase(), operation));
            }
        }
    }
    all
}

/// The example of a parameter, else the first value of its enum.
fn sample_value(parameter: &Value) -> String {
    let value = parameter.get("example").or_else(|| parameter["schema"]["enum"].get(0));
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => format!("openapi-{}", parameter["name"].as_str().unwrap_or("sample")),
    }
}

/// The request target of a call to `operation`: path parameters from their examples (the
/// harness's project for `project_id`), required query parameters from their example or first
/// enum value. Made-up ids: a 404 for an unknown device is an answer like any other.
fn sample_target(document: &Value, template: &str, item: &Value, operation: &Value) -> String {
    let declared = item["parameters"].as_array().into_iter().flatten();
    let parameters = declared.chain(operation["parameters"].as_array().into_iter().flatten());
    let mut target = template.to_owned();
    let mut query = Vec::new();
    for parameter in parameters.map(|p| resolve(document, p)) {
        let name = parameter["name"].as_str().expect("a parameter has a name");
        match parameter["in"].as_str() {
            Some("path") => {
                let value = if name == "project_id" {
                    PROJECT_A.project_id.to_owned()
                } else {
                    sample_value(parameter)
                };
                target = target.replace(&format!("{{{name}}}"), &value);
            }
            Some("query") if parameter["required"] == true => {
                query.push(format!("{name}={}", sample_value(parameter)));
            }
            _ => {}
        }
    }
    assert!(!target.contains('{'), "{template}: a path parameter is not declared");
    if !query.is_empty() {
        target = format!("{target}?{}", query.join("&"));
    }
    target
}

/// The JSON example of the operation's request body, or no body.
fn sample_body(operation: &Value) -> Vec<u8> {
    match operation["requestBody"]["content"]["application/json"].get("example") {
        Some(example) => example.to_string().into_bytes(),
        None => Vec::new(),
    }
}

/// An operation with `security: []` is served without credentials.
fn needs_credentials(operation: &Value) -> bool {
    operation.get("security").and_then(Value::as_array).is_none_or(|requirements| !requirements.is_empty())
}

/// `method target` with `client`'s credentials (signed over exactly this request), or none.
fn call(engine: &Engine, client: Option<&Client>, method: &str, target: &str, body: &[u8]) -> HttpResponse {
    let headers = client.map(|c| c.signed_headers(method, target, body, &[])).unwrap_or_default();
    http_request(engine.http, method, target, &headers, body)
}

fn error_code(answer: &HttpResponse) -> Option<String> {
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    body["error_code"].as_str().map(str::to_owned)
}

/// Whether `answer` is the router's own refusal: no such path, or no such method on it.
fn is_router_refusal(answer: &HttpResponse) -> bool {
    let code = error_code(answer);
    answer.status == NOT_ALLOWED.0 || (answer.status == NO_ROUTE.0 && code.as_deref() == Some(NO_ROUTE.1))
}

#[test]
fn the_document_is_served_without_credentials_and_is_valid_openapi_3_1() {
    let engine = Engine::start(EngineOptions::default());
    let answer = fetch_document(&engine);
    let document = answer.json();

    let version = document["openapi"].as_str().expect("an openapi version string");
    assert!(version.starts_with("3.1"), "openapi {version}");
    let in_repository: Value = serde_json::from_str(include_str!("../../engine/src/api/openapi.json"))
        .expect("engine/src/api/openapi.json is JSON");
    assert!(document == in_repository, "the served document is not engine/src/api/openapi.json");
    assert_eq!(document["info"]["title"], "ringiot REST API");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version is the crate version");
    let described = operations(&document);
    let mut operation_ids: Vec<&str> = described
        .iter()
        .map(|(template, _, method, operation)| {
            operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {template} has no operationId"))
        })
        .collect();
    let count = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), count, "operationIds are unique");
    for id in ["ShowHealth", "ShowMetrics", "ShowOpenApi", "AddDevice", "CreateCommand", "CreateBatchTask"] {
        assert!(operation_ids.contains(&id), "{id} is described");
    }

    let Some(python) = tests::python::python_or_skip(&[("openapi-spec-validator", "openapi_spec_validator")])
    else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("openapi.json");
    std::fs::write(&file, &answer.body).unwrap();
    let output = Command::new(python).args(["-c", VALIDATE]).arg(&file).output().expect("running python");
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the served document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_listed_operation_is_served_and_answers_a_listed_status() {
    // Two shards: calls that shard 0 owns (products, rules, batch tasks) may be forwarded to it.
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let document = fetch_document(&engine).json();
    let client =
        engine.client(PROJECT_A.project_id, Auth::Sdk { ak: PROJECT_A.ak.into(), sk: PROJECT_A.sk.into() });
    let operations = operations(&document);
    assert!(operations.len() > 3, "the document lists the REST API");
    for (template, item, method, operation) in operations {
        let target = sample_target(&document, template, item, operation);
        let body = sample_body(operation);
        let credentials = needs_credentials(operation).then_some(&client);
        let answer = call(&engine, credentials, &method, &target, &body);
        let what = format!("{method} {target} ({template}) -> {}: {}", answer.status, answer.text());
        assert!(!is_router_refusal(&answer), "the router does not serve {what}");
        assert!(answer.header("x-request-id").is_some(), "no X-Request-Id: {what}");
        let listed = operation["responses"].as_object().expect("an operation lists its responses");
        assert!(
            listed.contains_key(&answer.status.to_string()) || listed.contains_key("default"),
            "the status is not one the operation lists: {what}"
        );
    }
}

#[test]
fn methods_the_document_does_not_list_are_not_allowed() {
    let engine = Engine::start(EngineOptions::default());
    let document = fetch_document(&engine).json();
    let client = engine.client_a();
    let mut probed = Vec::new();
    for (template, item) in document["paths"].as_object().expect("the document has paths") {
        let target: Vec<String> = template
            .split('/')
            .map(|segment| match segment {
                "{project_id}" => PROJECT_A.project_id.to_owned(),
                parameter if parameter.starts_with('{') => "openapi-sample".to_owned(),
                literal => literal.to_owned(),
            })
            .collect();
        let target = target.join("/");
        let credentials = template.starts_with("/v5/iot/").then_some(&client);
        for method in METHODS.iter().filter(|m| item.get(m.to_lowercase()).is_none()) {
            let answer = call(&engine, credentials, method, &target, b"");
            let what = format!("{method} {target} ({template}) -> {}: {}", answer.status, answer.text());
            assert_eq!(answer.status, NOT_ALLOWED.0, "{what}");
            assert_eq!(error_code(&answer).as_deref(), Some(NOT_ALLOWED.1), "{what}");
            assert!(answer.header("x-request-id").is_some(), "no X-Request-Id: {what}");
            probed.push(format!("{method} {template}"));
        }
    }
    for expected in [
        "PATCH /v5/iot/{project_id}/devices/{device_id}",
        "DELETE /v5/iot/{project_id}/devices/{device_id}/commands",
        "PATCH /health",
    ] {
        assert!(probed.iter().any(|p| p == expected), "{expected} was not probed");
    }

    // A path the document does not describe is the router's other refusal.
    let answer = client.get("no-such-resource");
    assert_eq!(
        (answer.status, error_code(&answer).as_deref()),
        (NO_ROUTE.0, Some(NO_ROUTE.1)),
        "{}",
        answer.text()
    );
}
