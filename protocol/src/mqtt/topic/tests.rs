//! Uplink classification, the subscription ACL, filter matching (the MQTT spec's examples)
//! and the downlink topics.

use super::*;

const ME: &str = "product_1_node-1";

fn uplink(topic: &str) -> Result<Uplink<'_>, TopicRefusal> {
    classify_uplink(ME, topic)
}

fn own(path: &str) -> String {
    format!("$oc/devices/{ME}/{path}")
}

#[test]
fn prefix() {
    assert_eq!(device_prefix(ME), "$oc/devices/product_1_node-1/");
}

#[test]
fn uplink_system_topics() {
    let request_id = |path: &str| own(path);
    let cases = [
        (own("sys/messages/up"), Uplink::MessagesUp),
        (own("sys/properties/report"), Uplink::PropertiesReport),
        (own("sys/gateway/sub_devices/properties/report"), Uplink::GatewaySubDevicesPropertiesReport),
        (own("sys/events/up"), Uplink::EventsUp),
    ];
    for (topic, expected) in cases {
        assert_eq!(uplink(&topic), Ok(expected), "{topic}");
    }
    let topic = request_id("sys/commands/response/request_id=cmd-1");
    assert_eq!(uplink(&topic), Ok(Uplink::CommandResponse { request_id: "cmd-1" }));
    let topic = request_id("sys/properties/set/response/request_id=s1");
    assert_eq!(uplink(&topic), Ok(Uplink::PropertiesSetResponse { request_id: "s1" }));
    let topic = request_id("sys/properties/get/response/request_id=g1");
    assert_eq!(uplink(&topic), Ok(Uplink::PropertiesGetResponse { request_id: "g1" }));
    let topic = request_id("sys/shadow/get/request_id=7");
    assert_eq!(uplink(&topic), Ok(Uplink::ShadowGet { request_id: "7" }));
}

#[test]
fn user_and_custom_topics() {
    let topic = own("user/a/b");
    assert_eq!(uplink(&topic), Ok(Uplink::User { suffix: "a/b" }));
    assert_eq!(uplink("custom/topic"), Ok(Uplink::Custom));
    assert_eq!(uplink("/leading/slash"), Ok(Uplink::Custom));
    assert_eq!(uplink("$SYS/anything"), Ok(Uplink::Custom));
    assert_eq!(uplink("$ocean/x"), Ok(Uplink::Custom));
    assert!(matches!(uplink(&own("user/")), Err(TopicRefusal::NotAllowed(_))));
}

#[test]
fn query_suffix_is_ignored_for_classification() {
    let topic = own("sys/messages/up?request_id=abc");
    assert_eq!(uplink(&topic), Ok(Uplink::MessagesUp));
    assert_eq!(query_request_id(&topic), Some("abc"));
    let topic = own("sys/properties/report?encoding=gzip");
    assert_eq!(uplink(&topic), Ok(Uplink::PropertiesReport));
    assert_eq!(query_request_id(&topic), None);
    let topic = own("sys/commands/response/request_id=r9?request_id=other");
    assert_eq!(uplink(&topic), Ok(Uplink::CommandResponse { request_id: "r9" }));
    let topic = own("user/x?a=1&request_id=q");
    assert_eq!(uplink(&topic), Ok(Uplink::User { suffix: "x" }));
    assert_eq!(query_request_id(&topic), Some("q"));
    assert_eq!(query_request_id("t?request_id="), None);
}

#[test]
fn other_devices_topics_are_refused() {
    for topic in [
        "$oc/devices/other/sys/messages/up",
        "$oc/devices/product_1_node-1x/sys/messages/up",
        "$oc/devices/product_1/node-1/sys/messages/up",
        "$oc/devices/other",
    ] {
        assert!(matches!(uplink(topic), Err(TopicRefusal::OtherDevice(_))), "{topic}");
    }
}

#[test]
fn other_oc_topics_are_not_allowed() {
    for topic in [
        "$oc/broadcast/news".to_string(),
        "$oc".into(),
        "$oc/other".into(),
        own("sys/messages/down"),
        own("sys/commands/request_id=1"),
        own("sys/commands/response/request_id="),
        own("sys/commands/response/request_id=a/b"),
        own("sys/unknown"),
        own(""),
        format!("$oc/devices/{ME}"),
    ] {
        assert!(matches!(uplink(&topic), Err(TopicRefusal::NotAllowed(_))), "{topic}");
    }
}

#[test]
fn invalid_topic_names_name_the_clause() {
    for (topic, clause) in [
        (own("sys/+/up"), "[MQTT-3.3.2-2]"),
        ("custom/#".to_string(), "[MQTT-3.3.2-2]"),
        (String::new(), "[MQTT-4.7.3-1]"),
        ("a\0b".to_string(), "[MQTT-4.7.3-2]"),
    ] {
        match uplink(&topic) {
            Err(TopicRefusal::Invalid(message)) => assert!(message.contains(clause), "{message}"),
            other => panic!("{topic:?}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn refusals_map_to_puback_reasons() {
    assert_eq!(TopicRefusal::OtherDevice(String::new()).publish_refusal(), PublishRefusal::NotAuthorized);
    assert_eq!(TopicRefusal::NotAllowed(String::new()).publish_refusal(), PublishRefusal::NotAuthorized);
    assert_eq!(TopicRefusal::Invalid(String::new()).publish_refusal(), PublishRefusal::TopicNameInvalid);
}

#[test]
fn own_filters_are_allowed() {
    // The C SDK's SubscribeAll filters (spec §1.3).
    for path in [
        "sys/messages/down",
        "sys/commands/#",
        "sys/properties/set/#",
        "sys/properties/get/#",
        "sys/shadow/get/response/#",
        "sys/events/down",
        "#",
        "+/+",
        "user/+/x",
    ] {
        assert_eq!(filter_allowed(ME, &own(path)), Ok(()), "{path}");
    }
    assert_eq!(filter_allowed(ME, &format!("$oc/devices/{ME}")), Ok(()));
}

#[test]
fn custom_and_broadcast_filters_are_allowed() {
    for filter in
        ["custom/topic", "#", "+", "+/devices/x", "a/+/#", "$SYS/#", "$oc/broadcast/#", "$oc/broadcast/x"]
    {
        assert_eq!(filter_allowed(ME, filter), Ok(()), "{filter}");
    }
}

#[test]
fn filters_reaching_other_devices_are_refused() {
    for filter in [
        "$oc/#",
        "$oc/devices/#",
        "$oc/devices/+",
        "$oc/devices/+/sys/messages/down",
        "$oc/devices/other/#",
        "$oc/devices/product_1_node-1x/#",
        "$oc/+/other/#",
        "$oc/+/#",
    ] {
        assert!(matches!(filter_allowed(ME, filter), Err(TopicRefusal::OtherDevice(_))), "{filter}");
    }
}

#[test]
fn other_oc_filters_are_not_allowed() {
    for filter in ["$oc", "$oc/devices", "$oc/other/#", "$oc/+", &format!("$oc/+/{ME}/#")] {
        assert!(matches!(filter_allowed(ME, filter), Err(TopicRefusal::NotAllowed(_))), "{filter}");
    }
}

#[test]
fn invalid_filters_name_the_clause() {
    for (filter, clause) in [
        ("", "[MQTT-4.7.3-1]"),
        ("a\0", "[MQTT-4.7.3-2]"),
        ("sport/tennis#", "[MQTT-4.7.1-2]"),
        ("sport/tennis/#/ranking", "[MQTT-4.7.1-2]"),
        ("#/", "[MQTT-4.7.1-2]"),
        ("sport+", "[MQTT-4.7.1-3]"),
        ("sport/+tennis", "[MQTT-4.7.1-3]"),
    ] {
        match filter_allowed(ME, filter) {
            Err(TopicRefusal::Invalid(message)) => assert!(message.contains(clause), "{message}"),
            other => panic!("{filter:?}: expected Invalid, got {other:?}"),
        }
    }
}

/// MQTT 3.1.1 §4.7.1 and §4.7.2 examples.
#[test]
fn filter_matching_follows_the_mqtt_examples() {
    let cases = [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
        ("sport/#", "sport", true),
        ("#", "sport/tennis", true),
        ("#", "/", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("+", "finance", true),
        ("sport/tennis", "sport/tennis", true),
        ("sport/tennis", "Sport/tennis", false),
        ("sport/tennis", "sport/tennis/", false),
        ("sport/tennis/#", "sport/tennis2", false),
        ("#", "$SYS/monitor/Clients", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("#", "$oc/devices/x/sys/messages/down", false),
        ("+/devices/x/sys/messages/down", "$oc/devices/x/sys/messages/down", false),
        ("$oc/devices/x/sys/commands/#", "$oc/devices/x/sys/commands/request_id=1", true),
        ("$oc/devices/x/sys/commands/#", "$oc/devices/y/sys/commands/request_id=1", false),
        ("$oc/devices/+/sys/#", "$oc/devices/y/sys/events/down", true),
    ];
    for (filter, topic, expected) in cases {
        assert_eq!(filter_matches(filter, topic), expected, "{filter} vs {topic}");
    }
}

/// Property check: no filter this device may use matches another device's topics.
#[test]
fn allowed_filters_never_match_another_devices_topics() {
    let filters = [
        "#",
        "+",
        "+/#",
        "+/+/+/#",
        "$oc/#",
        "$oc/+/#",
        "$oc/devices/#",
        "$oc/devices/+/#",
        "$oc/broadcast/#",
        "$oc/devices/product_1_node-1/#",
        "$oc/devices/other/#",
        "$oc/+/other/#",
        "$oc/+/+/sys/#",
    ];
    let topics = ["$oc/devices/other/sys/messages/down", "$oc/devices/other/user/x", "$oc/devices/other"];
    for filter in filters {
        if filter_allowed(ME, filter).is_ok() {
            for topic in topics {
                assert!(!filter_matches(filter, topic), "{filter} is allowed but matches {topic}");
            }
        }
    }
}

#[test]
fn downlink_topics() {
    assert_eq!(command_topic(ME, "c1"), own("sys/commands/request_id=c1"));
    assert_eq!(properties_set_topic(ME, "s1"), own("sys/properties/set/request_id=s1"));
    assert_eq!(properties_get_topic(ME, "g1"), own("sys/properties/get/request_id=g1"));
    assert_eq!(messages_down_topic(ME), own("sys/messages/down"));
    assert_eq!(shadow_get_response_topic(ME, "7"), own("sys/shadow/get/response/request_id=7"));
    assert_eq!(events_down_topic(ME), own("sys/events/down"));
    assert_eq!(user_topic(ME, "a/b"), own("user/a/b"));
}

#[test]
fn implicit_subscriptions_cover_the_downlink_system_topics_only() {
    for topic in [
        command_topic(ME, "c1"),
        properties_set_topic(ME, "s1"),
        properties_get_topic(ME, "g1"),
        messages_down_topic(ME),
        shadow_get_response_topic(ME, "7"),
        events_down_topic(ME),
    ] {
        assert!(is_implicit_system_topic(ME, &topic), "{topic}");
        assert!(!is_implicit_system_topic("other", &topic), "{topic} for another device");
    }
    for topic in [
        own("sys/messages/up"),
        own("sys/commands/response/request_id=c1"),
        own("sys/commands/request_id="),
        own("user/x"),
        "custom/topic".to_string(),
        "$oc/broadcast/x".into(),
        format!("$oc/devices/{ME}x/sys/messages/down"),
    ] {
        assert!(!is_implicit_system_topic(ME, &topic), "{topic}");
    }
}
