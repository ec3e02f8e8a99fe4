"""A device on Eclipse paho-mqtt (an independent, widely used MQTT client), logging in to a
running ringiot with IoTDA credentials and using its topics.

Usage: paho_device.py HOST PORT DEVICE_ID SECRET OTHER_DEVICE_ID {311|5}
Prints one line per step and "PAHO OK" at the end; any mismatch raises.
"""
import hashlib
import hmac
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

TIMEOUT_S = 10


def credentials(device_id, secret):
    timestamp = time.strftime("%Y%m%d%H", time.gmtime())
    password = hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()
    return f"{device_id}_0_1_{timestamp}", password


def main():
    host, port, device_id, secret, other_device_id, version = sys.argv[1:7]
    protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
    client_id, password = credentials(device_id, secret)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.username_pw_set(device_id, password)
    events = {name: threading.Event() for name in ["connected", "subscribed", "answer"]}
    seen = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        seen["connack"] = reason_code
        events["connected"].set()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        seen["suback"] = [int(code.value) if hasattr(code, "value") else int(code) for code in reason_codes]
        events["subscribed"].set()

    def on_message(client, userdata, message):
        seen["answer"] = (message.topic, message.qos, json.loads(message.payload))
        events["answer"].set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    if protocol == mqtt.MQTTv5:
        client.connect(host, int(port), keepalive=120, clean_start=True)
    else:
        client.connect(host, int(port), keepalive=120)
    client.loop_start()
    assert events["connected"].wait(TIMEOUT_S), "no CONNACK"
    assert not seen["connack"].is_failure, seen["connack"]
    print("connected", client_id)

    report = {"services": [{"service_id": "water", "properties": {"level": 7}}]}
    info = client.publish(f"$oc/devices/{device_id}/sys/properties/report", json.dumps(report), qos=1)
    info.wait_for_publish(TIMEOUT_S)
    assert info.is_published(), "the QoS 1 property report was not acknowledged"
    print("property report acknowledged")

    filters = [(f"$oc/devices/{device_id}/sys/shadow/get/response/#", 1),
               (f"$oc/devices/{other_device_id}/sys/commands/#", 0)]
    client.subscribe(filters)
    assert events["subscribed"].wait(TIMEOUT_S), "no SUBACK"
    granted, refused = seen["suback"]
    assert granted == 1 and refused >= 0x80, seen["suback"]
    print("SUBACK", seen["suback"])

    client.publish(f"$oc/devices/{device_id}/sys/shadow/get/request_id=paho-1", "{}", qos=0)
    assert events["answer"].wait(TIMEOUT_S), "no shadow answer"
    topic, qos, body = seen["answer"]
    assert topic == f"$oc/devices/{device_id}/sys/shadow/get/response/request_id=paho-1", topic
    assert qos == 1, qos
    assert body["shadow"][0]["reported"]["properties"]["level"] == 7, body
    print("shadow answer at QoS 1", body)

    client.disconnect()
    client.loop_stop()
    print("PAHO OK")


if __name__ == "__main__":
    main()
