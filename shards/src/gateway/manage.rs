//! A gateway's own sub-device management (spec §7.1): `add_sub_device_request` and
//! `delete_sub_device_request`, each device an AddDevice / DeleteDevice forwarded to the front
//! desk on shard 0 so that every REST rule holds (see the parent module's doc). The entries of
//! one request run one after another: the sub-device bound and duplicate node ids are decided
//! in order, as the gateway listed them.

use std::rc::Rc;

use bytes::Bytes;
use protocol::routing::home_shard;
use serde::Deserialize;
use simd_json::prelude::*;
use simd_json::OwnedValue;

use super::{events_down, Event, FROM_GATEWAY_QUERY, MANAGE_ENTRIES_MAX};
use crate::messages::{Reply, Request};
use crate::registry::Shard;

#[derive(Debug, Deserialize)]
struct ManageParas {
    #[serde(default)]
    devices: Vec<OwnedValue>,
}

impl Shard {
    /// `add_sub_device_request`: each device is an AddDevice under this gateway, run by the
    /// front desk.
    pub(super) async fn add_sub_devices(self: &Rc<Self>, gateway_id: &str, event: Event) -> Option<Bytes> {
        let paras: ManageParas = simd_json::serde::from_owned_value(event.paras).ok()?;
        let project_id = self.device_for_login(gateway_id)?.project_id;
        let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
        for (index, wanted) in paras.devices.into_iter().enumerate() {
            // The official SDK sends every field, unset ones as "": those are absent.
            let field = |name: &str| {
                wanted.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_owned)
            };
            let (node_id, product_id) =
                (field("node_id").unwrap_or_default(), field("product_id").unwrap_or_default());
            if index >= MANAGE_ENTRIES_MAX {
                failed.push(simd_json::json!({"node_id": node_id, "product_id": product_id,
                    "error_code": "IOTDA.000006", "error_msg": "more than 50 devices in one request"}));
                continue;
            }
            let mut body =
                simd_json::json!({"node_id": node_id, "product_id": product_id, "gateway_id": gateway_id});
            for (from, to) in
                [("name", "device_name"), ("description", "description"), ("device_id", "device_id")]
            {
                if let Some(value) = field(from) {
                    body.insert(to, value).ok()?;
                }
            }
            if let Some(extension) =
                wanted.get("extension_info").filter(|v| !v.is_null() && v.as_str() != Some(""))
            {
                body.insert("extension_info", extension.clone()).ok()?;
            }
            let answer = self
                .front_desk_call("POST", format!("/v5/iot/{project_id}/devices"), &project_id, body)
                .await;
            match answer {
                Ok((201, device)) => succeeded.push(simd_json::json!({
                    "parent_device_id": gateway_id,
                    "node_id": device.get("node_id").cloned(),
                    "device_id": device.get("device_id").cloned(),
                    "name": device.get("device_name").cloned(),
                    "description": device.get("description").cloned(),
                    "product_id": device.get("product_id").cloned(),
                    "status": device.get("status").cloned(),
                    "extension_info": device.get("extension_info").cloned(),
                })),
                Ok((_, error)) | Err(error) => failed.push(simd_json::json!({
                    "node_id": node_id, "product_id": product_id,
                    "error_code": error.get("error_code").cloned(), "error_msg": error.get("error_msg").cloned(),
                })),
            }
        }
        let paras = simd_json::json!({"successful_devices": succeeded, "failed_devices": failed});
        Some(events_down("add_sub_device_response", event.event_id, paras))
    }

    /// `delete_sub_device_request`: each of this gateway's own sub-devices named is deleted
    /// by the front desk.
    pub(super) async fn delete_sub_devices(self: &Rc<Self>, gateway_id: &str, event: Event) -> Option<Bytes> {
        let paras: ManageParas = simd_json::serde::from_owned_value(event.paras).ok()?;
        let project_id = self.device_for_login(gateway_id)?.project_id;
        let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
        for (index, device_id) in paras.devices.into_iter().enumerate() {
            let device_id = device_id.as_str().unwrap_or_default().to_owned();
            let refused = |code: &str, message: String| simd_json::json!({"device_id": device_id.clone(), "error_code": code, "error_msg": message});
            if index >= MANAGE_ENTRIES_MAX {
                failed.push(refused("IOTDA.000006", "more than 50 devices in one request".into()));
                continue;
            }
            // Only this gateway's own sub-devices (checked on their home shard).
            let home = home_shard(&device_id, self.shard_count());
            let show = Request::ShowDevice { project_id: project_id.clone(), device_id: device_id.clone() };
            match Box::pin(self.call(home, show)).await {
                Reply::Device(device)
                    if device.gateway_id == gateway_id && device.device_id != gateway_id => {}
                Reply::Device(_) => {
                    failed.push(refused(
                        "IOTDA.000021",
                        format!("{device_id} is not a sub-device of gateway {gateway_id}"),
                    ));
                    continue;
                }
                _ => {
                    failed.push(refused("IOTDA.014000", "the device does not exist".into()));
                    continue;
                }
            }
            let path = format!("/v5/iot/{project_id}/devices/{device_id}");
            match self.front_desk_call("DELETE", path, &project_id, OwnedValue::null()).await {
                Ok((204, _)) => succeeded.push(OwnedValue::from(device_id.clone())),
                Ok((_, error)) | Err(error) => failed.push(simd_json::json!({"device_id": device_id.clone(),
                    "error_code": error.get("error_code").cloned(), "error_msg": error.get("error_msg").cloned()})),
            }
        }
        let paras = simd_json::json!({"successful_devices": succeeded, "failed_devices": failed});
        Some(events_down("delete_sub_device_response", event.event_id, paras))
    }

    /// A REST call run by shard 0's front desk on behalf of a gateway: `(status, JSON body)`.
    async fn front_desk_call(
        self: &Rc<Self>,
        method: &str,
        path: String,
        project_id: &str,
        body: OwnedValue,
    ) -> Result<(u16, OwnedValue), OwnedValue> {
        let call = crate::messages::ForwardedCall {
            method: method.to_owned(),
            path,
            query: Some(FROM_GATEWAY_QUERY.to_owned()),
            project_id: project_id.to_owned(),
            body: if body.is_null() { Vec::new() } else { protocol::json::to_vec(&body) },
        };
        match Box::pin(self.call(0, Request::FrontDesk(Box::new(call)))).await {
            Reply::FrontDesk(answer) => {
                let json = if answer.body.is_empty() {
                    OwnedValue::null()
                } else {
                    protocol::json::from_bytes::<OwnedValue>(&answer.body)
                        .unwrap_or_else(|_| OwnedValue::null())
                };
                Ok((answer.status, json))
            }
            other => Err(simd_json::json!({"error_code": "IOTDA.000503", "error_msg": format!("{other:?}")})),
        }
    }
}
