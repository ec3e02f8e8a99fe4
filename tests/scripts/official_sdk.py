"""Drives a running ringiot with Huawei's official Python SDK (huaweicloudsdkiotda), unmodified.

Usage: official_sdk.py ENDPOINT PROJECT_ID AK SK {sdk|v11} [ONLINE_DEVICE_ID OFFLINE_DEVICE_ID]
  sdk: BasicCredentials sign with SDK-HMAC-SHA256 (regional endpoint behaviour)
  v11: the derived signature V11-HMAC-SHA256 (dedicated-instance behaviour), region cn-north-4

With the two device ids, also sends a command, a property set and a property get to the online
device (whose simulator answers every call with {"result_code":0,...}) and a command to the
offline one (403 IOTDA.014016, parsed by the SDK).

Prints one line per step and "OFFICIAL SDK OK" at the end; any mismatch raises.
"""
import sys
import uuid

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkiotda.v5 import (
    AddDevice, AddDeviceRequest, AddProduct, AuthInfo, CreateCommandRequest, CreateProductRequest,
    DeleteDeviceRequest, DeleteProductRequest, DeviceCommandRequest, DevicePropertiesRequest,
    IoTDAClient, ListDevicesRequest, ListProductsRequest, ListPropertiesRequest, ServiceCapability,
    ServiceCommand, ServiceCommandPara, ServiceProperty, ShowDeviceRequest, ShowProductRequest,
    UpdateDevice, UpdateDeviceRequest, UpdatePropertiesRequest,
)


def client(endpoint, project_id, ak, sk, mode):
    credentials = BasicCredentials(ak, sk, project_id)
    builder = IoTDAClient.new_builder().with_http_config(HttpConfig.get_default_config())
    if mode == "v11":
        credentials = credentials.with_derived_predicate(BasicCredentials.get_default_derived_predicate())
        builder = builder.with_region(Region("cn-north-4", endpoint))
    else:
        builder = builder.with_endpoints([endpoint])
    return builder.with_credentials(credentials).build()


def device_calls(iotda, online, offline):
    """Sync calls through the SDK: the device's answer comes back as `response`."""
    command = iotda.create_command(CreateCommandRequest(device_id=online, body=DeviceCommandRequest(
        service_id="water", command_name="ON_OFF", paras={"value": "ON"})))
    assert command.command_id and command.response["result_code"] == 0, command
    assert command.response["request_id"] == command.command_id, command
    assert command.error_code is None, command
    print("create_command", command.command_id)

    updated = iotda.update_properties(UpdatePropertiesRequest(device_id=online, body=DevicePropertiesRequest(
        services=[{"service_id": "water", "properties": {"level": 5}}])))
    assert updated.request_id and updated.response["result_code"] == 0, updated
    listed = iotda.list_properties(ListPropertiesRequest(device_id=online, service_id="water"))
    assert listed.response["services"][0]["properties"]["level"] == 5, listed
    print("update_properties / list_properties ok")

    try:
        iotda.create_command(CreateCommandRequest(device_id=offline, body=DeviceCommandRequest(paras={})))
        raise AssertionError("a command to an offline device succeeded")
    except ClientRequestException as error:
        assert error.status_code == 403 and error.error_code == "IOTDA.014016", error
    print("offline device: 403 parsed by the SDK")


def main():
    endpoint, project_id, ak, sk, mode = sys.argv[1:6]
    iotda = client(endpoint, project_id, ak, sk, mode)
    if len(sys.argv) > 7:
        device_calls(iotda, sys.argv[6], sys.argv[7])
    suffix = uuid.uuid4().hex[:8]
    product_id = f"sdk_{mode}_{suffix}"

    product = AddProduct(
        product_id=product_id, name="SDK meter", device_type="WaterMeter", protocol_type="MQTT",
        data_format="json",
        service_capabilities=[ServiceCapability(
            service_id="water", service_type="water",
            properties=[ServiceProperty(property_name="level", data_type="int", min="0", max="100",
                                        method="RE")],
            commands=[ServiceCommand(command_name="ON_OFF", paras=[ServiceCommandPara(
                para_name="value", data_type="string", enum_list=["ON", "OFF"])])],
        )],
    )
    created = iotda.create_product(CreateProductRequest(body=product))
    assert created.product_id == product_id, created
    print("create_product", created.product_id)

    shown = iotda.show_product(ShowProductRequest(product_id=product_id))
    assert shown.service_capabilities[0].service_id == "water", shown
    listed = iotda.list_products(ListProductsRequest(limit=50))
    assert any(p.product_id == product_id for p in listed.products), listed
    print("show_product / list_products ok")

    device = iotda.add_device(AddDeviceRequest(body=AddDevice(
        node_id="node1", product_id=product_id, device_name="pump",
        auth_info=AuthInfo(secret="sdk-secret-123"))))
    device_id = device.device_id
    assert device_id == f"{product_id}_node1", device
    assert device.status == "INACTIVE", device
    print("add_device", device_id)

    shown = iotda.show_device(ShowDeviceRequest(device_id=device_id))
    assert shown.device_name == "pump" and shown.product_id == product_id, shown
    listed = iotda.list_devices(ListDevicesRequest(product_id=product_id, limit=10))
    assert [d.device_id for d in listed.devices] == [device_id], listed
    assert listed.page.count == 1, listed.page
    assert "sdk-secret-123" not in str(listed.to_dict()), "a list response carries a secret"
    updated = iotda.update_device(UpdateDeviceRequest(device_id=device_id,
                                                      body=UpdateDevice(device_name="renamed")))
    assert updated.device_name == "renamed", updated
    print("show_device / list_devices / update_device ok")

    iotda.delete_device(DeleteDeviceRequest(device_id=device_id))
    try:
        iotda.show_device(ShowDeviceRequest(device_id=device_id))
        raise AssertionError("a deleted device is still shown")
    except ClientRequestException as error:
        assert error.status_code == 404 and error.error_code == "IOTDA.014000", error
        assert error.request_id, "the SDK reads X-Request-Id"
    iotda.delete_product(DeleteProductRequest(product_id=product_id))
    print("delete_device / delete_product ok; 404 parsed by the SDK")
    print("OFFICIAL SDK OK")


if __name__ == "__main__":
    main()
