"""The operator console in headless Chromium (Selenium), against a running ringiot whose
project has product `meter` (service `water`, command SET_LEVEL with int para `value` 0..100)
and devices meter_answering, meter_mute, meter_sleepy and meter_xss (named as markup), all
with secret DEVICE_SECRET and never connected yet. Devices are paho-mqtt clients started here.

Configuration comes from the environment: CONSOLE_URL, MQTT_HOST, MQTT_PORT, PROJECT_ID, TOKEN,
DEVICE_SECRET, COMMAND_TIMEOUT_MS, SCREENSHOTS (a directory), CHROMIUM, CHROMEDRIVER.

Prints "STEP <name>" after each flow and "CONSOLE OK" at the end; any mismatch raises. Only
`data-testid` hooks are used to find elements — no CSS classes or layout.
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

ENV = os.environ
CONSOLE = ENV["CONSOLE_URL"]
WAIT_S = 20


def step(name):
    print(f"STEP {name}", flush=True)


def tid(name):
    return (By.CSS_SELECTOR, f'[data-testid="{name}"]')


class Console:
    def __init__(self):
        options = webdriver.ChromeOptions()
        options.binary_location = ENV["CHROMIUM"]
        for flag in [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,900",
        ]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(ENV["CHROMEDRIVER"]), options=options)
        self.shots = ENV["SCREENSHOTS"]

    def wait(self, what, condition, timeout=WAIT_S):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except StaleElementReferenceException as error:  # re-rendered while read
                last = error
            time.sleep(0.1)
        self.shot(f"failed-{what.replace(' ', '-')}")
        raise AssertionError(f"waited {timeout} s for {what} (last: {last}); page:\n{self.body_text()[:3000]}")

    def find(self, name, within=None):
        return (within or self.driver).find_elements(*tid(name))

    def one(self, name, within=None):
        return self.wait(f"[{name}]", lambda: (self.find(name, within) or [None])[0])

    def body_text(self):
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception as error:  # noqa: BLE001 - only for a failure message
            return f"(no body: {error})"

    def go(self, fragment):
        # An open dialog (the last command's) closes with Escape, as a user would close it.
        if self.driver.find_elements(By.CSS_SELECTOR, "dialog[open]"):
            ActionChains(self.driver).send_keys(Keys.ESCAPE).perform()
            self.wait("the dialog closed", lambda: not self.driver.find_elements(By.CSS_SELECTOR, "dialog[open]"))
        self.driver.get(CONSOLE + fragment)

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

    def type_into(self, name, text, within=None):
        field = self.one(name, within)
        field.clear()
        field.send_keys(text)

    def sign_in(self, project_id, token):
        self.type_into("login-project", project_id)
        self.type_into("login-token", token)
        self.one("login-submit").click()

    def device_row(self, device_id):
        for row in self.find("device-row"):
            if row.get_attribute("data-device-id") == device_id or device_id in row.text:
                return row
        return None

    def csp_violations(self):
        """CSP reports and script errors; failed API calls (the 401 of the wrong token, the 400
        of the model error) are the flows' own and are left out."""
        return [
            entry for entry in self.driver.get_log("browser")
            if "Content Security Policy" in entry.get("message", "")
            or (entry.get("level") == "SEVERE" and entry.get("source") != "network")
        ]


class Device:
    """A paho device: answers every command with {"result_code":0,"paras":{"echo":<paras>}}
    unless mute; records the messages it receives."""

    def __init__(self, device_id, answering=True):
        self.device_id, self.answering = device_id, answering
        self.messages = []
        self.connected = threading.Event()
        timestamp = time.strftime("%Y%m%d%H", time.gmtime())
        secret = ENV["DEVICE_SECRET"]
        password = hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}_0_1_{timestamp}")
        self.client.username_pw_set(device_id, password)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if rc == 0 else None
        self.client.on_message = self.on_message

    def on_message(self, client, userdata, message):
        topic = message.topic
        if "/sys/commands/request_id=" in topic:
            if self.answering:
                request = json.loads(message.payload)
                answer = {"result_code": 0, "paras": {"echo": request.get("paras")}}
                client.publish(topic.replace("/request_id=", "/response/request_id=", 1), json.dumps(answer))
        elif topic.endswith("/sys/messages/down"):
            self.messages.append(json.loads(message.payload))

    def connect(self):
        self.client.connect(ENV["MQTT_HOST"], int(ENV["MQTT_PORT"]), keepalive=120)
        self.client.loop_start()
        if not self.connected.wait(WAIT_S):
            raise AssertionError(f"{self.device_id} did not connect")

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def send_command(console, device_id, value):
    """Opens the command dialog on the device's commands tab, fills it from the model and
    sends; returns the result element once its outcome is final."""
    console.go(f"#/devices/{device_id}/commands")
    console.one("command-open").click()
    Select(console.one("command-service")).select_by_value("water")
    Select(console.one("command-name")).select_by_value("SET_LEVEL")
    console.type_into("para-value", str(value))
    console.one("command-send").click()
    return console.wait(
        f"the outcome of a command to {device_id}",
        lambda: next(
            (r for r in console.find("command-result") if r.get_attribute("data-outcome") not in (None, "", "waiting")),
            None,
        ),
        timeout=WAIT_S + int(ENV["COMMAND_TIMEOUT_MS"]) / 1000,
    )


def main():
    console = Console()
    devices = []
    try:
        # A wrong token is refused with the API's error.
        console.go("")
        console.shot("01-sign-in")
        console.sign_in(ENV["PROJECT_ID"], "not-the-token")
        error = console.one("login-error")
        console.wait("the sign-in error", lambda: "IOTDA.000002" in error.text)
        assert not console.find("sign-out"), "a wrong token signed in"
        console.shot("02-sign-in-refused")
        step("wrong token refused")

        console.sign_in(ENV["PROJECT_ID"], ENV["TOKEN"])
        console.one("sign-out")
        assert ENV["TOKEN"] not in console.driver.current_url, "the token is in the URL"
        stored = console.driver.execute_script("return JSON.stringify(window.sessionStorage)")
        assert ENV["TOKEN"] in stored, "the token is kept in sessionStorage"
        assert ENV["TOKEN"] not in console.driver.execute_script("return JSON.stringify(window.localStorage)")
        step("signed in")
        console.go("#/overview")
        console.one("overview-devices")
        time.sleep(2.5)  # two polls of /metrics: the chart has points
        console.shot("03-overview")

        # A device becomes ONLINE on the list without a reload.
        console.go("#/devices")
        row = console.wait("meter_answering's row", lambda: console.device_row("meter_answering"))
        assert console.one("device-status", row).text.strip() != "ONLINE", row.text
        console.shot("04-devices")
        marker = console.driver.execute_script("window.__notReloaded = true; return 1")
        answering = Device("meter_answering")
        devices.append(answering)
        answering.connect()
        console.wait(
            "meter_answering ONLINE on the list",
            lambda: any("ONLINE" in status.text for status in console.find("device-status", console.device_row("meter_answering"))),
        )
        assert console.driver.execute_script("return window.__notReloaded === true") and marker, "the page reloaded"
        console.shot("05-devices-online")
        step("device ONLINE without reload")

        # The markup-named device shows its name as text, and nothing ran.
        xss_row = console.wait("meter_xss's row", lambda: console.device_row("meter_xss"))
        assert "<img src=x onerror=alert(1)>" in xss_row.text, xss_row.text
        assert not console.driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]'), "the name became an element"
        console.go("#/devices/meter_xss")
        console.one("device-status")
        assert "<img src=x onerror=alert(1)>" in console.body_text()
        try:
            alert = console.driver.switch_to.alert
            raise AssertionError(f"an alert ran: {alert.text}")
        except NoAlertPresentException:
            pass
        console.shot("06-device-markup-name")
        step("markup shown as text")

        # A command through the dialog generated from the model: the device's exact answer.
        result = send_command(console, "meter_answering", 42)
        assert result.get_attribute("data-outcome") == "ok", result.text
        response = console.one("command-response").text
        assert json.loads(response) == {"result_code": 0, "paras": {"echo": {"value": 42}}}, response
        console.shot("07-command-answered")
        console.go("#/overview")
        console.wait("the round trip on the overview", lambda: " ms" in console.one("overview-round-trip").text
                     or "µs" in console.one("overview-round-trip").text)
        console.shot("07b-overview-after-command")
        step("command answered")

        # Out of the model's range: the model's error, next to the para.
        result = send_command(console, "meter_answering", 1000)
        assert result.get_attribute("data-outcome") == "invalid", result.text
        assert "IOTDA.000006" in result.text, result.text
        # Next to the para: its input marked invalid, its own error line shown.
        para = console.one("para-value")
        assert para.get_attribute("aria-invalid") == "true", para.get_attribute("outerHTML")
        para_error = console.one("para-error-value")
        assert para_error.is_displayed() and "paras.value" in para_error.text, para_error.text
        console.shot("08-command-model-error")
        step("model error shown")

        # A connected device that does not answer: the timeout.
        mute = Device("meter_mute", answering=False)
        devices.append(mute)
        mute.connect()
        result = send_command(console, "meter_mute", 5)
        assert result.get_attribute("data-outcome") == "timeout", result.text
        assert "IOTDA.014111" in console.body_text()
        history = console.find("command-history-row")
        assert history and history[0].get_attribute("data-outcome") == "timeout", [h.text for h in history]
        console.shot("09-command-timeout")
        step("command timed out")

        # A message to an offline device: PENDING, then DELIVERED once it connects.
        console.go("#/devices/meter_sleepy/messages")
        console.type_into("message-input", "hello <b>from</b> the console")
        console.one("message-send").click()
        def status():
            rows = console.find("message-row")
            statuses = console.find("message-status", rows[0]) if rows else []
            return statuses[0].text.strip() if statuses else None

        console.wait("the message PENDING", lambda: status() == "PENDING")
        console.shot("10-message-pending")
        sleepy = Device("meter_sleepy")
        devices.append(sleepy)
        sleepy.connect()
        console.wait("the message DELIVERED", lambda: status() == "DELIVERED")
        console.wait("the message at the device", lambda: any(
            m.get("content") == "hello <b>from</b> the console" for m in sleepy.messages))
        row = console.one("message-row")
        assert "hello <b>from</b> the console" in row.text, row.text
        assert not row.find_elements(By.TAG_NAME, "b"), "the message body became markup"
        console.shot("11-message-delivered")
        step("message PENDING then DELIVERED")

        # A batch task over two online devices, to its end.
        console.go("#/batch?create=1")
        console.type_into("batch-name", "console batch")
        Select(console.one("batch-type")).select_by_value("createCommands")
        console.type_into("batch-targets", "meter_answering\nmeter_sleepy")
        console.type_into(
            "batch-document",
            json.dumps({"service_id": "water", "command_name": "SET_LEVEL", "paras": {"value": 7}}),
        )
        console.shot("12-batch-create")
        console.one("batch-submit").click()
        console.wait("the task's final status", lambda: console.one("batch-status").text.strip() == "Success")
        progress = console.one("batch-progress")
        assert progress.get_attribute("aria-valuenow") == progress.get_attribute("aria-valuemax") == "2", (
            progress.get_attribute("aria-valuenow"), progress.get_attribute("aria-valuemax"))
        console.wait("two detail rows", lambda: len(console.find("batch-detail-row")) == 2)
        console.shot("13-batch-finished")
        step("batch task finished")

        # The other pages, for the record.
        console.go("#/products/meter")
        console.wait("the model", lambda: "SET_LEVEL" in console.body_text())
        console.shot("14-product-model")
        console.go("#/devices/meter_answering/shadow")
        console.one("desired-json")
        console.shot("15-device-shadow")
        console.go("#/devices/meter_answering")
        console.one("device-status")
        console.shot("16-device-overview")

        # Sign-out forgets the credentials: the tab's storage is empty of them, and the sign-in
        # form is back (a protected page asks for it again).
        console.one("sign-out").click()
        console.one("login-project")
        stored = console.driver.execute_script("return JSON.stringify(window.sessionStorage)")
        assert ENV["TOKEN"] not in stored, stored
        console.go("#/devices")
        console.one("login-token")
        assert not console.find("device-row"), "devices shown while signed out"
        step("signed out")

        violations = console.csp_violations()
        assert not violations, f"console errors or CSP violations: {violations}"
        print("CONSOLE OK", flush=True)
    finally:
        for device in devices:
            device.stop()
        console.driver.quit()


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - printed for the Rust test's message
        print(f"FAILED: {error!r}", flush=True)
        raise
    sys.exit(0)
