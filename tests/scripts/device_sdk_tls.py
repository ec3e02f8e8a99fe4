"""Huawei's official device SDK (iot_device_sdk_python, unmodified, from tests/vendor on
PYTHONPATH) on MQTT over TLS and Huawei's application SDK (huaweicloudsdkiotda) on HTTPS, both
verifying the engine's certificate against its generated CA, in one process.

Usage: device_sdk_tls.py SPEC, where SPEC is JSON:
  {"mqtt_host": "127.0.0.N", "device_id": "...", "secret": "...", "ca": "/path/ca.pem",
   "https_endpoint": "https://localhost:PORT",
   "project_id": "...", "ak": "...", "sk": "...",
   "command": {"service_id": "...", "command_name": "...", "paras": {...}}}
The device SDK turns TLS on exactly when the port is 8883, so the engine listens on
mqtt_host:8883.

Prints one JSON line per step, each with its "step":
  untrusted_ca        {"rc"}: the device SDK with certifi's bundle (public roots, not the engine's CA)
  connected           {"rc", "completed"}: the device SDK with the engine's CA: connect()'s
                      result and whether its connect listener heard the CONNACK (connect()
                      waits a fixed second for it); then waits for a line on stdin (the test
                      checks the device is ONLINE meanwhile)
  https_without_ca    {"error", "message"}: the application SDK, verification on, no CA given
  device_got_command  {"request_id", "service_id", "command_name", "paras"}: printed by the
                      device's command listener before it answers with
                      {"result_code": 0, "response_name": COMMAND_NAME, "paras": {"echo": PARAS}}
  command_answered    {"status_code", "command_id", "response", "error_code"}: CreateCommand
                      through the application SDK with the CA
  done                {"disconnected"}: destroy() ended the session (the connect listener
                      heard of it)
Any exception prints {"step": "failed", "error": ...} and exits 1; SDK logs go to stderr.
"""

import certifi
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import SdkException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkiotda.v5 import CreateCommandRequest, DeviceCommandRequest, IoTDAClient
from iot_device_sdk_python.client.client_conf import ClientConf
from iot_device_sdk_python.client.connect_auth_info import ConnectAuthInfo
from iot_device_sdk_python.client.listener.command_listener import CommandListener
from iot_device_sdk_python.client.request.command_response import CommandRsp
from iot_device_sdk_python.iot_device import IotDevice
from sdk_script import SessionEvents, main, step, wait_for_test

# The SDK only accepts 1883 and 8883, and uses TLS (1.2, chain checked, host name not) on 8883.
SDK_TLS_PORT = 8883
HTTP_TIMEOUT_S = (5, 30)
SESSION_EVENT_WAIT_S = 10



def sdk_device(spec, ca_file):
    """A device as the SDK's README builds one for port 8883 and a secret; no reconnecting, so a
    refused handshake returns instead of retrying and destroy() really ends the session."""
    auth = ConnectAuthInfo()
    auth.server_uri = spec["mqtt_host"]
    auth.port = SDK_TLS_PORT
    auth.id = spec["device_id"]
    auth.secret = spec["secret"]
    auth.iot_cert_path = ca_file
    auth.reconnect_on_failure = False
    return IotDevice(ClientConf(auth))



class EchoCommands(CommandListener):
    def __init__(self, device):
        self.device = device

    def on_command(self, request_id, service_id, command_name, paras):
        step("device_got_command", request_id=request_id, service_id=service_id,
             command_name=command_name, paras=paras)
        answer = CommandRsp()
        answer.result_code = 0
        answer.response_name = command_name
        answer.paras = {"echo": paras}
        self.device.get_client().respond_command(request_id, answer)


def application(spec, ca_file):
    """The application SDK over HTTPS with verification on; `ca_file` None: default roots."""
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = False
    config.ssl_ca_cert = ca_file
    config.timeout = HTTP_TIMEOUT_S
    credentials = BasicCredentials(spec["ak"], spec["sk"], spec["project_id"])
    return (IoTDAClient.new_builder().with_http_config(config).with_credentials(credentials)
            .with_endpoints([spec["https_endpoint"]]).build())


def create_command(iotda, spec):
    command = spec["command"]
    return iotda.create_command(CreateCommandRequest(device_id=spec["device_id"], body=DeviceCommandRequest(
        service_id=command["service_id"], command_name=command["command_name"], paras=command["paras"])))


def run(spec):
    untrusting = sdk_device(spec, certifi.where())
    step("untrusted_ca", rc=untrusting.connect())

    device = sdk_device(spec, spec["ca"])
    device.get_client().set_command_listener(EchoCommands(device))
    session = SessionEvents()
    device.get_client().add_connect_listener(session)
    rc = device.connect()
    # -1: no CONNACK within connect()'s second, but the session may still complete; a
    # refusal (a CONNACK code) is final.
    completed = session.completed.wait(SESSION_EVENT_WAIT_S if rc == -1 else 0)
    step("connected", rc=rc, completed=completed)
    if not completed:
        return 1
    try:
        if not wait_for_test():
            return 1  # the test went away
        try:
            create_command(application(spec, None), spec)
            step("https_without_ca", error=None, message="the call succeeded")
        except SdkException as error:
            step("https_without_ca", error=type(error).__name__, message=str(error))
        answered = create_command(application(spec, spec["ca"]), spec)
        step("command_answered", status_code=answered.status_code, command_id=answered.command_id,
             response=answered.response, error_code=answered.error_code)
    finally:
        device.destroy()
    step("done", disconnected=session.lost.wait(SESSION_EVENT_WAIT_S))
    return 0



if __name__ == "__main__":
    main(run)
