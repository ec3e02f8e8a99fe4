"""Devices on Eclipse paho-mqtt logging in to a running ringiot over TLS (and, for the
secure_access case, over plain MQTT), one login per case.

Usage: paho_tls.py < spec.json, where spec is
  {"host": "127.0.0.1", "ca": "/path/ca.pem",
   "cases": [{"name": "...", "port": 8883, "device_id": "...", "secret": "..." | null,
              "cert": "/path/c.pem" | null, "key": "/path/k.pem" | null,
              "tls": "1.2" | "1.3" | null (plain), "stay": false}]}
Prints one JSON line per case: {"name", "rc": CONNACK code} or {"name", "error": "..."} when
no CONNACK came (a failed handshake). A case with "stay": true keeps its connection, subscribes
to its command topic, and at the end (after every other case) answers one command if one came:
{"name", "command": {...}} — so a test can check that nothing else disturbed it.
"""
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

TIMEOUT_S = 10
# paho 2 reports a 3.1.1 CONNACK return code as the MQTT 5 reason code it maps to.
V311_RETURN_CODE = {0: 0, 132: 1, 133: 2, 136: 3, 134: 4, 135: 5}


def credentials(device_id, secret):
    timestamp = time.strftime("%Y%m%d%H", time.gmtime())
    client_id = f"{device_id}_0_0_{timestamp}"
    if secret is None:
        return client_id, None
    return client_id, hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()


def tls_context(ca, version, cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    context.check_hostname = True
    pinned = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    context.minimum_version = pinned
    context.maximum_version = pinned
    if cert:
        context.load_cert_chain(cert, key)
    return context


def login(host, ca, case):
    client_id, password = credentials(case["device_id"], case.get("secret"))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(case["device_id"], password)
    if case.get("tls"):
        client.tls_set_context(tls_context(ca, case["tls"], case.get("cert"), case.get("key")))
    connected = threading.Event()
    seen = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        value = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        seen["rc"] = V311_RETURN_CODE.get(value, value)
        connected.set()

    def on_message(client, userdata, message):
        seen.setdefault("commands", []).append((message.topic, json.loads(message.payload)))

    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, case["port"], keepalive=60)
    except Exception as error:  # the TLS handshake failed: no CONNACK at all
        return client, {"name": case["name"], "error": f"{type(error).__name__}: {error}"}, seen
    client.loop_start()
    if not connected.wait(TIMEOUT_S):
        client.loop_stop()
        return client, {"name": case["name"], "error": "no CONNACK"}, seen
    result = {"name": case["name"], "rc": seen["rc"]}
    if case.get("stay") and seen["rc"] == 0:
        sub = client.subscribe(f"$oc/devices/{case['device_id']}/sys/commands/#", qos=1)
        result["subscribed"] = sub[0] == 0
    else:
        client.disconnect()
        client.loop_stop()
    return client, result, seen


def main():
    spec = json.load(sys.stdin)
    staying = []
    for case in spec["cases"]:
        client, result, seen = login(spec["host"], spec["ca"], case)
        print(json.dumps(result), flush=True)
        if case.get("stay") and result.get("rc") == 0:
            staying.append((case, client, seen))
    # The staying devices answer the commands the test sends them now.
    deadline = time.time() + float(spec.get("wait_for_commands_s", 0))
    answered = set()
    while time.time() < deadline and len(answered) < len(staying):
        for case, client, seen in staying:
            if case["name"] in answered or not seen.get("commands"):
                continue
            topic, command = seen["commands"][0]
            request_id = topic.rsplit("request_id=", 1)[1]
            answer = {"result_code": 0, "paras": {"echo": command.get("paras")}}
            topic = f"$oc/devices/{case['device_id']}/sys/commands/response/request_id={request_id}"
            client.publish(topic, json.dumps(answer), qos=0).wait_for_publish(TIMEOUT_S)
            print(json.dumps({"name": case["name"], "command": command}), flush=True)
            answered.add(case["name"])
        time.sleep(0.02)
    for _, client, _ in staying:
        client.disconnect()
        client.loop_stop()
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
