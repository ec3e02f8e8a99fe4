//! Asynchronous downlink messages (`POST .../devices/{id}/messages`, spec §1.5, §1.6, §2.7),
//! delivery: an online device gets the message at once (QoS 0 unless it subscribed at QoS 1,
//! then the PUBACK delivers it and an unacknowledged publish is resent with DUP), an offline
//! one gets its pending messages in creation order when it logs in (or subscribes to their
//! custom topic), and ttl 0 to an offline device or an unsubscribed custom topic fail.
//! History, List/Show, refusals and metrics: `message_history.rs`.

use std::time::{Duration, Instant};

use mqttbytes::QoS;
use serde_json::json;
use tests::messages::*;
use tests::mqtt::MqttDevice;

#[test]
fn an_online_device_gets_the_standard_payload_at_qos_0_and_the_message_is_delivered() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    for (n, device_id) in device_ids(&NODES).iter().enumerate() {
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let message_id = format!("msg-{n}_a");
        let body = json!({"message_id": message_id, "name": "greeting", "message": format!("hello {n}")});
        assert_eq!(assert_created(&create(&client, device_id, &body), "DELIVERED"), message_id);

        let publish = device.next_publish(WAIT).expect("the device got its message");
        assert_eq!(publish.topic, down_topic(device_id), "the default topic");
        assert_eq!(publish.qos, QoS::AtMostOnce, "a device that never subscribed gets QoS 0");
        let expected = json!({"name": "greeting", "id": message_id, "content": format!("hello {n}")});
        assert_eq!(payload_json(&publish), expected, "the standard payload, nothing else");
    }
}

#[test]
fn a_message_without_id_or_name_gets_a_generated_id_and_a_null_name() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let first = assert_created(&create(&client, &device_id, &json!({"message": "a"})), "DELIVERED");
        let second = assert_created(&create(&client, &device_id, &json!({"message": "b"})), "DELIVERED");
        assert_ne!(first, second, "every generated id is new");
        for (id, content) in [(first, "a"), (second, "b")] {
            let payload = payload_json(&device.next_publish(WAIT).expect("the device got its message"));
            assert_eq!(payload, json!({"name": null, "id": id, "content": content}));
        }
    }
}

#[test]
fn a_json_message_is_sent_as_its_json_text_in_content() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    let message = json!({"a": 1});
    let id = assert_created(&create(&client, device_id, &json!({"message": message})), "DELIVERED");

    let payload = payload_json(&device.next_publish(WAIT).expect("the device got its message"));
    assert_eq!(payload["id"], id.as_str(), "{payload}");
    assert_eq!(payload["content"], "{\"a\":1}", "content is the message's JSON text: {payload}");
    let shown = show(&client, device_id, &id).json();
    assert_eq!(shown["message"], message, "Show gives the JSON value as given: {shown}");

    for (message, text) in [(json!(5), "5"), (json!([1, "a", null]), "[1,\"a\",null]"), (json!(true), "true")]
    {
        assert_created(&create(&client, device_id, &json!({"message": message})), "DELIVERED");
        let payload = payload_json(&device.next_publish(WAIT).expect("the device got its message"));
        assert_eq!(payload["content"], text, "content of {message}: {payload}");
    }
}

#[test]
fn a_raw_message_is_sent_as_its_bytes() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let text = "raw text: 温度 ✓ {not json";
        let body = json!({"message": text, "payload_format": "raw", "name": "ignored"});
        assert_created(&create(&client, &device_id, &body), "DELIVERED");
        let publish = device.next_publish(WAIT).expect("the device got its raw message");
        assert_eq!(publish.topic, down_topic(&device_id));
        assert_eq!(&publish.payload[..], text.as_bytes(), "a raw string arrives as its bytes");

        let object = json!({"k": [1, 2, {"x": "y"}], "z": null});
        let body = json!({"message": object, "payload_format": "raw"});
        assert_created(&create(&client, &device_id, &body), "DELIVERED");
        let publish = device.next_publish(WAIT).expect("the device got its raw JSON message");
        assert_eq!(payload_json(&publish), object, "a raw JSON value arrives as its JSON text");
    }
}

#[test]
fn a_base64_message_is_sent_decoded() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let body = json!({"message": "AP8B/g==", "encoding": "base64"});
        let id = assert_created(&create(&client, &device_id, &body), "DELIVERED");
        let publish = device.next_publish(WAIT).expect("the device got its binary message");
        assert_eq!(publish.topic, down_topic(&device_id));
        assert_eq!(&publish.payload[..], &[0u8, 255, 1, 254], "the decoded bytes, not UTF-8");
        let shown = show(&client, &device_id, &id).json();
        assert_eq!(shown["message"], "AP8B/g==", "Show gives the message as given: {shown}");
        assert_eq!(shown["encoding"], "base64", "{shown}");
    }
}

#[test]
fn a_device_subscribed_at_qos_1_gets_qos_1_and_its_puback_delivers() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        assert!(device.subscribe(&down_topic(&device_id), QoS::AtLeastOnce, 1).is_empty());
        let call = create_in_thread(&client, &device_id, json!({"message": "q1"}));

        let publish = device.next_publish(WAIT).expect("the device got its message");
        assert_eq!(publish.topic, down_topic(&device_id));
        assert_eq!(publish.qos, QoS::AtLeastOnce, "a QoS 1 subscriber gets QoS 1");
        assert!(!publish.dup, "the first send is not a duplicate");
        device.puback(publish.pkid);
        let id = assert_created(&call.join().unwrap(), "DELIVERED");
        assert_eq!(payload_json(&publish)["id"], id.as_str());
    }
}

#[test]
fn an_unacknowledged_qos_1_message_is_pending_resent_with_dup_and_delivered_by_a_late_puback() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    device.subscribe(&down_topic(device_id), QoS::AtLeastOnce, 1);
    let sent = Instant::now();
    let call = create_in_thread(&client, device_id, json!({"message": "ack me"}));

    let first = device.next_publish(WAIT).expect("the device got its message");
    assert_eq!(first.qos, QoS::AtLeastOnce);
    let id = assert_created(&call.join().unwrap(), "PENDING");
    assert!(
        sent.elapsed() >= Duration::from_millis(1900),
        "waited ~2 s for the PUBACK: {:?}",
        sent.elapsed()
    );
    assert_eq!(show(&client, device_id, &id).json()["status"], "PENDING");

    let again = device.next_publish(WAIT).expect("the unacknowledged message is resent");
    assert!(again.dup, "the resend carries DUP");
    assert_eq!(again.pkid, first.pkid, "the same packet id");
    assert_eq!((&again.topic, &again.payload), (&first.topic, &first.payload), "the same packet");
    device.puback(again.pkid);
    let delivered = wait_for_status(&client, device_id, &id, "DELIVERED");
    assert!(is_t1(&delivered["finished_time"]), "{delivered}");
}

#[test]
fn an_unacknowledged_qos_1_message_is_resent_at_most_three_times() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    device.subscribe(&down_topic(device_id), QoS::AtLeastOnce, 1);
    let call = create_in_thread(&client, device_id, json!({"message": "never acked"}));

    let first = device.next_publish(WAIT).expect("the device got its message");
    let id = assert_created(&call.join().unwrap(), "PENDING");
    for resend in 1..=3 {
        let again = device.next_publish(WAIT).unwrap_or_else(|| panic!("resend {resend} never came"));
        assert!(again.dup && again.pkid == first.pkid, "resend {resend} is the same packet with DUP");
    }
    assert!(device.next_publish(Duration::from_secs(4)).is_none(), "no fourth resend in this cycle");
    assert_ne!(show(&client, device_id, &id).json()["status"], "DELIVERED", "never acknowledged");
}

#[test]
fn an_unacknowledged_qos_1_message_is_sent_again_at_the_next_login() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        device.subscribe(&down_topic(&device_id), QoS::AtLeastOnce, 1);
        let call = create_in_thread(&client, &device_id, json!({"message": "again"}));
        let first = device.next_publish(WAIT).expect("the device got its message");
        let id = assert_created(&call.join().unwrap(), "PENDING");
        device.disconnect();

        let mut again = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let publish = again.next_publish(WAIT).expect("the unacknowledged message comes again after login");
        assert_eq!((&publish.topic, &publish.payload), (&first.topic, &first.payload), "the same message");
        if publish.qos == QoS::AtLeastOnce {
            again.puback(publish.pkid);
        }
        wait_for_status(&client, &device_id, &id, "DELIVERED");
    }
}

#[test]
fn a_custom_topic_the_device_subscribed_to_carries_the_message() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        device.subscribe(&format!("$oc/devices/{device_id}/user/#"), QoS::AtLeastOnce, 1);
        let call = create_in_thread(&client, &device_id, json!({"message": "cfg", "topic": "cfg/x"}));

        let publish = device.next_publish(WAIT).expect("the device got its message");
        assert_eq!(publish.topic, format!("$oc/devices/{device_id}/user/cfg/x"), "topic is a suffix");
        assert_eq!(publish.qos, QoS::AtLeastOnce, "the subscription's QoS");
        assert_eq!(payload_json(&publish)["content"], "cfg");
        device.puback(publish.pkid);
        let id = assert_created(&call.join().unwrap(), "DELIVERED");
        assert_eq!(show(&client, &device_id, &id).json()["topic"], "cfg/x");
    }
}

#[test]
fn topic_full_name_is_used_verbatim() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let topic = "plant/7/meter_n1/inbox";
    device.subscribe(topic, QoS::AtMostOnce, 1);
    let body = json!({"message": "full", "topic_full_name": topic});
    let id = assert_created(&create(&client, "meter_n1", &body), "DELIVERED");

    let publish = device.next_publish(WAIT).expect("the device got its message");
    assert_eq!(publish.topic, topic, "topic_full_name verbatim");
    assert_eq!(publish.qos, QoS::AtMostOnce, "the subscription's QoS");
    assert_eq!(payload_json(&publish)["id"], id.as_str());
    assert_eq!(show(&client, "meter_n1", &id).json()["topic_full_name"], topic);
}

#[test]
fn an_unsubscribed_custom_topic_fails_with_014112() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let id = assert_created(
            &create(&client, &device_id, &json!({"message": "x", "topic": "nobody"})),
            "FAILED",
        );
        let shown = show(&client, &device_id, &id).json();
        assert_eq!(shown["status"], "FAILED", "{shown}");
        assert_eq!(shown["error_info"]["error_code"], "IOTDA.014112", "{shown}");
        assert!(device.ping(), "nothing was published to the device before the PINGRESP");
    }
}

#[test]
fn an_offline_device_gets_its_pending_messages_in_order_at_login() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let devices = device_ids(&NODES);
    let mut created = Vec::new();
    for device_id in &devices {
        let ids: Vec<String> = (0..3)
            .map(|n| {
                let body = json!({"message": format!("{device_id} #{n}"), "ttl": 5 * (n + 1)});
                assert_created(&create(&client, device_id, &body), "PENDING")
            })
            .collect();
        created.push(ids);
    }
    for (device_id, ids) in devices.iter().zip(&created) {
        for message in list(&client, device_id) {
            assert_eq!(message["status"], "PENDING", "nobody logged in yet: {message}");
        }
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let received = device.publishes(3, WAIT);
        for (n, (publish, id)) in received.iter().zip(ids).enumerate() {
            assert_eq!(publish.topic, down_topic(device_id));
            let expected = json!({"name": null, "id": id, "content": format!("{device_id} #{n}")});
            assert_eq!(payload_json(publish), expected, "message {n} in creation order");
        }
        assert!(device.ping(), "exactly the pending messages, each once");
        for id in ids {
            let message = wait_for_status(&client, device_id, id, "DELIVERED");
            assert!(is_t1(&message["finished_time"]), "{message}");
            assert!(message["error_info"].is_null(), "{message}");
        }
    }
}

#[test]
fn a_pending_message_for_a_custom_topic_waits_for_the_subscription() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let id =
        assert_created(&create(&client, device_id, &json!({"message": "later", "topic": "t1"})), "PENDING");

    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    assert!(device.ping(), "nothing is sent before the device subscribes to the topic");
    assert_eq!(show(&client, device_id, &id).json()["status"], "PENDING", "still waiting");
    let topic = format!("$oc/devices/{device_id}/user/t1");
    let mut received = device.subscribe(&topic, QoS::AtMostOnce, 1);
    if received.is_empty() {
        received.push(device.next_publish(WAIT).expect("the message follows the subscription"));
    }
    assert_eq!(received.len(), 1, "one message: {received:?}");
    assert_eq!(received[0].topic, topic);
    assert_eq!(payload_json(&received[0])["id"], id.as_str());
    wait_for_status(&client, device_id, &id, "DELIVERED");
}

#[test]
fn ttl_0_to_an_offline_device_fails_with_014016() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let id = assert_created(
            &create(&client, &device_id, &json!({"message": "now or never", "ttl": 0})),
            "FAILED",
        );
        let shown = show(&client, &device_id, &id).json();
        assert_eq!(shown["error_info"]["error_code"], "IOTDA.014016", "{shown}");
        assert!(is_t1(&shown["finished_time"]), "{shown}");

        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        assert!(device.ping(), "a failed message is never sent later");
    }
}
