"""Huawei's official device SDK (iot_device_sdk_python, unmodified, from tests/vendor on
PYTHONPATH) as a gateway — a subclass of its AbstractGateway, on plain MQTT — driven by Huawei's
application SDK (huaweicloudsdkiotda) over HTTP, in one process.

Usage: device_sdk_gateway.py SPEC, where SPEC is JSON:
  {"mqtt_host": "127.0.0.N", "gateway_id": "...", "secret": "...", "product_id": "...",
   "sub_devices": ["id", ...], "target": "one of sub_devices",
   "http_endpoint": "http://127.0.0.1:PORT", "project_id": "...", "ak": "...", "sk": "...",
   "command": {"service_id", "command_name", "paras"}, "properties": [{"service_id", "properties"}],
   "message": {"name", "message"},
   "added": {"node_id", "device_id", "name", "description"}}
The SDK takes only ports 1883 (plain) and 8883 (TLS): the engine listens on mqtt_host:1883.

Prints one JSON line per step, each with its "step"; "received" is what the gateway's
callbacks saw ({"handler", "request_id", "device_id", ...}, null if nothing came):
  connected           {"rc", "completed"}: connect()'s result and whether the connect listener
                      heard the CONNACK
  statuses_reported   {"response"}: the platform's answer to report_batch_status(all ONLINE), as
                      the gateway's on_event saw it ({"event_type", "event_id", "paras"}); then
                      waits for a line on stdin (the test checks the registry meanwhile)
  command             {"status_code", "command_id", "response", "error_code", "received"}:
                      CreateCommand to the target; on_sub_dev_command answers
                      {"result_code": 0, "response_name": NAME, "paras": {"for": DEVICE, "echo": PARAS}}
  properties_set      {"status_code", "response", "error_code", "received"}: UpdateProperties
                      to the target, answered {"result_code": 0, "result_desc": "set by HANDLER
                      for DEVICE_ID"} by whichever handler the SDK called (see GatewayUnderTest)
  properties_get      {"status_code", "response", "error_code", "received"}: ListProperties of
                      the target; on_sub_dev_properties_get answers the last values set
  message             {"status_code", "message_id", "result", "received"}: CreateMessage to the
                      target, recorded by on_sub_dev_message
  sub_device_added    {"event_id", "successful_devices", "failed_devices"}: gtw_add_sub_device's
                      answer through the GtwOperateSubDeviceListener; waits for stdin
  sub_device_deleted  {"event_id", "successful_devices", "failed_devices"}: gtw_del_sub_device's
                      answer, likewise; waits for stdin
  done                {"disconnected", "unexpected"}: destroy() ended the session; what the
                      callbacks recorded that no step took (a sub-device event, a second call)
Any exception prints {"step": "failed", "error": ...} and exits 1; SDK logs go to stderr.
"""
import threading

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkiotda.v5 import (
    CreateCommandRequest, CreateMessageRequest, DeviceCommandRequest, DeviceMessageRequest,
    DevicePropertiesRequest, IoTDAClient, ListPropertiesRequest, UpdatePropertiesRequest,
)
from iot_device_sdk_python.client.client_conf import ClientConf
from iot_device_sdk_python.client.connect_auth_info import ConnectAuthInfo
from iot_device_sdk_python.client.iot_result import IotResult
from iot_device_sdk_python.client.request.command_response import CommandRsp
from iot_device_sdk_python.client.request.service_property import ServiceProperty
from iot_device_sdk_python.gateway.abstract_gateway import AbstractGateway
from iot_device_sdk_python.gateway.gtw_operate_sub_device_listener import GtwOperateSubDeviceListener
from iot_device_sdk_python.gateway.requests.added_sub_device_info import AddedSubDeviceInfo
from iot_device_sdk_python.gateway.requests.device_info import DeviceInfo
from iot_device_sdk_python.gateway.requests.device_status import DeviceStatus
from iot_device_sdk_python.gateway.sub_devices_persistence import SubDevicesPersistence
from iot_device_sdk_python.utils.iot_util import get_node_id_from_device_id
from sdk_script import SessionEvents, main, step, wait_for_test

SDK_PLAIN_PORT = 1883
SUB_DEVICE_MANAGER = "$sub_device_manager"
STATUS_RESPONSE = "sub_device_update_status_response"
HTTP_TIMEOUT_S = (5, 30)
# For a callback, an event answer or the session's end; the engine answers in milliseconds.
CALLBACK_WAIT_S = 10
ADD_EVENT_ID = "add-1"
DELETE_EVENT_ID = "del-1"




class Inbox:
    """What the gateway's callbacks (on the SDK's MQTT thread) saw, by kind, for the main thread."""

    def __init__(self):
        self._items = {}
        self._changed = threading.Condition()

    def put(self, kind, **fields):
        with self._changed:
            self._items.setdefault(kind, []).append(fields)
            self._changed.notify_all()

    def take(self, kind, timeout=CALLBACK_WAIT_S):
        """The oldest item of `kind`, waiting up to `timeout`; None if none came."""
        with self._changed:
            self._changed.wait_for(lambda: self._items.get(kind), timeout)
            items = self._items.get(kind)
            return items.pop(0) if items else None

    def leftovers(self):
        with self._changed:
            return {kind: items for kind, items in self._items.items() if items}


class InMemorySubDevices(SubDevicesPersistence):
    """The gateway's sub-device list (the SDK asks for one; its demo keeps a file)."""

    def __init__(self, gateway_id, product_id, device_ids):
        self._version = 0
        self._by_node_id = {}
        for device_id in device_ids:
            info = DeviceInfo()
            info.device_id = device_id
            info.node_id = get_node_id_from_device_id(device_id)
            info.parent_device_id = gateway_id
            info.product_id = product_id
            self._by_node_id[info.node_id] = info

    def get_sub_device(self, node_id):
        return self._by_node_id.get(node_id)

    def add_sub_devices(self, sub_devices_info):
        for info in sub_devices_info.devices:
            self._by_node_id[info.node_id] = info
        self._version = sub_devices_info.version or self._version
        return 0

    def delete_sub_devices(self, sub_devices_info):
        for info in sub_devices_info.devices:
            self._by_node_id.pop(info.node_id, None)
        self._version = sub_devices_info.version or self._version
        return 0

    def get_version(self):
        return self._version


class GatewayUnderTest(AbstractGateway):
    """Answers every sub-device call at once and records it in `inbox` (kinds "command",
    "properties_set", "properties_get", "message", "sub_device_event" and STATUS_RESPONSE)."""

    def __init__(self, persistence, client_conf, inbox):
        super().__init__(persistence, client_conf)
        self.inbox = inbox
        self.properties = {}

    def known(self, device_id):
        """The sub-device is in the gateway's list, as a real gateway would check."""
        return self.get_sub_device_by_device_id(device_id) is not None

    def on_sub_dev_command(self, request_id, command):
        self.inbox.put("command", handler="on_sub_dev_command", request_id=request_id,
                       device_id=command.device_id, known=self.known(command.device_id),
                       service_id=command.service_id, command_name=command.command_name,
                       paras=command.paras)
        answer = CommandRsp()
        answer.result_code = 0
        answer.response_name = command.command_name
        answer.paras = {"for": command.device_id, "echo": command.paras}
        self.get_client().respond_command(request_id, answer)

    def on_properties_set(self, request_id, props_set):
        # The SDK (dd0ee5c) builds a PropSet from "services" alone — DeviceClient.on_properties_set
        # drops "object_device_id" — so AbstractGateway takes a sub-device's property set for the
        # gateway's own and never calls on_sub_dev_properties_set. Recorded and answered here.
        if props_set.device_id and props_set.device_id != self.get_device_id():
            super().on_properties_set(request_id, props_set)
            return
        self.answer_properties_set("on_properties_set", request_id, props_set)

    def on_sub_dev_properties_set(self, request_id, props_set):
        self.answer_properties_set("on_sub_dev_properties_set", request_id, props_set)

    def answer_properties_set(self, handler, request_id, props_set):
        services = [service.to_dict() for service in props_set.services]
        self.inbox.put("properties_set", handler=handler, request_id=request_id,
                       device_id=props_set.device_id, services=services)
        for service in props_set.services:
            self.properties.setdefault(service.service_id, {}).update(service.properties)
        result = IotResult(0, f"set by {handler} for {props_set.device_id}")
        self.get_client().respond_properties_set(request_id, result)

    def on_sub_dev_properties_get(self, request_id, props_get):
        self.inbox.put("properties_get", handler="on_sub_dev_properties_get", request_id=request_id,
                       device_id=props_get.device_id, known=self.known(props_get.device_id),
                       service_id=props_get.service_id)
        service_id = props_get.service_id
        values = ServiceProperty(service_id=service_id, properties=self.properties.get(service_id, {}))
        self.get_client().respond_properties_get(request_id, [values])

    def on_sub_dev_message(self, message):
        self.inbox.put("message", handler="on_sub_dev_message", device_id=message.device_id,
                       known=self.known(message.device_id), id=message.id, name=message.name,
                       content=message.content)

    def on_sub_dev_event(self, device_events):
        self.inbox.put("sub_device_event", device_id=device_events.device_id,
                       services=[event.to_dict() for event in device_events.services])

    def on_event(self, device_events):
        # The SDK logs and drops the answer to report_batch_status; seen here first.
        if not device_events.device_id or device_events.device_id == self.get_device_id():
            for event in device_events.services:
                if event.service_id == SUB_DEVICE_MANAGER and event.event_type == STATUS_RESPONSE:
                    self.inbox.put(STATUS_RESPONSE, event_type=event.event_type,
                                   event_id=event.event_id, paras=event.paras)
        super().on_event(device_events)


class SubDeviceAnswers(GtwOperateSubDeviceListener):
    """The SDK's parsed answers to gtw_add_sub_device / gtw_del_sub_device."""

    def __init__(self, inbox):
        self.inbox = inbox

    def on_add_sub_device_rsp(self, gtw_add_sub_device_rsp, event_id):
        self.inbox.put("added", event_id=event_id,
                       successful_devices=[d.to_dict() for d in gtw_add_sub_device_rsp.successful_devices],
                       failed_devices=[d.to_dict() for d in gtw_add_sub_device_rsp.add_sub_device_failed_reasons])

    def on_del_sub_device_rsp(self, gtw_del_sub_device_rsp, event_id):
        self.inbox.put("deleted", event_id=event_id,
                       successful_devices=gtw_del_sub_device_rsp.successful_devices,
                       failed_devices=[d.to_dict() for d in gtw_del_sub_device_rsp.failed_devices])



def gateway_device(spec, inbox):
    """As the SDK's README builds a device for port 1883 and a secret; no reconnecting, so
    destroy() really ends the session."""
    auth = ConnectAuthInfo()
    auth.server_uri = spec["mqtt_host"]
    auth.port = SDK_PLAIN_PORT
    auth.id = spec["gateway_id"]
    auth.secret = spec["secret"]
    auth.reconnect_on_failure = False
    persistence = InMemorySubDevices(spec["gateway_id"], spec["product_id"], spec["sub_devices"])
    gateway = GatewayUnderTest(persistence, ClientConf(auth), inbox)
    gateway.set_gtw_operate_sub_device_listener(SubDeviceAnswers(inbox))
    return gateway


def application(spec):
    config = HttpConfig.get_default_config()
    config.timeout = HTTP_TIMEOUT_S
    credentials = BasicCredentials(spec["ak"], spec["sk"], spec["project_id"])
    return (IoTDAClient.new_builder().with_http_config(config).with_credentials(credentials)
            .with_endpoints([spec["http_endpoint"]]).build())


def report_statuses(gateway, inbox, spec):
    statuses = []
    for device_id in spec["sub_devices"]:
        status = DeviceStatus()
        status.device_id = device_id
        status.status = "ONLINE"
        statuses.append(status)
    gateway.report_batch_status(statuses)
    step("statuses_reported", response=inbox.take(STATUS_RESPONSE))


def sub_device_calls(iotda, inbox, spec):
    target = spec["target"]
    command = spec["command"]
    answered = iotda.create_command(CreateCommandRequest(device_id=target, body=DeviceCommandRequest(
        service_id=command["service_id"], command_name=command["command_name"], paras=command["paras"])))
    step("command", status_code=answered.status_code, command_id=answered.command_id,
         response=answered.response, error_code=answered.error_code, received=inbox.take("command", 0))

    updated = iotda.update_properties(UpdatePropertiesRequest(
        device_id=target, body=DevicePropertiesRequest(services=spec["properties"])))
    step("properties_set", status_code=updated.status_code, response=updated.response,
         error_code=updated.error_code, received=inbox.take("properties_set", 0))

    service_id = spec["properties"][0]["service_id"]
    listed = iotda.list_properties(ListPropertiesRequest(device_id=target, service_id=service_id))
    step("properties_get", status_code=listed.status_code, response=listed.response,
         error_code=listed.error_code, received=inbox.take("properties_get", 0))

    message = spec["message"]
    created = iotda.create_message(CreateMessageRequest(device_id=target, body=DeviceMessageRequest(
        name=message["name"], message=message["message"])))
    # The publish may reach the gateway before or after the 201: wait for it.
    step("message", status_code=created.status_code, message_id=created.message_id,
         result=created.result.to_dict() if created.result else None, received=inbox.take("message"))


def manage_sub_devices(gateway, inbox, spec):
    """Adds a sub-device by event, lets the test look, deletes it by event, lets the test look."""
    # Filled as the SDK's gateway demo (iot_gateway_demo/string_tcp_server.py) fills it: with
    # device_id and description. to_dict() sends every field, extension_info "" included.
    added = AddedSubDeviceInfo()
    added.parent_device_id = spec["gateway_id"]
    added.node_id = spec["added"]["node_id"]
    added.device_id = spec["added"]["device_id"]
    added.name = spec["added"]["name"]
    added.description = spec["added"]["description"]
    added.product_id = spec["product_id"]
    gateway.gtw_add_sub_device([added], ADD_EVENT_ID)
    answer = inbox.take("added") or {}
    step("sub_device_added", **answer)
    if not answer or not wait_for_test():
        return False
    device_ids = [device["device_id"] for device in answer["successful_devices"]]
    gateway.gtw_del_sub_device(device_ids, DELETE_EVENT_ID)
    answer = inbox.take("deleted") or {}
    step("sub_device_deleted", **answer)
    return bool(answer) and wait_for_test()


def run(spec):
    inbox = Inbox()
    gateway = gateway_device(spec, inbox)
    session = SessionEvents()
    gateway.get_client().add_connect_listener(session)
    rc = gateway.connect()
    # -1: no CONNACK within connect()'s fixed second, but the session may still complete.
    completed = session.completed.wait(CALLBACK_WAIT_S if rc == -1 else 0)
    step("connected", rc=rc, completed=completed)
    if not completed:
        return 1
    try:
        report_statuses(gateway, inbox, spec)
        if not wait_for_test():
            return 1
        sub_device_calls(application(spec), inbox, spec)
        if not manage_sub_devices(gateway, inbox, spec):
            return 1
    finally:
        gateway.destroy()
    step("done", disconnected=session.lost.wait(CALLBACK_WAIT_S), unexpected=inbox.leftovers())
    return 0



if __name__ == "__main__":
    main(run)
