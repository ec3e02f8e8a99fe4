//! Checking a device's property report against the product model (`model::report`): every
//! drop reason, and the valid rest of the report kept.

use super::*;
use crate::model::check::{CONTAINER_BYTES_MAX, CONTAINER_DEPTH_MAX};
use crate::model::report::{check_report, CheckedReport, DropReason};
use crate::shadow::PropertyReport;

/// Service `water`: `level` int 0–100 (`R`), `mode` enum AUTO/MANUAL, `note` string ≤ 5,
/// `config` jsonObject, `tags` string list, `since` DateTime. Service `meter` has no properties.
fn water_product() -> Product {
    let properties = vec![
        ServiceProperty {
            min: Some("0".to_owned()),
            max: Some("100".to_owned()),
            method: "R".to_owned(),
            ..property("level", "int")
        },
        ServiceProperty {
            enum_list: Some(vec!["AUTO".to_owned(), "MANUAL".to_owned()]),
            ..property("mode", "enum")
        },
        ServiceProperty { max_length: Some(5), ..property("note", "string") },
        property("config", "jsonObject"),
        property("tags", "string list"),
        property("since", "DateTime"),
    ];
    let water = ServiceCapability { properties, ..service("water") };
    create(request_with(vec![water, service("meter")])).expect("the water product is valid")
}

fn report(json: &str) -> PropertyReport {
    from_bytes(json.as_bytes()).expect("test report parses")
}

fn check(json: &str) -> CheckedReport {
    check_report(Some(&water_product()), report(json))
}

/// `(service_id, property_name, reason)` of each dropped value.
fn drops(checked: &CheckedReport) -> Vec<(&str, &str, DropReason)> {
    checked
        .dropped
        .iter()
        .map(|dropped| (dropped.service_id.as_str(), dropped.property_name.as_str(), dropped.reason))
        .collect()
}

fn nested_object(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[test]
fn a_conforming_report_is_kept_whole() {
    let json = r#"{"services":[{"service_id":"water","event_time":"20240101T000000Z","properties":
        {"level":42,"mode":"AUTO","note":"hi","config":{"a":[1,{"b":null}]},"tags":["x","y"],
         "since":"20240229T235959Z"}}]}"#;
    let checked = check(json);
    assert_eq!(checked.dropped, []);
    assert_eq!(checked.accepted, report(json));
}

#[test]
fn each_bad_value_is_dropped_with_its_reason_and_the_valid_rest_kept() {
    let deep = nested_object(1000);
    let json = format!(
        r#"{{"services":[{{"service_id":"water","event_time":"20240101T000000Z","properties":{{
            "level":101,"mode":"OFF","note":"too long","config":{deep},"tags":["ok",5],
            "since":"2024-02-29","unknown":1,"unknown_too":null}}}},
          {{"service_id":"water2","properties":{{"level":1}}}},
          {{"service_id":"meter","properties":{{"level":1}}}},
          {{"service_id":"water","properties":{{"level":7}}}}]}}"#
    );
    let checked = check(&json);
    let expected = vec![
        ("water", "config", DropReason::TooDeep),
        ("water", "level", DropReason::OutOfRange),
        ("water", "mode", DropReason::NotInEnum),
        ("water", "note", DropReason::TooLong),
        ("water", "since", DropReason::WrongType),
        ("water", "tags", DropReason::WrongType),
        ("water", "unknown", DropReason::UnknownProperty),
        ("water", "unknown_too", DropReason::UnknownProperty),
        ("water2", "level", DropReason::UnknownService),
        ("meter", "level", DropReason::UnknownProperty),
    ];
    assert_eq!(drops(&checked), expected);

    // Only the last water entry had a good value; the first lost all of its values, so it is
    // gone with its event_time rather than kept empty.
    assert_eq!(checked.accepted, report(r#"{"services":[{"service_id":"water","properties":{"level":7}}]}"#));

    let mixed = check(
        r#"{"services":[{"service_id":"water","event_time":"20240101T000000Z","properties":{"level":101,"note":"ok"}}]}"#,
    );
    assert_eq!(drops(&mixed), [("water", "level", DropReason::OutOfRange)]);
    assert_eq!(
        mixed.accepted,
        report(
            r#"{"services":[{"service_id":"water","event_time":"20240101T000000Z","properties":{"note":"ok"}}]}"#
        ),
        "the valid value stays, with the service's event_time"
    );
}

#[test]
fn null_and_wrong_json_types_are_wrong_type() {
    let checked = check(
        r#"{"services":[{"service_id":"water","properties":{"level":null,"mode":1,"note":[],"config":[],"tags":"x"}}]}"#,
    );
    assert!(checked.dropped.iter().all(|dropped| dropped.reason == DropReason::WrongType), "{checked:?}");
    assert_eq!(checked.dropped.len(), 5);
    assert!(checked.accepted.services.is_empty(), "nothing left to apply");
}

#[test]
fn a_value_beyond_int_width_is_out_of_range_and_a_float_is_wrong_type() {
    let checked = check(
        r#"{"services":[{"service_id":"water","properties":{"level":4294967296}},{"service_id":"water","properties":{"level":1.5}}]}"#,
    );
    let reasons: Vec<_> = checked.dropped.iter().map(|dropped| dropped.reason).collect();
    assert_eq!(reasons, [DropReason::OutOfRange, DropReason::WrongType]);
}

#[test]
fn json_objects_and_string_lists_are_bounded_in_depth_and_size() {
    let at_limit = nested_object(CONTAINER_DEPTH_MAX);
    let over = nested_object(CONTAINER_DEPTH_MAX + 1);
    let big_object = format!(r#"{{"a":"{}"}}"#, "x".repeat(CONTAINER_BYTES_MAX));
    let big_list = format!(r#"["{}"]"#, "x".repeat(CONTAINER_BYTES_MAX));
    let checked = check(&format!(
        r#"{{"services":[
            {{"service_id":"water","properties":{{"config":{at_limit}}}}},
            {{"service_id":"water","properties":{{"config":{over}}}}},
            {{"service_id":"water","properties":{{"config":{big_object}}}}},
            {{"service_id":"water","properties":{{"tags":{big_list}}}}}]}}"#
    ));
    let reasons: Vec<_> = checked.dropped.iter().map(|dropped| dropped.reason).collect();
    assert_eq!(reasons, [DropReason::TooDeep, DropReason::TooLarge, DropReason::TooLarge]);
    assert_eq!(checked.accepted.services.len(), 1, "{CONTAINER_DEPTH_MAX} levels are allowed");
    assert!(
        checked.dropped.iter().all(|dropped| dropped.detail.len() < 200),
        "details stay short however large the value"
    );
}

#[test]
fn a_string_list_is_measured_as_the_json_it_is_stored_as() {
    // Each item decodes to 12,000 one-byte characters but is stored as 72,000 bytes of
    // `\u0001` escapes: four of them are 288 KB of JSON, far over the bound.
    let item = "\\u0001".repeat(12_000);
    let list = format!(r#"["{item}","{item}","{item}","{item}"]"#);
    let checked =
        check(&format!(r#"{{"services":[{{"service_id":"water","properties":{{"tags":{list}}}}}]}}"#));
    let reasons: Vec<_> = checked.dropped.iter().map(|dropped| dropped.reason).collect();
    assert_eq!(reasons, [DropReason::TooLarge]);
    assert!(checked.accepted.services.is_empty());
}

#[test]
fn a_product_without_a_model_keeps_nothing() {
    let json = r#"{"services":[{"service_id":"water","properties":{"level":1,"mode":"AUTO"}}]}"#;
    let bare = create(request_with(vec![])).unwrap();
    for product in [None, Some(&bare)] {
        let checked = check_report(product, report(json));
        assert!(checked.accepted.services.is_empty());
        assert_eq!(checked.dropped.len(), 2);
        assert!(checked.dropped.iter().all(|dropped| dropped.reason == DropReason::UnknownService));
    }
}

#[test]
fn a_service_reported_without_properties_is_kept_as_before() {
    let json = r#"{"services":[{"service_id":"meter","properties":{},"event_time":"20240101T000000Z"}]}"#;
    let checked = check(json);
    assert_eq!(checked.accepted, report(json));
    assert_eq!(checked.dropped, []);
}

#[test]
fn reasons_have_stable_labels_and_indices() {
    for (index, reason) in DropReason::ALL.into_iter().enumerate() {
        assert_eq!(reason.index(), index);
    }
    let labels: Vec<_> = DropReason::ALL.iter().map(|reason| reason.as_str()).collect();
    assert_eq!(
        labels,
        [
            "unknown_service",
            "unknown_property",
            "wrong_type",
            "out_of_range",
            "not_in_enum",
            "too_long",
            "too_deep",
            "too_large"
        ]
    );
}
