//! Product-level rules of CreateProduct, and UpdateProduct.

use super::*;
use crate::model::{apply_update, UpdateProductRequest};

fn long(chars: usize) -> String {
    "x".repeat(chars)
}

#[test]
fn product_id_rules() {
    let with_id = |product_id: &str| {
        create(CreateProductRequest { product_id: Some(product_id.to_owned()), ..smartwater_request() })
    };
    assert_eq!(with_id(&"a".repeat(36)).unwrap().product_id.len(), 36);
    assert!(with_id("Ab_9-z").is_ok());
    let message = rejected_at(with_id(&"a".repeat(37)), "product_id");
    assert_eq!(message, "product_id is 37 characters long; the limit is 36");
    let message = rejected_at(with_id("water meter"), "product_id");
    assert_eq!(message, "product_id 'water meter' may contain only letters, digits, '_' and '-'");
    rejected_at(with_id("é"), "product_id");
    rejected_at(with_id(""), "product_id");
}

#[test]
fn name_is_required_and_at_most_64_characters() {
    let with_name = |name: String| create(CreateProductRequest { name, ..smartwater_request() });
    assert!(with_name(long(64)).is_ok());
    assert!(with_name("水表".repeat(32)).is_ok(), "limits count characters, not bytes");
    rejected_at(with_name(long(65)), "name");
    assert_eq!(rejected_at(with_name(String::new()), "name"), "name is required");
}

#[test]
fn device_type_is_required_and_at_most_32_characters() {
    let with_type =
        |device_type: String| create(CreateProductRequest { device_type, ..smartwater_request() });
    assert!(with_type(long(32)).is_ok());
    rejected_at(with_type(long(33)), "device_type");
    rejected_at(with_type(String::new()), "device_type");
}

#[test]
fn protocol_type_must_be_listed() {
    let with_protocol = |protocol_type: &str| {
        create(CreateProductRequest { protocol_type: protocol_type.to_owned(), ..smartwater_request() })
    };
    for protocol_type in
        ["MQTT", "CoAP", "HTTP", "HTTPS", "Modbus", "ONVIF", "OPC-UA", "OPC-DA", "Other", "TCP", "UDP"]
    {
        assert!(with_protocol(protocol_type).is_ok(), "{protocol_type}");
    }
    let message = rejected_at(with_protocol("mqtt"), "protocol_type");
    assert!(message.starts_with("protocol_type 'mqtt' is not one of: MQTT, CoAP"), "{message}");
    assert_eq!(rejected_at(with_protocol(""), "protocol_type"), "protocol_type is required");
}

#[test]
fn data_format_is_json_or_binary() {
    let with_format = |data_format: &str| {
        create(CreateProductRequest { data_format: Some(data_format.to_owned()), ..smartwater_request() })
    };
    assert_eq!(with_format("binary").unwrap().data_format, "binary");
    assert_eq!(with_format("json").unwrap().data_format, "json");
    rejected_at(with_format("xml"), "data_format");
    rejected_at(with_format("JSON"), "data_format");
}

#[test]
fn service_capabilities_may_be_empty() {
    assert!(create(request_with(Vec::new())).unwrap().service_capabilities.is_empty());
}

#[test]
fn optional_texts_have_limits() {
    let base = smartwater_request;
    assert!(create(CreateProductRequest { manufacturer_name: Some(long(32)), ..base() }).is_ok());
    rejected_at(
        create(CreateProductRequest { manufacturer_name: Some(long(33)), ..base() }),
        "manufacturer_name",
    );
    assert!(create(CreateProductRequest { industry: Some(long(64)), ..base() }).is_ok());
    rejected_at(create(CreateProductRequest { industry: Some(long(65)), ..base() }), "industry");
    assert!(create(CreateProductRequest { description: Some(long(128)), ..base() }).is_ok());
    rejected_at(create(CreateProductRequest { description: Some(long(129)), ..base() }), "description");
}

#[test]
fn app_id_names_the_resource_space() {
    let with_app = |app_id: &str| {
        create(CreateProductRequest { app_id: Some(app_id.to_owned()), ..smartwater_request() })
    };
    let product = with_app("space_1").unwrap();
    assert_eq!((product.app_id.as_str(), product.app_name.as_str()), ("space_1", "space_1"));
    rejected_at(with_app(&"a".repeat(37)), "app_id");
    rejected_at(with_app("a/b"), "app_id");
}

#[test]
fn first_broken_field_in_spec_order_is_reported() {
    let request = CreateProductRequest {
        name: String::new(),
        protocol_type: "bogus".to_owned(),
        ..smartwater_request()
    };
    rejected_at(create(request), "name");
}

#[test]
fn update_changes_only_present_fields() {
    let existing = smartwater();
    let request = UpdateProductRequest {
        name: Some("Renamed".to_owned()),
        data_format: Some("binary".to_owned()),
        industry: Some("water".to_owned()),
        ..Default::default()
    };
    let updated = apply_update(&existing, request).unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.data_format, "binary");
    assert_eq!(updated.industry.as_deref(), Some("water"));
    assert_eq!(updated.product_id, existing.product_id);
    assert_eq!(updated.create_time, existing.create_time);
    assert_eq!(updated.device_type, existing.device_type);
    assert_eq!(updated.manufacturer_name, existing.manufacturer_name);
    assert_eq!(updated.service_capabilities, existing.service_capabilities);
}

#[test]
fn empty_update_changes_nothing() {
    let existing = smartwater();
    assert_eq!(apply_update(&existing, UpdateProductRequest::default()).unwrap(), existing);
}

#[test]
fn update_applies_the_create_rules() {
    let existing = smartwater();
    let update = |request: UpdateProductRequest| apply_update(&existing, request);
    rejected_at(update(UpdateProductRequest { name: Some(String::new()), ..Default::default() }), "name");
    rejected_at(
        update(UpdateProductRequest { device_type: Some(long(33)), ..Default::default() }),
        "device_type",
    );
    rejected_at(
        update(UpdateProductRequest { protocol_type: Some("LWM2M".into()), ..Default::default() }),
        "protocol_type",
    );
    rejected_at(
        update(UpdateProductRequest { data_format: Some("xml".into()), ..Default::default() }),
        "data_format",
    );
    rejected_at(
        update(UpdateProductRequest { manufacturer_name: Some(long(33)), ..Default::default() }),
        "manufacturer_name",
    );
    rejected_at(update(UpdateProductRequest { industry: Some(long(65)), ..Default::default() }), "industry");
    rejected_at(
        update(UpdateProductRequest { description: Some(long(129)), ..Default::default() }),
        "description",
    );
}

#[test]
fn update_replaces_and_validates_service_capabilities() {
    let existing = smartwater();
    let replaced = apply_update(
        &existing,
        UpdateProductRequest { service_capabilities: Some(vec![service("gas")]), ..Default::default() },
    )
    .unwrap();
    assert!(replaced.service("water").is_none());
    assert_eq!(replaced.service("gas").unwrap().option.as_deref(), Some("Optional"));

    let duplicate = UpdateProductRequest {
        service_capabilities: Some(vec![service("gas"), service("gas")]),
        ..Default::default()
    };
    let message = rejected_at(apply_update(&existing, duplicate), "service_capabilities[1].service_id");
    assert_eq!(message, "duplicate service_id 'gas'");
}

#[test]
fn update_cannot_move_a_product_to_another_resource_space() {
    let existing = smartwater();
    let same = UpdateProductRequest { app_id: Some("default".to_owned()), ..Default::default() };
    assert!(apply_update(&existing, same).is_ok());
    let other = UpdateProductRequest { app_id: Some("other".to_owned()), ..Default::default() };
    let message = rejected_at(apply_update(&existing, other), "app_id");
    assert!(message.contains("cannot change resource space"), "{message}");
}
