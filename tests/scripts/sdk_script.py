"""What the device-SDK scripts (device_sdk_tls.py, device_sdk_gateway.py) share: their JSON step
lines on stdout, waiting for the test on stdin, the SDK's session events, and a main that
reports a failure as a step and leaves even when the SDK's MQTT thread still runs."""
import json
import logging
import os
import sys
import threading
import traceback

from iot_device_sdk_python.transport.connect_listener import ConnectListener

PRINT_LOCK = threading.Lock()


def step(name, **fields):
    """One JSON line; anything JSON lacks (a paho ReasonCode, say) as its text."""
    with PRINT_LOCK:
        print(json.dumps({"step": name, **fields}, default=str), flush=True)


def wait_for_test():
    """Blocks until the test writes a line (it checked the registry); False if it went away."""
    return bool(sys.stdin.readline())


class SessionEvents(ConnectListener):
    def __init__(self):
        self.completed = threading.Event()
        self.lost = threading.Event()

    def connect_complete(self, reconnect, server_uri):
        self.completed.set()

    def connection_lost(self, cause):
        self.lost.set()


def main(run):
    """Runs `run(spec)` with the JSON spec of argv[1]; exits with its code (1 on an exception,
    reported as {"step": "failed", "error": ...})."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = run(json.loads(sys.argv[1]))
    except Exception as error:  # report it on stdout too, where the test reads steps
        traceback.print_exc()
        step("failed", error=f"{type(error).__name__}: {error}")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's MQTT loop runs in a non-daemon thread: leave even if a failure left it running.
    os._exit(code)
