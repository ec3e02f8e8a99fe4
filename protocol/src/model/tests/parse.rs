//! Realistic JSON bodies in, products out.

use simd_json::OwnedValue;

use super::*;
use crate::json::to_vec;
use crate::model::{ProductSummary, UpdateProductRequest, DEFAULT_APP_ID};

#[test]
fn smartwater_body_parses_and_validates() {
    let product = smartwater();
    assert_eq!(product.product_id, "smartwater");
    assert_eq!(product.name, "Smart water meter");
    assert_eq!(product.protocol_type, "MQTT");
    assert_eq!(product.data_format, "json", "data_format defaults to json");
    assert_eq!(product.app_id, DEFAULT_APP_ID);
    assert_eq!(product.app_name, "default");
    assert_eq!(product.create_time, CREATE_TIME);
    assert_eq!(product.manufacturer_name.as_deref(), Some("Acme"));

    let water = product.service("water").expect("service water");
    assert_eq!(water.option.as_deref(), Some("Optional"), "option defaults to Optional");
    let level = water.property("level").expect("property level");
    assert_eq!((level.min.as_deref(), level.max.as_deref()), (Some("0"), Some("100")));
    assert_eq!(level.method, "RE");
    assert!(level.required);
    assert_eq!(level.step, Some(1.0), "an integer step reads as f64");
    assert_eq!(level.default_value, Some(OwnedValue::from(50)));

    let on_off = water.command("ON_OFF").expect("command ON_OFF");
    let value = on_off.para("value").expect("para value");
    assert_eq!(value.enum_list.as_deref(), Some(&["ON".to_owned(), "OFF".to_owned()][..]));
    assert_eq!(on_off.responses[0].response_name, "ON_OFF_RESULT");
    assert!(water.events.is_empty());
}

#[test]
fn lookups_miss_unknown_names() {
    let product = smartwater();
    assert!(product.service("gas").is_none());
    let water = product.service("water").unwrap();
    assert!(water.property("temperature").is_none());
    assert!(water.command("REBOOT").is_none());
    assert!(water.command("ON_OFF").unwrap().para("force").is_none());
}

#[test]
fn generated_product_id_is_used_when_absent() {
    let request = CreateProductRequest { product_id: None, ..smartwater_request() };
    assert_eq!(create(request).unwrap().product_id, GENERATED_ID);
}

#[test]
fn product_round_trips_through_json() {
    let product = smartwater();
    let json = to_vec(&product);
    let back: Product = from_bytes(&json).unwrap();
    assert_eq!(back, product);
}

#[test]
fn absent_optionals_are_omitted_and_lists_are_written() {
    let product = create(request_with(vec![service("s")])).unwrap();
    let json = String::from_utf8(to_vec(&product)).unwrap();
    for omitted in ["manufacturer_name", "industry", "\"description\"", "null"] {
        assert!(!json.contains(omitted), "{omitted} should be omitted: {json}");
    }
    for written in [r#""properties":[]"#, r#""commands":[]"#, r#""events":[]"#, r#""option":"Optional""#] {
        assert!(json.contains(written), "{written} should be written: {json}");
    }
}

#[test]
fn nulls_count_as_absent() {
    let body = br#"{"name":"p","device_type":"t","protocol_type":"MQTT","data_format":null,
        "manufacturer_name":null,"service_capabilities":[{"service_id":"s","service_type":"t",
        "properties":null,"commands":null,"events":null,"description":null}]}"#;
    let product = create(from_bytes(body).unwrap()).unwrap();
    assert_eq!(product.data_format, "json");
    assert!(product.manufacturer_name.is_none());
    assert!(product.service_capabilities[0].properties.is_empty());
}

#[test]
fn null_or_missing_required_fields_are_reported_by_name() {
    let body = br#"{"name":null,"device_type":"t","protocol_type":"MQTT","service_capabilities":[]}"#;
    assert_eq!(rejected_at(create(from_bytes(body).unwrap()), "name"), "name is required");
    let body = br#"{"name":"p","device_type":"t","protocol_type":"MQTT"}"#;
    rejected_at(create(from_bytes(body).unwrap()), "service_capabilities");
    let body = br#"{"name":"p","device_type":"t","protocol_type":"MQTT","service_capabilities":null}"#;
    rejected_at(create(from_bytes(body).unwrap()), "service_capabilities");
    let body = br#"{"name":"p","device_type":"t","protocol_type":"MQTT",
        "service_capabilities":[{"service_type":"t"}]}"#;
    rejected_at(create(from_bytes(body).unwrap()), "service_capabilities[0].service_id");
}

#[test]
fn wrong_json_types_are_parse_errors() {
    let body = br#"{"name":5,"device_type":"t","protocol_type":"MQTT","service_capabilities":[]}"#;
    assert!(from_bytes::<CreateProductRequest>(body).is_err());
    let body = br#"{"service_capabilities":[{"service_id":"s","properties":[{"min":0}]}]}"#;
    assert!(from_bytes::<CreateProductRequest>(body).is_err(), "min is a string, not a number");
}

/// The ShowProduct example from IoTDA's API reference, as a create body: `null` enum lists,
/// `min`/`max` and `max_length` on a string para, an event. It must be accepted unchanged.
#[test]
fn iotda_reference_example_is_accepted() {
    let body = br#"{
      "name": "Thermometer", "device_type": "Thermometer", "protocol_type": "MQTT",
      "data_format": "json", "manufacturer_name": "ABC", "industry": "smartCity",
      "description": "this is a thermometer produced by Huawei",
      "service_capabilities": [{
        "service_id": "temperature", "service_type": "temperature",
        "properties": [{
          "property_name": "temperature", "required": true, "data_type": "decimal",
          "enum_list": null, "min": "1", "max": "100", "max_length": 100, "step": 0.1,
          "unit": "centigrade", "method": "RW", "description": "force",
          "default_value": {"color": "red", "size": 1}
        }],
        "commands": [{
          "command_name": "reboot",
          "paras": [{"para_name": "force", "required": false, "data_type": "string", "enum_list": null,
                     "min": "1", "max": "100", "max_length": 100, "step": 0.1, "unit": "km/h",
                     "description": "force"}],
          "responses": [{"response_name": "ACK", "paras": [{"para_name": "force", "required": false,
                     "data_type": "string", "min": "1", "max": "100", "max_length": 100}]}]
        }],
        "events": [{"event_type": "reboot", "paras": [{"para_name": "force", "data_type": "string"}]}],
        "description": "temperature", "option": "Mandatory"
      }]
    }"#;
    let product = create(from_bytes(body).unwrap()).unwrap();
    let service = product.service("temperature").unwrap();
    assert_eq!(service.option.as_deref(), Some("Mandatory"));
    assert_eq!(service.events[0].event_type, "reboot");
    assert_eq!(service.property("temperature").unwrap().step, Some(0.1));
}

#[test]
fn summary_drops_service_capabilities() {
    let product = smartwater();
    let summary = ProductSummary::from(&product);
    assert_eq!(summary.product_id, product.product_id);
    assert_eq!(summary.create_time, product.create_time);
    let json = String::from_utf8(to_vec(&summary)).unwrap();
    assert!(!json.contains("service_capabilities"), "{json}");
    assert!(json.contains(r#""name":"Smart water meter""#), "{json}");
}

#[test]
fn update_body_parses_with_every_field_optional() {
    let request: UpdateProductRequest = from_bytes(br#"{"description":"new"}"#).unwrap();
    assert_eq!(request.description.as_deref(), Some("new"));
    assert!(request.name.is_none() && request.service_capabilities.is_none());
    assert_eq!(to_vec(&UpdateProductRequest::default()), b"{}");
}
