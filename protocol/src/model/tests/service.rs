//! Service-capability rules: every rule accepts the good case and names the bad field.

use super::*;
use crate::model::{DataType, ServiceCommandResponse, ServiceEvent};

const SERVICE_0: &str = "service_capabilities[0]";

fn at(suffix: &str) -> String {
    format!("{SERVICE_0}.{suffix}")
}

#[test]
fn at_most_500_services() {
    let services = |count: usize| (0..count).map(|index| service(&format!("s{index}"))).collect();
    assert!(create(request_with(services(500))).is_ok());
    let message = rejected_at(create(request_with(services(501))), "service_capabilities");
    assert_eq!(message, "service_capabilities has 501 entries; the limit is 500");
}

#[test]
fn service_capabilities_json_is_at_most_500_kib() {
    // 4 services × 500 properties × ~330 bytes ≈ 660 KB: every item is valid, only the size is not.
    let big_service = |service_id: &str| ServiceCapability {
        properties: (0..500)
            .map(|index| ServiceProperty {
                description: Some("d".repeat(128)),
                ..property(&format!("{index:0>64}"), "string")
            })
            .collect(),
        ..service(service_id)
    };
    assert!(create(request_with(vec![big_service("a")])).is_ok());
    let services = ["a", "b", "c", "d"].map(big_service).to_vec();
    let message = rejected_at(create(request_with(services)), "service_capabilities");
    assert!(message.contains("bytes of JSON; the limit is 512000"), "{message}");
}

#[test]
fn service_id_and_service_type_rules() {
    assert!(create(request_with(vec![service(&"s".repeat(64))])).is_ok());
    rejected_at(create(request_with(vec![service(&"s".repeat(65))])), &at("service_id"));
    rejected_at(create(request_with(vec![service("")])), &at("service_id"));
    let typed =
        |service_type: &str| ServiceCapability { service_type: service_type.to_owned(), ..service("s") };
    assert!(create(request_with(vec![typed(&"t".repeat(64))])).is_ok());
    rejected_at(create(request_with(vec![typed(&"t".repeat(65))])), &at("service_type"));
    assert_eq!(
        rejected_at(create(request_with(vec![typed("")])), &at("service_type")),
        "service_type is required"
    );
}

#[test]
fn service_ids_are_unique_in_a_product() {
    let result = create(request_with(vec![service("a"), service("b"), service("a")]));
    let message = rejected_at(result, "service_capabilities[2].service_id");
    assert_eq!(message, "duplicate service_id 'a'");
}

#[test]
fn service_description_and_option() {
    let described = |text: &str| ServiceCapability { description: Some(text.to_owned()), ..service("s") };
    assert!(create(request_with(vec![described(&"d".repeat(128))])).is_ok());
    rejected_at(create(request_with(vec![described(&"d".repeat(129))])), &at("description"));
    let with_option = |option: &str| ServiceCapability { option: Some(option.to_owned()), ..service("s") };
    for option in ["Master", "Mandatory", "Optional"] {
        let product = create(request_with(vec![with_option(option)])).unwrap();
        assert_eq!(product.service_capabilities[0].option.as_deref(), Some(option));
    }
    rejected_at(create(request_with(vec![with_option("optional")])), &at("option"));
}

#[test]
fn at_most_500_properties_commands_and_events() {
    let properties = |count: usize| (0..count).map(|i| property(&format!("p{i}"), "int")).collect();
    assert!(with_properties(properties(500)).is_ok());
    rejected_at(with_properties(properties(501)), &at("properties"));
    let commands = |count: usize| (0..count).map(|i| command(&format!("c{i}"), Vec::new())).collect();
    assert!(with_commands(commands(500)).is_ok());
    rejected_at(with_commands(commands(501)), &at("commands"));
    let events = (0..501).map(|i| ServiceEvent { event_type: format!("e{i}"), paras: Vec::new() }).collect();
    rejected_at(create(request_with(vec![ServiceCapability { events, ..service("s") }])), &at("events"));
}

#[test]
fn property_name_rules() {
    assert!(with_properties(vec![property(&"p".repeat(64), "int")]).is_ok());
    rejected_at(with_properties(vec![property(&"p".repeat(65), "int")]), &at("properties[0].property_name"));
    rejected_at(with_properties(vec![property("", "int")]), &at("properties[0].property_name"));
    for bad in ["a.b", "$a", "a\0b"] {
        let message =
            rejected_at(with_properties(vec![property(bad, "int")]), &at("properties[0].property_name"));
        assert!(message.contains("shadow"), "{message}");
    }
    let message = rejected_at(
        with_properties(vec![property("level", "int"), property("level", "long")]),
        &at("properties[1].property_name"),
    );
    assert_eq!(message, "duplicate property_name 'level'");
}

#[test]
fn every_data_type_is_accepted_and_others_are_not() {
    for data_type in DataType::ALL {
        let mut prop = property("p", data_type.as_str());
        if data_type == DataType::Enum {
            prop.enum_list = Some(vec!["A".to_owned()]);
        }
        assert!(with_properties(vec![prop]).is_ok(), "{data_type:?}");
        assert_eq!(DataType::parse(data_type.as_str()), Some(data_type));
    }
    for bad in ["float", "Int", "datetime", "stringlist", ""] {
        rejected_at(with_properties(vec![property("p", bad)]), &at("properties[0].data_type"));
    }
    let message = rejected_at(with_properties(vec![property("p", "float")]), &at("properties[0].data_type"));
    assert!(message.starts_with("data_type 'float' is not one of: int, long, decimal"), "{message}");
}

#[test]
fn method_must_be_listed() {
    for method in ["RWE", "RW", "RE", "WE", "E", "W", "R"] {
        let prop = ServiceProperty { method: method.to_owned(), ..property("p", "int") };
        assert!(with_properties(vec![prop]).is_ok(), "{method}");
    }
    for bad in ["", "X", "ER", "rw"] {
        let prop = ServiceProperty { method: bad.to_owned(), ..property("p", "int") };
        rejected_at(with_properties(vec![prop]), &at("properties[0].method"));
    }
}

fn bounded(data_type: &str, min: Option<&str>, max: Option<&str>) -> ServiceProperty {
    ServiceProperty { min: min.map(str::to_owned), max: max.map(str::to_owned), ..property("p", data_type) }
}

#[test]
fn min_and_max_parse_for_numeric_types() {
    let ok = |data_type, min, max| assert!(with_properties(vec![bounded(data_type, min, max)]).is_ok());
    ok("int", Some("0"), Some("100"));
    ok("int", Some("-5"), Some("-5"));
    ok("long", Some("-999999999999999"), Some("9999999999999999"));
    ok("decimal", Some("-1.5"), Some("2.25"));
    ok("decimal", Some("1e3"), None);
    ok("string", Some("abc"), Some("0"));
    ok("DateTime", Some("20240101"), None);

    let bad = |data_type, min, max, field: &str| {
        rejected_at(with_properties(vec![bounded(data_type, min, max)]), &at(field))
    };
    let message = bad("int", Some("1.5"), None, "properties[0].min");
    assert_eq!(message, "min '1.5' is not an integer (data_type is int)");
    bad("long", None, Some("ten"), "properties[0].max");
    let message = bad("decimal", Some("abc"), None, "properties[0].min");
    assert_eq!(message, "min 'abc' is not a number (data_type is decimal)");
    bad("decimal", Some("NaN"), None, "properties[0].min");
    bad("decimal", None, Some("inf"), "properties[0].max");
}

#[test]
fn min_and_max_are_1_to_16_characters() {
    assert!(with_properties(vec![bounded("long", Some("1000000000000000"), None)]).is_ok());
    rejected_at(
        with_properties(vec![bounded("long", Some("10000000000000000"), None)]),
        &at("properties[0].min"),
    );
    rejected_at(
        with_properties(vec![bounded("string", None, Some(&"9".repeat(17)))]),
        &at("properties[0].max"),
    );
    let message =
        rejected_at(with_properties(vec![bounded("int", Some(""), None)]), &at("properties[0].min"));
    assert_eq!(message, "min must not be empty");
}

#[test]
fn min_must_not_exceed_max() {
    let message =
        rejected_at(with_properties(vec![bounded("int", Some("10"), Some("5"))]), &at("properties[0].min"));
    assert_eq!(message, "min (10) is greater than max (5)");
    rejected_at(
        with_properties(vec![bounded("decimal", Some("0.5"), Some("0.25"))]),
        &at("properties[0].min"),
    );
    // 16-digit longs that an f64 cannot tell apart still compare exactly.
    let close = bounded("long", Some("9007199254740993"), Some("9007199254740992"));
    rejected_at(with_properties(vec![close]), &at("properties[0].min"));
    assert!(
        with_properties(vec![bounded("string", Some("9"), Some("1"))]).is_ok(),
        "not compared for strings"
    );
}

fn enumerated(entries: Option<&[&str]>, max_length: Option<i64>) -> ServiceProperty {
    ServiceProperty {
        enum_list: entries.map(|entries| entries.iter().map(|entry| (*entry).to_owned()).collect()),
        max_length,
        ..property("p", "enum")
    }
}

#[test]
fn enum_list_rules() {
    assert!(with_properties(vec![enumerated(Some(&["ON", "OFF"]), Some(3))]).is_ok());
    let message = rejected_at(with_properties(vec![enumerated(None, None)]), &at("properties[0].enum_list"));
    assert_eq!(message, "enum_list must list at least one value when data_type is enum");
    rejected_at(with_properties(vec![enumerated(Some(&[]), None)]), &at("properties[0].enum_list"));
    let message = rejected_at(
        with_properties(vec![enumerated(Some(&["ON", "OFF", "ON"]), None)]),
        &at("properties[0].enum_list[2]"),
    );
    assert_eq!(message, "duplicate enum_list value 'ON'");
    let message = rejected_at(
        with_properties(vec![enumerated(Some(&["ON", "OFF"]), Some(2))]),
        &at("properties[0].enum_list[1]"),
    );
    assert_eq!(message, "enum_list value 'OFF' is 3 characters long, more than max_length (2)");
    let string_with_enum =
        ServiceProperty { data_type: "string".to_owned(), ..enumerated(Some(&["a", "a"]), None) };
    rejected_at(with_properties(vec![string_with_enum]), &at("properties[0].enum_list[1]"));
}

#[test]
fn max_length_step_unit_and_description() {
    let prop = |edit: fn(&mut ServiceProperty)| {
        let mut prop = property("p", "string");
        edit(&mut prop);
        with_properties(vec![prop])
    };
    assert!(prop(|p| p.max_length = Some(0)).is_ok());
    let message = rejected_at(prop(|p| p.max_length = Some(-1)), &at("properties[0].max_length"));
    assert_eq!(message, "max_length (-1) must not be negative");
    assert!(prop(|p| p.step = Some(0.01)).is_ok());
    rejected_at(prop(|p| p.step = Some(0.0)), &at("properties[0].step"));
    rejected_at(prop(|p| p.step = Some(-1.0)), &at("properties[0].step"));
    assert!(prop(|p| p.unit = Some("u".repeat(16))).is_ok());
    rejected_at(prop(|p| p.unit = Some("u".repeat(17))), &at("properties[0].unit"));
    assert!(prop(|p| p.description = Some("d".repeat(128))).is_ok());
    rejected_at(prop(|p| p.description = Some("d".repeat(129))), &at("properties[0].description"));
}

#[test]
fn command_name_rules() {
    assert!(with_commands(vec![command(&"c".repeat(64), Vec::new())]).is_ok());
    rejected_at(with_commands(vec![command(&"c".repeat(65), Vec::new())]), &at("commands[0].command_name"));
    rejected_at(with_commands(vec![command("", Vec::new())]), &at("commands[0].command_name"));
    let message = rejected_at(
        with_commands(vec![command("ON_OFF", Vec::new()), command("ON_OFF", Vec::new())]),
        &at("commands[1].command_name"),
    );
    assert_eq!(message, "duplicate command_name 'ON_OFF'");
}

#[test]
fn paras_are_checked_like_properties() {
    assert!(with_commands(vec![command("c", vec![para(&"p".repeat(32), "int")])]).is_ok());
    rejected_at(
        with_commands(vec![command("c", vec![para(&"p".repeat(33), "int")])]),
        &at("commands[0].paras[0].para_name"),
    );
    rejected_at(
        with_commands(vec![command("c", vec![para("", "int")])]),
        &at("commands[0].paras[0].para_name"),
    );
    let message = rejected_at(
        with_commands(vec![command("c", vec![para("value", "int"), para("value", "string")])]),
        &at("commands[0].paras[1].para_name"),
    );
    assert_eq!(message, "duplicate para_name 'value'");
    rejected_at(
        with_commands(vec![command("c", vec![para("value", "float")])]),
        &at("commands[0].paras[0].data_type"),
    );
    rejected_at(
        with_commands(vec![command("c", vec![para("value", "enum")])]),
        &at("commands[0].paras[0].enum_list"),
    );
    let inverted =
        ServiceCommandPara { min: Some("5".to_owned()), max: Some("1".to_owned()), ..para("value", "int") };
    let message =
        rejected_at(with_commands(vec![command("c", vec![inverted])]), &at("commands[0].paras[0].min"));
    assert_eq!(message, "min (5) is greater than max (1)");
    let stepped = ServiceCommandPara { step: Some(-0.5), ..para("value", "decimal") };
    rejected_at(with_commands(vec![command("c", vec![stepped])]), &at("commands[0].paras[0].step"));
}

#[test]
fn response_rules() {
    let with_responses = |responses: Vec<ServiceCommandResponse>| {
        with_commands(vec![ServiceCommand { responses, ..command("c", Vec::new()) }])
    };
    let response = |name: &str, paras| ServiceCommandResponse { response_name: name.to_owned(), paras };
    assert!(with_responses(vec![response(&"r".repeat(128), vec![para("result", "int")])]).is_ok());
    rejected_at(
        with_responses(vec![response(&"r".repeat(129), Vec::new())]),
        &at("commands[0].responses[0].response_name"),
    );
    rejected_at(
        with_responses(vec![response("", Vec::new())]),
        &at("commands[0].responses[0].response_name"),
    );
    rejected_at(
        with_responses(vec![response("ok", vec![para("x", "int"), para("x", "int")])]),
        &at("commands[0].responses[0].paras[1].para_name"),
    );
}

#[test]
fn event_rules() {
    let with_events =
        |events: Vec<ServiceEvent>| create(request_with(vec![ServiceCapability { events, ..service("s") }]));
    let event =
        |event_type: &str| ServiceEvent { event_type: event_type.to_owned(), paras: vec![para("p", "int")] };
    assert!(with_events(vec![event(&"e".repeat(32))]).is_ok());
    rejected_at(with_events(vec![event(&"e".repeat(33))]), &at("events[0].event_type"));
    rejected_at(with_events(vec![event("")]), &at("events[0].event_type"));
    rejected_at(with_events(vec![event("e"), event("e")]), &at("events[1].event_type"));
    let bad_para = ServiceEvent { event_type: "e".to_owned(), paras: vec![para("p", "nope")] };
    rejected_at(with_events(vec![bad_para]), &at("events[0].paras[0].data_type"));
}

#[test]
fn errors_name_the_exact_path_in_a_deep_model() {
    let mut product = smartwater_request();
    let services = product.service_capabilities.as_mut().unwrap();
    services.push(ServiceCapability {
        properties: vec![property("ok", "int"), bounded("int", Some("10"), Some("5"))],
        ..service("second")
    });
    let (field, message) = error_of(create(product));
    assert_eq!(field, "service_capabilities[1].properties[1].min");
    assert_eq!(message, "min (10) is greater than max (5)");
}
