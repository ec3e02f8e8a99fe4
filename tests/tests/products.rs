//! Products over REST (spec §2.3): create, show, list with paging and filters, update, delete,
//! the validation rules of a product model (each broken rule is 400 `IOTDA.000006` naming the
//! field), duplicates, deleting a product still in use, and isolation between projects.

use serde_json::{json, Value};
use tests::{assert_invalid, Auth, Client, Engine, EngineOptions, HttpResponse, PROJECT_B};

fn water_meter(product_id: &str) -> Value {
    json!({
        "product_id": product_id,
        "name": "Water meter",
        "device_type": "WaterMeter",
        "protocol_type": "MQTT",
        "data_format": "json",
        "manufacturer_name": "ringiot",
        "industry": "utilities",
        "description": "meters the flow",
        "service_capabilities": [{
            "service_id": "water",
            "service_type": "Water",
            "properties": [{
                "property_name": "flow",
                "data_type": "decimal",
                "min": "0",
                "max": "100.5",
                "unit": "m3",
                "method": "RE"
            }],
            "commands": [{
                "command_name": "ON_OFF",
                "paras": [{"para_name": "value", "data_type": "enum", "enum_list": ["ON", "OFF"]}]
            }]
        }]
    })
}

fn assert_no_product(answer: &HttpResponse) {
    assert_eq!(answer.status, 404, "{}", answer.text());
    assert_eq!(answer.error_code(), "IOTDA.013000");
}

fn created(client: &Client, body: &Value) -> Value {
    let answer = client.post("products", body);
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()
}

fn product_ids(list: &Value) -> Vec<String> {
    let products = list["products"].as_array().expect("a products array");
    products.iter().map(|p| p["product_id"].as_str().expect("product_id").to_owned()).collect()
}

#[test]
fn create_echoes_the_product_and_show_returns_the_same() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();

    let product = created(&client, &water_meter("meter-1"));

    assert_eq!(product["product_id"], "meter-1");
    assert_eq!(product["name"], "Water meter");
    assert_eq!(product["device_type"], "WaterMeter");
    assert_eq!(product["protocol_type"], "MQTT");
    assert_eq!(product["data_format"], "json");
    assert_eq!(product["manufacturer_name"], "ringiot");
    assert_eq!(product["industry"], "utilities");
    assert_eq!(product["description"], "meters the flow");
    assert_eq!(product["app_id"], "default");
    let service = &product["service_capabilities"][0];
    assert_eq!(service["service_id"], "water");
    assert_eq!(service["option"], "Optional", "a service without option gets the default");
    assert_eq!(service["properties"][0]["max"], "100.5", "bounds stay strings");
    assert_eq!(service["commands"][0]["paras"][0]["enum_list"], json!(["ON", "OFF"]));
    let create_time = product["create_time"].as_str().expect("create_time");
    assert!(protocol::time::parse_sdk_date(create_time).is_ok(), "create_time {create_time} is not T1");

    let shown = client.get("products/meter-1");
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json(), product);
}

#[test]
fn create_without_product_id_generates_one() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    let mut body = water_meter("unused");
    body.as_object_mut().unwrap().remove("product_id");
    body["data_format"] = Value::Null;

    let first = created(&client, &body);
    let second = created(&client, &body);

    let first_id = first["product_id"].as_str().expect("a generated product_id");
    assert!(protocol::model::is_valid_id_chars(first_id) && first_id.len() <= 36, "{first_id}");
    assert_ne!(first["product_id"], second["product_id"]);
    assert_eq!(first["data_format"], "json", "data_format defaults to json");
    assert_eq!(client.get(&format!("products/{first_id}")).status, 200);
}

#[test]
fn lists_page_newest_first_through_markers_and_offsets() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    let created_ids: Vec<String> = (0..12).map(|n| format!("product-{n:02}")).collect();
    for product_id in &created_ids {
        created(&client, &water_meter(product_id));
    }
    let newest_first: Vec<String> = created_ids.iter().rev().cloned().collect();

    let mut listed = Vec::new();
    let mut target = "products?limit=5".to_owned();
    for expected_len in [5, 5, 2] {
        let page = client.get(&target);
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        assert_eq!(page["page"]["count"], 12, "count is every match, not this page");
        assert_eq!(product_ids(&page).len(), expected_len);
        assert!(page["products"][0].get("service_capabilities").is_none(), "lists carry summaries");
        listed.extend(product_ids(&page));
        let marker = page["page"]["marker"].as_str().expect("a marker for a non-empty page");
        target = format!("products?limit=5&marker={marker}");
    }
    assert_eq!(listed, newest_first);
    let after_the_last = client.get(&target).json();
    assert!(product_ids(&after_the_last).is_empty(), "{after_the_last}");

    let default_page = client.get("products").json();
    assert_eq!(product_ids(&default_page), newest_first[..10], "limit defaults to 10");
    let offset_page = client.get("products?limit=4&offset=3").json();
    assert_eq!(product_ids(&offset_page), newest_first[3..7]);
    let start = client.get("products?limit=2").json();
    let marker = start["page"]["marker"].as_str().unwrap();
    let marker_and_offset = client.get(&format!("products?limit=3&offset=2&marker={marker}")).json();
    assert_eq!(product_ids(&marker_and_offset), newest_first[4..7], "offset counts after the marker");
}

#[test]
fn paging_parameters_out_of_range_are_refused() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();

    for (query, error_code) in [
        ("limit=0", "IOTDA.000017"),
        ("limit=51", "IOTDA.000017"),
        ("limit=ten", "IOTDA.000017"),
        ("marker=abc", "IOTDA.000018"),
        ("marker=zzzzzzzzzzzzzzzzzzzzzzzz", "IOTDA.000018"),
        ("offset=501", "IOTDA.000006"),
        ("offset=-1", "IOTDA.000006"),
    ] {
        let answer = client.get(&format!("products?{query}"));
        assert_eq!(answer.status, 400, "{query}: {}", answer.text());
        assert_eq!(answer.error_code(), error_code, "{query}");
    }
    for query in ["limit=1", "limit=50", "offset=500", "marker=ffffffffffffffffffffffff"] {
        let answer = client.get(&format!("products?{query}"));
        assert_eq!(answer.status, 200, "{query}: {}", answer.text());
    }
}

#[test]
fn lists_filter_by_product_name() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    for (product_id, name) in [("gas-1", "Gas meter"), ("water-1", "Water meter"), ("gas-2", "Gas meter")] {
        let mut body = water_meter(product_id);
        body["name"] = json!(name);
        created(&client, &body);
    }

    let gas = client.get("products?product_name=Gas%20meter").json();
    assert_eq!(product_ids(&gas), ["gas-2", "gas-1"]);
    assert_eq!(gas["page"]["count"], 2);
    let none = client.get("products?product_name=Heat%20meter").json();
    assert_eq!(none["page"]["count"], 0);
    assert!(product_ids(&none).is_empty());
}

#[test]
fn update_changes_the_fields_given_and_keeps_identity_and_create_time() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    let before = created(&client, &water_meter("meter-1"));

    let answer = client.put(
        "products/meter-1",
        &json!({"name": "Smart water meter", "description": "now with valves", "protocol_type": "HTTP"}),
    );

    assert_eq!(answer.status, 200, "{}", answer.text());
    let after = answer.json();
    assert_eq!(after["name"], "Smart water meter");
    assert_eq!(after["description"], "now with valves");
    assert_eq!(after["protocol_type"], "HTTP");
    assert_eq!(after["product_id"], before["product_id"]);
    assert_eq!(after["create_time"], before["create_time"]);
    assert_eq!(after["device_type"], before["device_type"], "fields not given stay");
    assert_eq!(after["service_capabilities"], before["service_capabilities"]);
    assert_eq!(client.get("products/meter-1").json(), after);

    let replaced = client.put(
        "products/meter-1",
        &json!({"service_capabilities": [{"service_id": "valve", "service_type": "Valve"}]}),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let services = replaced.json()["service_capabilities"].clone();
    assert_eq!(services.as_array().map(Vec::len), Some(1), "the list is replaced whole: {services}");
    assert_eq!(services[0]["service_id"], "valve");

    assert_invalid(&client.put("products/meter-1", &json!({"protocol_type": "Zigbee"})), "protocol_type");
    assert_invalid(&client.put("products/meter-1", &json!({"name": ""})), "name");
    assert_eq!(
        client.get("products/meter-1").json()["name"],
        "Smart water meter",
        "refused updates change nothing"
    );
    assert_no_product(&client.put("products/no-such-product", &json!({"name": "x"})));
}

#[test]
fn a_deleted_product_is_gone() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    created(&client, &water_meter("meter-1"));
    created(&client, &water_meter("meter-2"));

    let answer = client.delete("products/meter-1");

    assert_eq!(answer.status, 204, "{}", answer.text());
    assert!(answer.body.is_empty());
    assert_no_product(&client.get("products/meter-1"));
    assert_no_product(&client.delete("products/meter-1"));
    assert_eq!(product_ids(&client.get("products").json()), ["meter-2"]);
    created(&client, &water_meter("meter-1"));
}

#[test]
fn each_broken_rule_is_refused_naming_its_field() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    type Breaker = fn(&mut Value);
    let cases: &[(&str, Breaker)] = &[
        ("name", |p| p["name"] = Value::Null),
        ("name", |p| p["name"] = json!("n".repeat(65))),
        ("device_type", |p| p["device_type"] = json!("")),
        ("device_type", |p| p["device_type"] = json!("d".repeat(33))),
        ("protocol_type", |p| p["protocol_type"] = json!("Zigbee")),
        ("protocol_type", |p| p["protocol_type"] = json!("mqtt")),
        ("data_format", |p| p["data_format"] = json!("xml")),
        ("service_capabilities", |p| p["service_capabilities"] = Value::Null),
        ("product_id", |p| p["product_id"] = json!("bad id!")),
        ("product_id", |p| p["product_id"] = json!("p".repeat(37))),
        ("manufacturer_name", |p| p["manufacturer_name"] = json!("m".repeat(33))),
        ("industry", |p| p["industry"] = json!("i".repeat(65))),
        ("description", |p| p["description"] = json!("d".repeat(129))),
        ("app_id", |p| p["app_id"] = json!("no spaces allowed")),
        ("service_capabilities[1].service_id", |p| {
            let service = p["service_capabilities"][0].clone();
            p["service_capabilities"].as_array_mut().unwrap().push(service);
        }),
        ("service_capabilities[0].service_id", |p| p["service_capabilities"][0]["service_id"] = json!("")),
        ("service_capabilities[0].service_type", |p| {
            p["service_capabilities"][0]["service_type"] = json!("t".repeat(65))
        }),
        ("service_capabilities[0].option", |p| p["service_capabilities"][0]["option"] = json!("Sometimes")),
        ("service_capabilities[0].properties[0].min", |p| {
            let flow = &mut p["service_capabilities"][0]["properties"][0];
            flow["min"] = json!("200");
            flow["max"] = json!("100");
        }),
        ("service_capabilities[0].properties[0].max", |p| {
            p["service_capabilities"][0]["properties"][0]["max"] = json!("a lot")
        }),
        ("service_capabilities[0].properties[0].min", |p| {
            let flow = &mut p["service_capabilities"][0]["properties"][0];
            flow["data_type"] = json!("int");
            flow["min"] = json!("0.5");
        }),
        ("service_capabilities[0].properties[0].max", |p| {
            p["service_capabilities"][0]["properties"][0]["max"] = json!("12345678901234567")
        }),
        ("service_capabilities[0].properties[0].data_type", |p| {
            p["service_capabilities"][0]["properties"][0]["data_type"] = json!("float")
        }),
        ("service_capabilities[0].properties[0].method", |p| {
            p["service_capabilities"][0]["properties"][0]["method"] = json!("X")
        }),
        ("service_capabilities[0].properties[0].property_name", |p| {
            p["service_capabilities"][0]["properties"][0]["property_name"] = json!("flow.rate")
        }),
        ("service_capabilities[0].properties[0].step", |p| {
            p["service_capabilities"][0]["properties"][0]["step"] = json!(0.0)
        }),
        ("service_capabilities[0].properties[0].unit", |p| {
            p["service_capabilities"][0]["properties"][0]["unit"] = json!("u".repeat(17))
        }),
        ("service_capabilities[0].properties[1].property_name", |p| {
            let flow = p["service_capabilities"][0]["properties"][0].clone();
            p["service_capabilities"][0]["properties"].as_array_mut().unwrap().push(flow);
        }),
        ("service_capabilities[0].commands[0].command_name", |p| {
            p["service_capabilities"][0]["commands"][0]["command_name"] = json!("")
        }),
        ("service_capabilities[0].commands[1].command_name", |p| {
            let command = p["service_capabilities"][0]["commands"][0].clone();
            p["service_capabilities"][0]["commands"].as_array_mut().unwrap().push(command);
        }),
        ("service_capabilities[0].commands[0].paras[0].enum_list", |p| {
            p["service_capabilities"][0]["commands"][0]["paras"][0]["enum_list"] = json!([])
        }),
        ("service_capabilities[0].commands[0].paras[0].para_name", |p| {
            p["service_capabilities"][0]["commands"][0]["paras"][0]["para_name"] = json!("p".repeat(33))
        }),
    ];

    for (field, break_rule) in cases {
        let mut body = water_meter("meter-1");
        break_rule(&mut body);
        assert_invalid(&client.post("products", &body), field);
    }
    assert_eq!(client.get("products").json()["page"]["count"], 0, "no broken product was stored");
}

#[test]
fn a_duplicate_product_id_is_refused_and_the_original_kept() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    let original = created(&client, &water_meter("meter-1"));
    let mut imposter = water_meter("meter-1");
    imposter["name"] = json!("Imposter");

    let answer = client.post("products", &imposter);

    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.error_code(), "IOTDA.000006");
    assert_eq!(client.get("products/meter-1").json(), original);
}

#[test]
fn a_product_with_devices_cannot_be_deleted() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    created(&client, &water_meter("meter-1"));
    let device = client.post("devices", &json!({"product_id": "meter-1", "node_id": "node-1"}));
    assert_eq!(device.status, 201, "{}", device.text());

    let refused = client.delete("products/meter-1");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.error_code(), "IOTDA.000006");
    assert_eq!(client.get("products/meter-1").status, 200, "the product is still there");

    assert_eq!(client.delete("devices/meter-1_node-1").status, 204);
    let answer = client.delete("products/meter-1");
    assert_eq!(answer.status, 204, "{}", answer.text());
}

#[test]
fn bodies_that_are_not_the_json_expected_are_400_iotda_000008() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    created(&client, &water_meter("meter-1"));

    for (method, path, body) in [
        ("POST", "products", &br#"{"name": "meter","#[..]),
        ("POST", "products", br#"{"name": 5, "device_type": "x"}"#),
        ("PUT", "products/meter-1", br#"{"name": "#),
        ("PUT", "products/meter-1", br#"{"service_capabilities": "none"}"#),
    ] {
        let answer = client.call(method, path, body);
        assert_eq!(answer.status, 400, "{method} {}: {}", String::from_utf8_lossy(body), answer.text());
        assert_eq!(answer.error_code(), "IOTDA.000008", "{method} {}", String::from_utf8_lossy(body));
    }
}

/// Regression: serde maps a JSON array onto a struct's fields by position, so an array used to
/// create a product (and an array in place of a service to define one).
#[test]
fn a_json_array_is_not_a_product_or_a_service() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();

    let product_as_array = br#"["array-1", "Array product", "Meter", "MQTT", "json", []]"#;
    let service_as_array =
        br#"{"name": "n", "device_type": "d", "protocol_type": "MQTT", "service_capabilities": [["s", "S"]]}"#;
    for body in [&product_as_array[..], service_as_array] {
        let answer = client.call("POST", "products", body);
        assert_eq!(answer.status, 400, "{}: {}", String::from_utf8_lossy(body), answer.text());
        assert_eq!(answer.error_code(), "IOTDA.000008", "{}", String::from_utf8_lossy(body));
    }
    assert_eq!(client.get("products").json()["page"]["count"], 0, "nothing was stored");
}

#[test]
fn another_project_cannot_see_or_touch_a_product() {
    let engine = Engine::start(EngineOptions::default());
    let project_a = engine.client_a();
    let project_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()));
    created(&project_a, &water_meter("meter-1"));

    assert_no_product(&project_b.get("products/meter-1"));
    assert_no_product(&project_b.put("products/meter-1", &json!({"name": "mine now"})));
    assert_no_product(&project_b.delete("products/meter-1"));
    assert_eq!(project_b.get("products").json()["page"]["count"], 0);
    let device = project_b.post("devices", &json!({"product_id": "meter-1", "node_id": "node-1"}));
    assert_no_product(&device);

    assert_eq!(project_a.get("products/meter-1").json()["name"], "Water meter", "A's product untouched");
    created(&project_b, &water_meter("meter-1"));
}
