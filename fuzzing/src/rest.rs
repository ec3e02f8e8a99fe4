//! `rest_bodies`: the body of every REST resource that takes one.
//!
//! Input: one selector byte (`% RESOURCES`), then the request body (or, for the last resource,
//! a query string). Each resource runs what its handler in `engine/src/api` runs before the
//! shard is called, then what the home shard checks, and finally parses back the JSON the
//! shard would store — replay after a restart depends on it.

use std::sync::OnceLock;

use protocol::model::{self, CreateProductRequest, Product, UpdateProductRequest};
use protocol::rules::{
    self, Action, CreateActionRequest, CreateRuleRequest, Rule, UpdateActionRequest, UpdateRuleRequest,
};
use protocol::shadow::DeviceShadow;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How many resources the selector byte chooses from.
const RESOURCES: u8 = 13;
/// The engine's default `batch_targets_max`.
const BATCH_TARGETS_MAX: usize = 30_000;
const CREATE_TIME: &str = "20240101T000000Z";
const GENERATED_ID: &str = "65a1b2c3d4e5f60718293a4b";

/// The product the calls are checked against: one property and one command para of every
/// data type, so that property-set and command values reach every value check.
pub(crate) const PRODUCT_JSON: &str = r#"{
  "product_id": "fuzzprod", "name": "Fuzz product", "device_type": "Meter", "protocol_type": "MQTT",
  "service_capabilities": [{
    "service_id": "s", "service_type": "s",
    "properties": [
      {"property_name": "int", "data_type": "int", "required": true, "min": "-5", "max": "100", "method": "RWE"},
      {"property_name": "dec", "data_type": "decimal", "min": "-1.5", "max": "2.5", "method": "RW"},
      {"property_name": "str", "data_type": "string", "max_length": 8, "method": "RW"},
      {"property_name": "enum", "data_type": "string", "enum_list": ["A", "B"], "method": "RW"},
      {"property_name": "bool", "data_type": "boolean", "method": "RW"},
      {"property_name": "time", "data_type": "DateTime", "method": "RW"},
      {"property_name": "obj", "data_type": "jsonObject", "method": "RW"},
      {"property_name": "list", "data_type": "string list", "method": "RW"},
      {"property_name": "ro", "data_type": "int", "method": "R"}
    ],
    "commands": [{
      "command_name": "SET",
      "paras": [
        {"para_name": "int", "data_type": "int", "required": true, "min": "0", "max": "9"},
        {"para_name": "dec", "data_type": "decimal", "min": "0", "max": "1"},
        {"para_name": "str", "data_type": "string", "max_length": 4},
        {"para_name": "enum", "data_type": "enum", "enum_list": ["ON", "OFF"]},
        {"para_name": "bool", "data_type": "boolean"}
      ]
    }]
  }]
}"#;

pub fn rest_bodies(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % RESOURCES {
        0 => create_product(body),
        1 => update_product(body),
        2 => add_device(body),
        3 => update_device(body),
        4 => create_command(body),
        5 => update_properties(body),
        6 => create_message(body),
        7 => create_batch_task(body),
        8 => create_rule(body),
        9 => update_rule(body),
        10 => create_action(body),
        11 => update_action(body),
        _ => query(body),
    }
}

fn product() -> &'static Product {
    static PRODUCT: OnceLock<Product> = OnceLock::new();
    PRODUCT.get_or_init(|| {
        let request =
            protocol::json::from_bytes(PRODUCT_JSON.as_bytes()).expect("the fixture product parses");
        model::validate_create(request, GENERATED_ID, CREATE_TIME).expect("the fixture product is valid")
    })
}

/// The fixture product as the shard stores it (for the log seeds).
pub(crate) fn stored_product_json() -> String {
    String::from_utf8_lossy(&protocol::json::to_vec(product())).into_owned()
}

/// What the shard stores is JSON it parses back on replay.
fn stored_parses_back<T: Serialize + DeserializeOwned>(document: &T) {
    let json = protocol::json::to_vec(document);
    if let Err(error) = protocol::json::from_bytes::<T>(&json) {
        panic!("stored JSON does not parse back ({error}): {}", String::from_utf8_lossy(&json));
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    protocol::json::from_bytes(body).ok()
}

fn create_product(body: &[u8]) {
    let Some(request) = parse::<CreateProductRequest>(body) else { return };
    if let Ok(product) = model::validate_create(request, GENERATED_ID, CREATE_TIME) {
        stored_parses_back(&product);
    }
}

fn update_product(body: &[u8]) {
    let Some(request) = parse::<UpdateProductRequest>(body) else { return };
    if let Ok(product) = model::apply_update(product(), request) {
        stored_parses_back(&product);
    }
}

fn add_device(body: &[u8]) {
    let Some(request) = parse(body) else { return };
    let Ok(device) = protocol::device::validate_add(request) else { return };
    // The home shard seeds the device's shadow from the initial desired values.
    if let Some(initial_json) = &device.initial_shadow_json {
        stored_parses_back(&DeviceShadow::with_initial_desired(initial_json, CREATE_TIME));
    }
}

fn update_device(body: &[u8]) {
    if let Some(request) = parse(body) {
        let _ = protocol::device::validate_update(request);
    }
}

fn create_command(body: &[u8]) {
    if let Ok(call) = engine::api::device_calls::command_body(body) {
        let _ = call.check(Some(product()), "fuzzprod");
        let _ = call.check(None, "fuzzprod");
    }
}

fn update_properties(body: &[u8]) {
    if let Ok(call) = engine::api::device_calls::properties_set_body(body) {
        let _ = call.check(Some(product()), "fuzzprod");
    }
}

fn create_message(body: &[u8]) {
    let _ = engine::api::messages::message_body(body, "project", "device");
}

/// CreateBatchTask: the task, then its document as the task type's own body.
fn create_batch_task(body: &[u8]) {
    let Some(request) = parse(body) else { return };
    let Ok(task) = protocol::batch::validate_create(request, BATCH_TARGETS_MAX) else { return };
    let document = protocol::json::to_vec(&task.document);
    match task.task_type.as_str() {
        "createCommands" => drop(engine::api::device_calls::command_body(&document)),
        _ => drop(engine::api::messages::message_body(&document, "project", "")),
    }
}

fn create_rule(body: &[u8]) {
    let Some(request) = parse::<CreateRuleRequest>(body) else { return };
    if let Ok(rule) = rules::validate_create_rule(request, GENERATED_ID.into()) {
        stored_parses_back(&rule);
    }
}

fn stored_rule() -> Rule {
    let request = protocol::json::from_bytes(
        br#"{"rule_name":"r","subject":{"resource":"device.message","event":"report"},"app_type":"GLOBAL"}"#,
    )
    .expect("the fixture rule parses");
    rules::validate_create_rule(request, "rule".into()).expect("the fixture rule is valid")
}

fn update_rule(body: &[u8]) {
    let Some(request) = parse::<UpdateRuleRequest>(body) else { return };
    if let Ok(rule) = rules::apply_rule_update(stored_rule(), request) {
        stored_parses_back(&rule);
    }
}

/// The engine also requires a push URL its sender can use.
fn push_url_checked(action: &Action) {
    if let Some(forwarding) = &action.channel_detail.http_forwarding {
        let _ = shards::push::url::parse_url(&forwarding.url);
    }
    stored_parses_back(action);
}

fn create_action(body: &[u8]) {
    let Some(request) = parse::<CreateActionRequest>(body) else { return };
    if let Ok(action) = rules::validate_create_action(request, "action".into()) {
        push_url_checked(&action);
    }
}

fn update_action(body: &[u8]) {
    let Some(request) = parse::<UpdateActionRequest>(body) else { return };
    let stored = protocol::json::from_bytes(
        br#"{"rule_id":"rule","channel":"HTTP_FORWARDING","channel_detail":{"http_forwarding":{"url":"http://127.0.0.1:9/push"}}}"#,
    )
    .map(|request: CreateActionRequest| rules::validate_create_action(request, "action".into()));
    let Ok(Ok(stored)) = stored else { panic!("the fixture action is valid") };
    if let Ok(action) = rules::apply_action_update(stored, request) {
        push_url_checked(&action);
    }
}

/// A list call's query string: decoding, then paging.
fn query(raw: &[u8]) {
    let Ok(raw) = std::str::from_utf8(raw) else { return };
    let Ok(query) = engine::api::query::Query::parse(Some(raw)) else { return };
    let _ = engine::api::query::Paging::from_query(&query);
    let _ = engine::api::query::limit_and_offset(&query);
}
