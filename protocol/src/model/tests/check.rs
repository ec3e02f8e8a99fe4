//! Checking commands and property set/get against the product model (`model::check`).

use simd_json::OwnedValue;

use super::*;
use crate::model::check::{check_command, check_property_get, check_property_set, check_value, ValueRules};
use crate::model::DataType;

fn json(text: &str) -> OwnedValue {
    simd_json::to_owned_value(&mut text.as_bytes().to_vec()).expect("test JSON parses")
}

fn bounded(mut para: ServiceCommandPara, min: &str, max: &str) -> ServiceCommandPara {
    para.min = Some(min.to_owned());
    para.max = Some(max.to_owned());
    para
}

/// Service `water`: `level` int 0–100 `RE`, `target` int 0–100 `RW`, `mode` enum AUTO/MANUAL
/// `RW`, `note` string ≤ 5 `RW`; command `ON_OFF` with `value` enum ON/OFF (required), `delay`
/// int 0–60 and `label` string ≤ 4. Service `meter` has neither properties nor commands.
fn water_product() -> Product {
    let int_property = |name: &str, method: &str| ServiceProperty {
        min: Some("0".to_owned()),
        max: Some("100".to_owned()),
        method: method.to_owned(),
        ..property(name, "int")
    };
    let properties = vec![
        int_property("level", "RE"),
        int_property("target", "RW"),
        ServiceProperty {
            enum_list: Some(vec!["AUTO".to_owned(), "MANUAL".to_owned()]),
            ..property("mode", "enum")
        },
        ServiceProperty { max_length: Some(5), ..property("note", "string") },
    ];
    let paras = vec![
        ServiceCommandPara {
            required: true,
            enum_list: Some(vec!["ON".to_owned(), "OFF".to_owned()]),
            ..para("value", "enum")
        },
        bounded(para("delay", "int"), "0", "60"),
        ServiceCommandPara { max_length: Some(4), ..para("label", "string") },
    ];
    let water =
        ServiceCapability { properties, commands: vec![command("ON_OFF", paras)], ..service("water") };
    create(request_with(vec![water, service("meter")])).expect("the water product is valid")
}

fn on_off(paras: &str) -> Result<(), ValidationError> {
    check_command(&water_product(), Some("water"), Some("ON_OFF"), Some(&json(paras)))
}

fn set(properties: &str) -> Result<(), ValidationError> {
    check_property_set(&water_product(), &[("water".to_owned(), json(properties))])
}

fn value_of(data_type: DataType, rules: ValueRules<'_>, value: &str) -> Result<(), ValidationError> {
    check_value("v", data_type, rules, &json(value))
}

// ---- commands ----

#[test]
fn command_accepts_good_paras() {
    assert_eq!(on_off(r#"{"value":"ON"}"#), Ok(()));
    assert_eq!(on_off(r#"{"value":"OFF","delay":0,"label":"abcd"}"#), Ok(()));
    assert_eq!(on_off(r#"{"value":"OFF","delay":60,"label":""}"#), Ok(()));
}

#[test]
fn command_rejects_unknown_service_and_command() {
    let product = water_product();
    let paras = json(r#"{"value":"ON"}"#);
    let message =
        rejected_at(check_command(&product, Some("gas"), Some("ON_OFF"), Some(&paras)), "service_id");
    assert_eq!(message, "unknown service 'gas'");
    let message =
        rejected_at(check_command(&product, Some("water"), Some("X"), Some(&paras)), "command_name");
    assert_eq!(message, "unknown command 'X' in service 'water'");
    rejected_at(check_command(&product, Some("meter"), Some("ON_OFF"), Some(&paras)), "command_name");
}

#[test]
fn command_rejects_missing_required_para() {
    assert_eq!(rejected_at(on_off(r#"{"delay":5}"#), "paras.value"), "required para 'value' is missing");
    let product = water_product();
    let result = check_command(&product, Some("water"), Some("ON_OFF"), None);
    assert_eq!(rejected_at(result, "paras.value"), "required para 'value' is missing");
}

#[test]
fn command_rejects_bad_para_values() {
    assert_eq!(rejected_at(on_off(r#"{"value":"MAYBE"}"#), "paras.value"), "'MAYBE' is not one of ON, OFF");
    assert_eq!(
        rejected_at(on_off(r#"{"value":"ON","delay":61}"#), "paras.delay"),
        "value 61 is above max 60"
    );
    assert_eq!(rejected_at(on_off(r#"{"value":"ON","delay":-1}"#), "paras.delay"), "value -1 is below min 0");
    assert_eq!(
        rejected_at(on_off(r#"{"value":"ON","delay":1.5}"#), "paras.delay"),
        "expected an integer (int), got 1.5"
    );
    assert_eq!(
        rejected_at(on_off(r#"{"value":"ON","label":"abcde"}"#), "paras.label"),
        "value is 5 characters long; the limit is 4"
    );
    rejected_at(on_off(r#"{"value":1}"#), "paras.value");
    rejected_at(on_off(r#"{"value":null}"#), "paras.value");
}

#[test]
fn command_rejects_unknown_para() {
    let message = rejected_at(on_off(r#"{"value":"ON","speed":3}"#), "paras.speed");
    assert_eq!(message, "unknown para 'speed' in command 'ON_OFF'");
}

#[test]
fn command_reports_the_first_bad_para_by_name() {
    // Both are wrong; the report does not depend on hash order.
    rejected_at(on_off(r#"{"value":"ON","label":"toolong","delay":99}"#), "paras.delay");
}

#[test]
fn free_format_command_checks_only_the_object_shape() {
    let product = water_product();
    for paras in [r#"{}"#, r#"{"anything":[1,2],"value":"MAYBE"}"#] {
        assert_eq!(check_command(&product, None, None, Some(&json(paras))), Ok(()));
        assert_eq!(check_command(&product, None, Some("whatever"), Some(&json(paras))), Ok(()));
    }
    assert_eq!(check_command(&product, None, None, None), Ok(()));
    for paras in [r#""on""#, "[1]", "1", "null", "true"] {
        let message = rejected_at(check_command(&product, None, None, Some(&json(paras))), "paras");
        assert!(message.starts_with("paras must be a JSON object"), "{message}");
    }
    let result = check_command(&product, Some("water"), Some("ON_OFF"), Some(&json(r#""ON""#)));
    assert_eq!(rejected_at(result, "paras"), "paras must be a JSON object, got the string 'ON'");
}

#[test]
fn service_without_command_name_checks_only_the_service() {
    let product = water_product();
    let paras = json(r#"{"free":1}"#);
    assert_eq!(check_command(&product, Some("water"), None, Some(&paras)), Ok(()));
    rejected_at(check_command(&product, Some("gas"), None, Some(&paras)), "service_id");
}

// ---- properties ----

#[test]
fn property_set_accepts_writable_good_values() {
    assert_eq!(set(r#"{"target":100,"mode":"MANUAL","note":"hello"}"#), Ok(()));
    assert_eq!(set(r#"{}"#), Ok(()));
    let product = water_product();
    let services = [("water".to_owned(), json(r#"{"target":0}"#)), ("meter".to_owned(), json("{}"))];
    assert_eq!(check_property_set(&product, &services), Ok(()));
}

#[test]
fn property_set_rejects_each_bad_case() {
    let at = |name: &str| format!("services[0].properties.{name}");
    assert_eq!(rejected_at(set(r#"{"level":50}"#), &at("level")), "property 'level' is not writable");
    assert_eq!(rejected_at(set(r#"{"target":150}"#), &at("target")), "value 150 is above max 100");
    assert_eq!(rejected_at(set(r#"{"target":-3}"#), &at("target")), "value -3 is below min 0");
    rejected_at(set(r#"{"target":"50"}"#), &at("target"));
    assert_eq!(rejected_at(set(r#"{"mode":"OFF"}"#), &at("mode")), "'OFF' is not one of AUTO, MANUAL");
    assert_eq!(
        rejected_at(set(r#"{"note":"hello!"}"#), &at("note")),
        "value is 6 characters long; the limit is 5"
    );
    assert_eq!(
        rejected_at(set(r#"{"depth":1}"#), &at("depth")),
        "unknown property 'depth' in service 'water'"
    );
}

#[test]
fn property_set_rejects_bad_services() {
    let product = water_product();
    assert_eq!(
        rejected_at(check_property_set(&product, &[]), "services"),
        "services must list at least one service"
    );
    let services = [("water".to_owned(), json("{}")), ("gas".to_owned(), json("{}"))];
    assert_eq!(
        rejected_at(check_property_set(&product, &services), "services[1].service_id"),
        "unknown service 'gas'"
    );
    let services = [("water".to_owned(), json("[]"))];
    let message = rejected_at(check_property_set(&product, &services), "services[0].properties");
    assert_eq!(message, "properties must be a JSON object, got an array");
    let services = [("meter".to_owned(), json(r#"{"target":1}"#))];
    rejected_at(check_property_set(&product, &services), "services[0].properties.target");
}

#[test]
fn property_get_needs_a_known_service() {
    let product = water_product();
    assert_eq!(check_property_get(&product, "water"), Ok(()));
    assert_eq!(check_property_get(&product, "meter"), Ok(()));
    assert_eq!(rejected_at(check_property_get(&product, "gas"), "service_id"), "unknown service 'gas'");
}

// ---- single values ----

#[test]
fn int_and_long_are_json_integers_within_their_width() {
    let none = ValueRules::default();
    assert_eq!(value_of(DataType::Int, none, "2147483647"), Ok(()));
    assert_eq!(value_of(DataType::Int, none, "-2147483648"), Ok(()));
    assert_eq!(
        rejected_at(value_of(DataType::Int, none, "2147483648"), "v"),
        "value 2147483648 is out of range for int"
    );
    assert_eq!(value_of(DataType::Long, none, "2147483648"), Ok(()));
    assert_eq!(value_of(DataType::Long, none, "-9223372036854775808"), Ok(()));
    assert_eq!(
        rejected_at(value_of(DataType::Long, none, "9223372036854775808"), "v"),
        "value 9223372036854775808 is out of range for long"
    );
    assert_eq!(
        rejected_at(value_of(DataType::Long, none, "2.0"), "v"),
        "expected an integer (long), got 2.0"
    );
    for bad in ["1.5", r#""1""#, "true", "null", "[]", "{}"] {
        rejected_at(value_of(DataType::Int, none, bad), "v");
    }
    let rules = ValueRules { min: Some("-5"), max: Some("5"), ..ValueRules::default() };
    assert_eq!(value_of(DataType::Long, rules, "-5"), Ok(()));
    assert_eq!(value_of(DataType::Long, rules, "5"), Ok(()));
    assert_eq!(rejected_at(value_of(DataType::Long, rules, "6"), "v"), "value 6 is above max 5");
    // An unparsable bound (impossible on a validated product) is ignored.
    let odd = ValueRules { max: Some("lots"), ..ValueRules::default() };
    assert_eq!(value_of(DataType::Int, odd, "6"), Ok(()));
}

#[test]
fn decimal_is_any_number_within_float_bounds() {
    let rules = ValueRules { min: Some("-1.5"), max: Some("2.5"), ..ValueRules::default() };
    for good in ["0", "2.5", "-1.5", "1e0", "2"] {
        assert_eq!(value_of(DataType::Decimal, rules, good), Ok(()), "{good}");
    }
    assert_eq!(rejected_at(value_of(DataType::Decimal, rules, "2.6"), "v"), "value 2.6 is above max 2.5");
    assert_eq!(rejected_at(value_of(DataType::Decimal, rules, "-2"), "v"), "value -2 is below min -1.5");
    assert_eq!(
        rejected_at(value_of(DataType::Decimal, rules, r#""1.0""#), "v"),
        "expected a number (decimal), got the string '1.0'"
    );
}

#[test]
fn string_enum_and_string_list_rules() {
    let list = vec!["a".to_owned(), "bb".to_owned()];
    let in_list = ValueRules { enum_list: Some(&list), ..ValueRules::default() };
    assert_eq!(value_of(DataType::String, in_list, r#""bb""#), Ok(()));
    assert_eq!(rejected_at(value_of(DataType::String, in_list, r#""c""#), "v"), "'c' is not one of a, bb");
    assert_eq!(value_of(DataType::String, ValueRules::default(), r#""anything at all""#), Ok(()));
    rejected_at(value_of(DataType::String, ValueRules::default(), "5"), "v");
    // Lengths count characters, not bytes.
    let short = ValueRules { max_length: Some(2), ..ValueRules::default() };
    assert_eq!(value_of(DataType::String, short, r#""水表""#), Ok(()));

    assert_eq!(value_of(DataType::Enum, in_list, r#""a""#), Ok(()));
    rejected_at(value_of(DataType::Enum, in_list, r#""A""#), "v");
    rejected_at(value_of(DataType::Enum, in_list, "1"), "v");

    let list_rules = ValueRules { max_length: Some(2), enum_list: Some(&list), ..ValueRules::default() };
    assert_eq!(value_of(DataType::StringList, list_rules, r#"["a","bb"]"#), Ok(()));
    assert_eq!(value_of(DataType::StringList, list_rules, "[]"), Ok(()));
    assert_eq!(
        rejected_at(value_of(DataType::StringList, list_rules, r#"["a",1]"#), "v[1]"),
        "expected a string, got 1"
    );
    rejected_at(value_of(DataType::StringList, list_rules, r#"["a","c"]"#), "v[1]");
    rejected_at(value_of(DataType::StringList, short, r#"["abc"]"#), "v[0]");
    rejected_at(value_of(DataType::StringList, list_rules, r#""a""#), "v");
}

#[test]
fn boolean_datetime_and_json_object_rules() {
    let none = ValueRules::default();
    assert_eq!(value_of(DataType::Boolean, none, "true"), Ok(()));
    assert_eq!(value_of(DataType::Boolean, none, "false"), Ok(()));
    assert_eq!(
        rejected_at(value_of(DataType::Boolean, none, r#""true""#), "v"),
        "expected true or false, got the string 'true'"
    );
    rejected_at(value_of(DataType::Boolean, none, "1"), "v");

    assert_eq!(value_of(DataType::DateTime, none, r#""20240229T235959Z""#), Ok(()));
    let message = rejected_at(value_of(DataType::DateTime, none, r#""2024-02-29T23:59:59Z""#), "v");
    assert!(message.starts_with("not a DateTime: "), "{message}");
    rejected_at(value_of(DataType::DateTime, none, r#""20230229T000000Z""#), "v");
    rejected_at(value_of(DataType::DateTime, none, "20240229"), "v");

    assert_eq!(value_of(DataType::JsonObject, none, r#"{"a":[1,{"b":null}]}"#), Ok(()));
    assert_eq!(value_of(DataType::JsonObject, none, "{}"), Ok(()));
    assert_eq!(
        rejected_at(value_of(DataType::JsonObject, none, "[]"), "v"),
        "expected a JSON object, got an array"
    );
}

#[test]
fn long_strings_are_shortened_in_messages() {
    let list = vec!["ON".to_owned()];
    let rules = ValueRules { enum_list: Some(&list), ..ValueRules::default() };
    let message =
        rejected_at(check_value("v", DataType::Enum, rules, &OwnedValue::from("x".repeat(100))), "v");
    assert_eq!(message, format!("'{}…' is not one of ON", "x".repeat(32)));
}

#[test]
fn json_object_depth_and_string_list_size_are_bounded_with_their_fault() {
    use crate::model::check::{check_value_fault, ValueFault, CONTAINER_BYTES_MAX, CONTAINER_DEPTH_MAX};
    let none = ValueRules::default();
    let nested = |depth: usize| json(&format!("{}1{}", r#"{"a":["#.repeat(depth), "]}".repeat(depth)));
    // Each `{"a":[…]}` is two containers.
    let fault =
        |data_type, value: &OwnedValue| check_value_fault("v", data_type, none, value).map_err(|r| r.fault);
    assert_eq!(fault(DataType::JsonObject, &nested(CONTAINER_DEPTH_MAX / 2)), Ok(()));
    assert_eq!(fault(DataType::JsonObject, &nested(CONTAINER_DEPTH_MAX / 2 + 1)), Err(ValueFault::TooDeep));
    assert_eq!(fault(DataType::JsonObject, &nested(400)), Err(ValueFault::TooDeep));
    let message = rejected_at(check_value("v", DataType::JsonObject, none, &nested(400)), "v");
    assert_eq!(message, format!("the object nests more than {CONTAINER_DEPTH_MAX} levels deep"));

    let list = |item_bytes: usize| OwnedValue::from(vec![OwnedValue::from("x".repeat(item_bytes))]);
    assert_eq!(fault(DataType::StringList, &list(CONTAINER_BYTES_MAX - 4)), Ok(()));
    assert_eq!(fault(DataType::StringList, &list(CONTAINER_BYTES_MAX - 3)), Err(ValueFault::TooLarge));
    assert_eq!(fault(DataType::Int, &json("null")), Err(ValueFault::WrongType));
}
