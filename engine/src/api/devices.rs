//! Devices (spec §2.4). Shard 0 validates the body and checks the product (it holds the
//! products); the device's home shard checks for duplicates, logs, and answers. Lists fan out
//! to every shard and merge newest first.

use std::rc::Rc;

use http::StatusCode;
use protocol::device::{self, AddDeviceRequest, AuthType, UpdateDeviceRequest};
use protocol::routing::home_shard;
use shards::messages::{DeviceUpdate, Reply, Request};
use shards::registry::devices::DeviceFilter;
use shards::registry::records::{DeviceRecord, DeviceStatus};

use super::query::{Page, Paging};
use super::view::{device_response, device_summary};
use crate::app::{now_ms, ApiRequest, ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

/// Length of a generated device secret: inside the spec's 8–32, as long as allowed.
const GENERATED_SECRET_CHARS: usize = 32;

pub async fn add(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let body: AddDeviceRequest = protocol::json::from_bytes(request.body)?;
    let device = device::validate_add(body)?;
    let (_, product) = super::products::find(app, request.project_id, &device.product_id)?;
    if device.gateway_id != device.device_id {
        check_gateway(app, request.project_id, &device.gateway_id).await?;
    }
    let now = now_ms();
    let secret = match device.auth_type {
        AuthType::Secret => {
            Some(device.secret.unwrap_or_else(|| crate::random::alphanumeric(GENERATED_SECRET_CHARS)))
        }
        AuthType::Certificates => None,
    };
    let record = DeviceRecord {
        record_id: app.record_ids.next(now),
        project_id: request.project_id.to_owned(),
        device_id: device.device_id.clone(),
        node_id: device.node_id,
        product_id: device.product_id,
        app_id: device.app_id.unwrap_or_else(|| product.app_id.clone()),
        gateway_id: device.gateway_id,
        device_name: Some(device.device_name),
        description: device.description,
        auth_type: device.auth_type.as_str().to_owned(),
        secret,
        secondary_secret: device.secondary_secret,
        fingerprint: device.fingerprint,
        secondary_fingerprint: device.secondary_fingerprint,
        secure_access: device.secure_access,
        timeout_s: device.timeout_s,
        extension_info_json: device.extension_info,
        initial_shadow_json: device.initial_shadow_json,
        status: DeviceStatus::Inactive,
        create_time_ms: now,
        connection_status_update_time_ms: None,
        active_time_ms: None,
    };
    let home = home_shard(&device.device_id, app.shard.shard_count());
    let added = expect_device(app.shard.call(home, Request::AddDevice(Box::new(record))).await)?;
    notify_gateway(app, request, &added, "add_sub_device_notify").await;
    Ok(ApiResponse::json(StatusCode::CREATED, &device_response(app, &added, true)))
}

/// Tells a sub-device's gateway (if online) that the application added or deleted it
/// (`shards::gateway`); not for the gateway's own requests, which get their response.
async fn notify_gateway(
    app: &Rc<App>,
    request: &ApiRequest<'_>,
    device: &DeviceRecord,
    event_type: &'static str,
) {
    if device.gateway_id == device.device_id || request.raw_query == Some(shards::gateway::FROM_GATEWAY_QUERY)
    {
        return;
    }
    let info = simd_json::json!({
        "parent_device_id": device.gateway_id.as_str(),
        "node_id": device.node_id.as_str(),
        "device_id": device.device_id.as_str(),
        "name": device.device_name.as_deref(),
        "description": device.description.as_deref(),
        "product_id": device.product_id.as_str(),
        "status": device.status.as_str(),
    });
    let notify = shards::gateway::GatewayRequest::Notify {
        gateway_id: device.gateway_id.clone(),
        event_type,
        devices: vec![info],
    };
    let home = home_shard(&device.gateway_id, app.shard.shard_count());
    let _ = app.shard.call(home, Request::Gateway(Box::new(notify))).await;
}

pub async fn show(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let home = home_shard(device_id, app.shard.shard_count());
    let show =
        Request::ShowDevice { project_id: request.project_id.to_owned(), device_id: device_id.to_owned() };
    let device = expect_device(app.shard.call(home, show).await)?;
    Ok(ApiResponse::json(StatusCode::OK, &device_response(app, &device, true)))
}

pub async fn update(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let body: UpdateDeviceRequest = protocol::json::from_bytes(request.body)?;
    let update = device::validate_update(body)?;
    let update = DeviceUpdate {
        device_name: update.device_name,
        description: update.description,
        extension_info_json: update.extension_info,
        secure_access: update.secure_access,
        timeout_s: update.timeout_s,
        ..Default::default()
    };
    let device = update_on_home_shard(app, request, device_id, update).await?;
    Ok(ApiResponse::json(StatusCode::OK, &device_response(app, &device, true)))
}

/// DeleteDevice. A gateway that still has sub-devices is not deleted (400, naming how many):
/// decided over a cascade, which would delete devices the caller did not name. A sub-device
/// added while its gateway is being deleted can outlive it; it is then a device whose gateway
/// is gone, and can be deleted like any other.
pub async fn delete(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    // The project's device first: another project's device is 404, never "a gateway".
    let home = home_shard(device_id, app.shard.shard_count());
    let show =
        Request::ShowDevice { project_id: request.project_id.to_owned(), device_id: device_id.to_owned() };
    let device = expect_device(app.shard.call(home, show).await)?;
    let children = count_sub_devices(app, device_id).await?;
    if children > 0 {
        return Err(ApiError::Conflict(format!(
            "the device '{device_id}' is the gateway of {children} sub-devices; delete them first"
        )));
    }
    let call =
        Request::DeleteDevice { project_id: request.project_id.to_owned(), device_id: device_id.to_owned() };
    match app.shard.call(home, call).await {
        Reply::Done => {
            notify_gateway(app, request, &device, "delete_sub_device_notify").await;
            Ok(ApiResponse::no_content())
        }
        Reply::Failed(error) => Err(error.into()),
        _ => Err(ApiError::Unavailable("unexpected reply to a device delete".into())),
    }
}

/// ShowDeviceShadow (spec §2.9): `{"device_id", "shadow": [{service_id, desired, reported,
/// version}]}` — readable while the device is offline.
pub async fn show_shadow(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let call =
        Request::ShowShadow { project_id: request.project_id.to_owned(), device_id: device_id.to_owned() };
    shadow_call(app, device_id, call).await
}

/// UpdateDeviceShadowDesiredData (`PUT .../devices/{device_id}/shadow`, spec §2.9, §7.3):
/// answered with the whole shadow once it is durable; see `shards::desired`.
pub async fn update_shadow(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let update: protocol::shadow::DesiredUpdate = protocol::json::from_bytes(request.body)?;
    let call = Request::UpdateShadowDesired {
        project_id: request.project_id.to_owned(),
        device_id: device_id.to_owned(),
        update: Box::new(update),
    };
    shadow_call(app, device_id, call).await
}

async fn shadow_call(app: &Rc<App>, device_id: &str, call: Request) -> ApiResult {
    let home = home_shard(device_id, app.shard.shard_count());
    match app.shard.call(home, call).await {
        Reply::Shadow(shadow) => {
            #[derive(serde::Serialize)]
            struct ShowShadow<'a> {
                device_id: &'a str,
                shadow: &'a [protocol::shadow::ServiceShadow],
            }
            Ok(ApiResponse::json(StatusCode::OK, &ShowShadow { device_id, shadow: &shadow.services }))
        }
        Reply::Failed(error) => Err(error.into()),
        _ => Err(ApiError::Unavailable("unexpected reply to a shadow request".into())),
    }
}

pub async fn list(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let paging = Paging::from_query(&request.query)?;
    let filter = filter_of(request)?;
    // Each shard returns its first offset+limit matches below the marker; the merged page is
    // exactly what one sorted table would give.
    let take = paging.offset + paging.limit;
    let replies = app
        .shard
        .call_all(|_| Request::ListDevices { filter: filter.clone(), marker: paging.marker, take })
        .await;
    let mut devices = Vec::new();
    let mut count = 0;
    for reply in replies {
        match reply {
            Reply::Devices(slice) => {
                count += slice.matching_count;
                devices.extend(slice.devices);
            }
            Reply::Failed(error) => return Err(error.into()),
            _ => return Err(ApiError::Unavailable("unexpected reply to a device list".into())),
        }
    }
    devices.sort_unstable_by_key(|device| std::cmp::Reverse(device.record_id));
    let page: Vec<DeviceRecord> = devices.into_iter().skip(paging.offset).take(paging.limit).collect();
    #[derive(serde::Serialize)]
    struct ListDevices {
        devices: Vec<device::DeviceSummary>,
        page: Page,
    }
    let last = page.last().map(|d| d.record_id);
    let devices = page.iter().map(|d| device_summary(app, d)).collect();
    Ok(ApiResponse::json(StatusCode::OK, &ListDevices { devices, page: Page::new(count, last) }))
}

fn filter_of(request: &ApiRequest<'_>) -> Result<DeviceFilter, ApiError> {
    let query = &request.query;
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        query
            .non_empty(name)
            .map(|text| {
                protocol::time::parse_sdk_date(&text)
                    .map(|seconds| seconds * 1000)
                    .map_err(|_| ApiError::TimeFormat(format!("{name} '{text}' is not yyyyMMdd'T'HHmmss'Z'")))
            })
            .transpose()
    };
    let filter = DeviceFilter {
        project_id: request.project_id.to_owned(),
        product_id: query.non_empty("product_id"),
        node_id: query.non_empty("node_id"),
        device_name: query.non_empty("device_name"),
        gateway_id: query.non_empty("gateway_id"),
        app_id: query.non_empty("app_id"),
        created_from_ms: time("start_time")?,
        created_to_ms: time("end_time")?,
    };
    if let (Some(from), Some(to)) = (filter.created_from_ms, filter.created_to_ms) {
        if from > to {
            return Err(ApiError::TimeRange);
        }
    }
    Ok(filter)
}

/// UpdateDevice on the device's home shard (in the caller's project): the record as changed,
/// once durable.
async fn update_on_home_shard(
    app: &Rc<App>,
    request: &ApiRequest<'_>,
    device_id: &str,
    update: DeviceUpdate,
) -> Result<DeviceRecord, ApiError> {
    let home = home_shard(device_id, app.shard.shard_count());
    let call = Request::UpdateDevice {
        project_id: request.project_id.to_owned(),
        device_id: device_id.to_owned(),
        update,
    };
    expect_device(app.shard.call(home, call).await)
}

fn expect_device(reply: Reply) -> Result<DeviceRecord, ApiError> {
    match reply {
        Reply::Device(device) => Ok(*device),
        Reply::Failed(error) => Err(error.into()),
        _ => Err(ApiError::Unavailable("unexpected reply to a device request".into())),
    }
}

/// ResetFingerprint (`POST .../devices/{device_id}/reset-fingerprint`): a CERTIFICATES
/// device's primary or secondary fingerprint; with `force_disconnect` the device's live
/// session ends once the change is durable (it logs in again with the new certificate).
pub async fn reset_fingerprint(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let body: device::ResetFingerprintRequest = protocol::json::from_bytes(request.body)?;
    let (secondary, fingerprint, force_disconnect) = device::validate_reset_fingerprint(body)?;
    let update = DeviceUpdate {
        credentials: Some(shards::messages::CredentialChange::Fingerprint { secondary, fingerprint }),
        disconnect: force_disconnect,
        ..Default::default()
    };
    let device = update_on_home_shard(app, request, device_id, update).await?;
    #[derive(serde::Serialize)]
    struct ResetFingerprintResponse<'a> {
        device_id: &'a str,
        fingerprint: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secondary_fingerprint: Option<&'a str>,
    }
    let response = ResetFingerprintResponse {
        device_id: &device.device_id,
        fingerprint: device.fingerprint.as_deref(),
        secondary_fingerprint: device.secondary_fingerprint.as_deref(),
    };
    Ok(ApiResponse::json(StatusCode::OK, &response))
}

/// FreezeDevice / UnfreezeDevice (`POST .../devices/{device_id}/freeze|unfreeze`, no body, 204;
/// spec §7.3): a frozen device is disconnected once the change is durable, its logins get
/// CONNACK 5 and calls and messages to it are refused (403); unfreezing a device that is not
/// frozen is 400 IOTDA.014040.
pub async fn freeze(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str, freeze: bool) -> ApiResult {
    let update = DeviceUpdate { freeze: Some(freeze), ..Default::default() };
    update_on_home_shard(app, request, device_id, update).await?;
    Ok(ApiResponse::no_content())
}

/// `POST .../devices/{device_id}/action?action_id=resetSecret` (ResetDeviceSecret, spec §7.3):
/// body `{"secret"?, "force_disconnect"?, "secret_type"?: "PRIMARY"|"SECONDARY"}`; without a
/// secret one is generated. The old secret stops working as soon as the change is durable
/// (before the 200); `force_disconnect` also ends the live session.
pub async fn action(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    match request.query.get("action_id") {
        Some("resetSecret") => {}
        other => {
            return Err(ApiError::Validation(protocol::error::ValidationError::new(
                "action_id",
                format!("action_id {other:?} is not supported; the one action is resetSecret"),
            )))
        }
    }
    let body: device::ResetSecretRequest =
        if request.body.is_empty() { Default::default() } else { protocol::json::from_bytes(request.body)? };
    let (secondary, secret, force_disconnect) = device::validate_reset_secret(body)?;
    let secret = secret.unwrap_or_else(|| crate::random::alphanumeric(GENERATED_SECRET_CHARS));
    let update = DeviceUpdate {
        credentials: Some(shards::messages::CredentialChange::Secret { secondary, secret: secret.clone() }),
        disconnect: force_disconnect,
        ..Default::default()
    };
    let device = update_on_home_shard(app, request, device_id, update).await?;
    #[derive(serde::Serialize)]
    struct ResetSecretResponse<'a> {
        device_id: &'a str,
        secret: &'a str,
        secret_type: &'a str,
    }
    let secret_type = if secondary { "SECONDARY" } else { "PRIMARY" };
    let response = ResetSecretResponse { device_id: &device.device_id, secret: &secret, secret_type };
    Ok(ApiResponse::json(StatusCode::OK, &response))
}

/// A sub-device's gateway (spec §7.1): a device of the same project, itself direct (depth 2),
/// with fewer than `gateway_sub_devices_max` sub-devices. Two concurrent AddDevice calls may
/// both pass the count: the bound can be passed by the calls in flight, never more.
async fn check_gateway(app: &Rc<App>, project_id: &str, gateway_id: &str) -> Result<(), ApiError> {
    let invalid =
        |message: String| ApiError::Validation(protocol::error::ValidationError::new("gateway_id", message));
    let home = home_shard(gateway_id, app.shard.shard_count());
    let show = Request::ShowDevice { project_id: project_id.to_owned(), device_id: gateway_id.to_owned() };
    let gateway = match app.shard.call(home, show).await {
        Reply::Device(gateway) => gateway,
        Reply::Failed(shards::messages::ShardError::DeviceNotFound) => {
            return Err(invalid(format!("the gateway '{gateway_id}' is not a device of this project")))
        }
        Reply::Failed(error) => return Err(error.into()),
        _ => return Err(ApiError::Unavailable("unexpected reply to a device lookup".into())),
    };
    if gateway.gateway_id != gateway.device_id {
        return Err(invalid(format!(
            "'{gateway_id}' is a sub-device (of '{}'): sub-devices are one level deep",
            gateway.gateway_id
        )));
    }
    let children = count_sub_devices(app, gateway_id).await?;
    if children >= app.config.gateway_sub_devices_max {
        return Err(invalid(format!(
            "the gateway '{gateway_id}' already has {children} sub-devices (gateway_sub_devices_max)"
        )));
    }
    Ok(())
}

/// Sub-devices of `gateway_id` over all shards.
async fn count_sub_devices(app: &Rc<App>, gateway_id: &str) -> Result<u64, ApiError> {
    let replies =
        app.shard.call_all(|_| Request::CountSubDevices { gateway_id: gateway_id.to_owned() }).await;
    let mut children = 0;
    for reply in replies {
        match reply {
            Reply::Count(count) => children += count,
            Reply::Failed(error) => return Err(error.into()),
            _ => return Err(ApiError::Unavailable("unexpected reply to a sub-device count".into())),
        }
    }
    Ok(children)
}
