//! The device shadow (spec §1.5 property report, §2.9 ShowDeviceShadow): per service, the
//! `desired` and `reported` property maps with their event times, and a version.
//!
//! Decisions where the spec is brief:
//! - A property report **merges** into `reported`: properties it names are replaced, the others
//!   keep their last reported value (a device may report a subset).
//! - A service's `version` increases by one with every change to that service's shadow.
//! - `event_time` is the report's own (T1) when it is valid, else the receive time (spec §1.5).
//! - Property maps are flat: values are any JSON, keys follow the model's property-name rule.
//! - Desired values (UpdateDeviceShadowDesiredData, spec §2.9, §7.3): `desired: {}` clears a
//!   service's desired values, `{"p": null}` clears one, others are set; a `version` given must
//!   equal the service's current version or the whole update is refused (nothing applied).
//!   Desired values equal to the reported ones are cleared whenever a report arrives
//!   ([`DeviceShadow::clear_met_desired`]); what still differs is what the device is sent
//!   ([`DeviceShadow::desired_differences`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use simd_json::prelude::TypedScalarValue;
use simd_json::OwnedValue;

use crate::error::ValidationError;

/// One side (desired or reported) of a service's shadow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowSide {
    #[serde(default)]
    pub properties: BTreeMap<String, OwnedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceShadow {
    pub service_id: String,
    #[serde(default)]
    pub desired: ShadowSide,
    #[serde(default)]
    pub reported: ShadowSide,
    #[serde(default)]
    pub version: u64,
}

/// A device's whole shadow, services in id order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceShadow {
    pub services: Vec<ServiceShadow>,
}

/// `.../sys/properties/report` payload. Serialized back (the accepted part of a report) for
/// `device.property:report` notifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PropertyReport {
    pub services: Vec<ReportedService>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportedService {
    pub service_id: String,
    pub properties: BTreeMap<String, OwnedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
}

/// Services one report may carry, and properties per service: bounds on what one uplink can
/// make the shard store.
pub const REPORT_SERVICES_MAX: usize = 500;
/// A device's whole shadow, as JSON: 256 KiB, like IoTDA's limit on a property update.
pub const SHADOW_BYTES_MAX: usize = 256 * 1024;
pub const SERVICE_PROPERTIES_MAX: usize = 500;
const ID_CHARS_MAX: usize = 64;

/// The body of UpdateDeviceShadowDesiredData: `{"shadow":[{"service_id","desired":{…},"version"?}]}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DesiredUpdate {
    pub shadow: Vec<DesiredService>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DesiredService {
    #[serde(default)]
    pub service_id: String,
    /// Required; `{}` clears every desired value of the service.
    #[serde(default)]
    pub desired: Option<BTreeMap<String, OwnedValue>>,
    #[serde(default)]
    pub version: Option<u64>,
}

impl DesiredUpdate {
    /// The shape rules (before the model check): 1 to [`REPORT_SERVICES_MAX`] services of
    /// 1–64 characters, each once, `desired` present, at most [`SERVICE_PROPERTIES_MAX`]
    /// property names usable as shadow keys.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.shadow.is_empty() || self.shadow.len() > REPORT_SERVICES_MAX {
            return Err(ValidationError::new(
                "shadow",
                format!("must hold 1 to {REPORT_SERVICES_MAX} services"),
            ));
        }
        for (index, service) in self.shadow.iter().enumerate() {
            let id = &service.service_id;
            if id.is_empty() || id.chars().count() > ID_CHARS_MAX {
                return Err(ValidationError::new(
                    format!("shadow[{index}].service_id"),
                    "must be 1 to 64 characters",
                ));
            }
            if self.shadow[..index].iter().any(|earlier| earlier.service_id == *id) {
                return Err(ValidationError::new(
                    format!("shadow[{index}].service_id"),
                    format!("service '{id}' is given twice"),
                ));
            }
            let Some(desired) = &service.desired else {
                return Err(ValidationError::new(format!("shadow[{index}].desired"), "desired is required"));
            };
            if desired.len() > SERVICE_PROPERTIES_MAX {
                return Err(ValidationError::new(
                    format!("shadow[{index}].desired"),
                    format!("more than {SERVICE_PROPERTIES_MAX} properties"),
                ));
            }
            if let Some(name) = desired.keys().find(|k| k.is_empty() || k.contains(['.', '$', '\0'])) {
                return Err(ValidationError::new(
                    format!("shadow[{index}].desired"),
                    format!("property name '{name}' is empty or holds '.', '$' or NUL"),
                ));
            }
        }
        Ok(())
    }

    /// The values to set (nulls left out), per service, for the product-model check.
    pub fn values_to_set(&self) -> Vec<(String, OwnedValue)> {
        self.shadow
            .iter()
            .filter_map(|service| {
                let set: simd_json::owned::Object = service
                    .desired
                    .iter()
                    .flatten()
                    .filter(|(_, value)| !value.is_null())
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                (!set.is_empty()).then(|| (service.service_id.clone(), OwnedValue::Object(Box::new(set))))
            })
            .collect()
    }
}

impl DeviceShadow {
    fn service_mut(&mut self, service_id: &str) -> &mut ServiceShadow {
        let index = match self.services.binary_search_by(|s| s.service_id.as_str().cmp(service_id)) {
            Ok(index) => index,
            Err(index) => {
                let fresh = ServiceShadow { service_id: service_id.to_owned(), ..Default::default() };
                self.services.insert(index, fresh);
                index
            }
        };
        &mut self.services[index]
    }

    /// Merges a property report into `reported`. `received_t1` is the receive time (T1). The
    /// values are taken as they are: checking them against the product model is
    /// [`crate::model::report::check_report`]'s job, done before.
    pub fn apply_report(&mut self, report: PropertyReport, received_t1: &str) -> Result<(), ValidationError> {
        report.validate()?;
        for service in report.services {
            let event_time =
                service.event_time.filter(|t| is_t1(t)).unwrap_or_else(|| received_t1.to_owned());
            let shadow = self.service_mut(&service.service_id);
            shadow.reported.properties.extend(service.properties);
            shadow.reported.event_time = Some(event_time);
            shadow.version += 1;
        }
        Ok(())
    }

    fn service(&self, service_id: &str) -> Option<&ServiceShadow> {
        self.services.iter().find(|s| s.service_id == service_id)
    }

    /// Applies UpdateDeviceShadowDesiredData (validated, model-checked) at `now_t1`. Every
    /// `version` is checked before anything changes; a stale one is an error naming it.
    pub fn apply_desired(&mut self, update: DesiredUpdate, now_t1: &str) -> Result<(), ValidationError> {
        update.validate()?;
        for (index, service) in update.shadow.iter().enumerate() {
            let current = self.service(&service.service_id).map_or(0, |s| s.version);
            if let Some(version) = service.version.filter(|&version| version != current) {
                return Err(ValidationError::new(
                    format!("shadow[{index}].version"),
                    format!(
                        "version {version} is stale: service '{}' is at version {current}",
                        service.service_id
                    ),
                ));
            }
        }
        for service in update.shadow {
            let desired = service.desired.unwrap_or_default();
            let shadow = self.service_mut(&service.service_id);
            let before = shadow.desired.properties.clone();
            if desired.is_empty() {
                shadow.desired.properties.clear();
            }
            for (name, value) in desired {
                if value.is_null() {
                    shadow.desired.properties.remove(&name);
                } else {
                    shadow.desired.properties.insert(name, value);
                }
            }
            if shadow.desired.properties != before {
                shadow.desired.event_time = Some(now_t1.to_owned());
                shadow.version += 1;
            }
        }
        Ok(())
    }

    /// Removes desired values the device now reports; `true` if any was removed (each service
    /// that changed gets a new version).
    pub fn clear_met_desired(&mut self) -> bool {
        let mut changed = false;
        for service in &mut self.services {
            let reported = &service.reported.properties;
            let before = service.desired.properties.len();
            service
                .desired
                .properties
                .retain(|name, value| !reported.get(name).is_some_and(|r| same_value(r, value)));
            if service.desired.properties.len() != before {
                service.version += 1;
                changed = true;
            }
        }
        changed
    }

    /// Per service, the desired values that differ from the reported ones — what the device
    /// is sent with the property-set flow.
    pub fn desired_differences(&self) -> Vec<(String, OwnedValue)> {
        self.services
            .iter()
            .filter_map(|service| {
                let reported = &service.reported.properties;
                let differing: simd_json::owned::Object = service
                    .desired
                    .properties
                    .iter()
                    .filter(|(name, value)| !reported.get(*name).is_some_and(|r| same_value(r, value)))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                (!differing.is_empty())
                    .then(|| (service.service_id.clone(), OwnedValue::Object(Box::new(differing))))
            })
            .collect()
    }

    /// Seeds `desired` from AddDevice's `shadow` (`[{"service_id","desired":{…}}]` JSON).
    pub fn with_initial_desired(initial_json: &str, created_t1: &str) -> DeviceShadow {
        #[derive(Deserialize)]
        struct Initial {
            service_id: String,
            desired: BTreeMap<String, OwnedValue>,
        }
        let mut shadow = DeviceShadow::default();
        let initial: Vec<Initial> = crate::json::from_bytes(initial_json.as_bytes()).unwrap_or_default();
        for service in initial {
            let target = shadow.service_mut(&service.service_id);
            target.desired =
                ShadowSide { properties: service.desired, event_time: Some(created_t1.to_owned()) };
        }
        shadow
    }
}

impl PropertyReport {
    /// The shape rules of a report, whatever the product model: 1 to [`REPORT_SERVICES_MAX`]
    /// services with ids of 1–64 characters, at most [`SERVICE_PROPERTIES_MAX`] properties per
    /// service, property names usable as shadow keys.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_report(self)
    }
}

fn validate_report(report: &PropertyReport) -> Result<(), ValidationError> {
    if report.services.is_empty() || report.services.len() > REPORT_SERVICES_MAX {
        return Err(ValidationError::new(
            "services",
            format!("must hold 1 to {REPORT_SERVICES_MAX} services"),
        ));
    }
    for (index, service) in report.services.iter().enumerate() {
        let id = &service.service_id;
        if id.is_empty() || id.chars().count() > ID_CHARS_MAX {
            return Err(ValidationError::new(
                format!("services[{index}].service_id"),
                "must be 1 to 64 characters",
            ));
        }
        if service.properties.len() > SERVICE_PROPERTIES_MAX {
            return Err(ValidationError::new(
                format!("services[{index}].properties"),
                format!("more than {SERVICE_PROPERTIES_MAX} properties"),
            ));
        }
        if let Some(name) = service.properties.keys().find(|k| k.is_empty() || k.contains(['.', '$', '\0'])) {
            return Err(ValidationError::new(
                format!("services[{index}].properties"),
                format!("property name '{name}' is empty or holds '.', '$' or NUL"),
            ));
        }
    }
    Ok(())
}

/// JSON equality with numbers compared as numbers: a device that reports `20.0` for a desired
/// `20` (floats are what many device languages send) has met it.
pub fn same_value(a: &OwnedValue, b: &OwnedValue) -> bool {
    use simd_json::prelude::{ValueAsArray, ValueAsObject, ValueAsScalar};
    match (a.cast_f64(), b.cast_f64()) {
        (Some(x), Some(y)) => {
            // Integers beyond f64's exact range are compared as integers.
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(i), Some(j), ..) => i == j,
                (.., Some(i), Some(j)) => i == j,
                _ => x == y,
            }
        }
        _ => match (a.as_array(), b.as_array(), a.as_object(), b.as_object()) {
            (Some(x), Some(y), ..) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q)),
            (.., Some(x), Some(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
            }
            _ => a == b,
        },
    }
}

/// `yyyyMMdd'T'HHmmss'Z'`.
fn is_t1(text: &str) -> bool {
    crate::time::parse_sdk_date(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> PropertyReport {
        crate::json::from_bytes(json.as_bytes()).unwrap()
    }

    #[test]
    fn reports_merge_per_property_and_bump_the_version() {
        let mut shadow = DeviceShadow::default();
        let first = r#"{"services":[{"service_id":"water","properties":{"level":10,"state":"ON"},"event_time":"20240101T000000Z"}]}"#;
        shadow.apply_report(report(first), "20240101T000500Z").unwrap();
        let second = r#"{"services":[{"service_id":"water","properties":{"level":11}},{"service_id":"battery","properties":{"pct":80}}]}"#;
        shadow.apply_report(report(second), "20240101T001000Z").unwrap();
        let ids: Vec<_> = shadow.services.iter().map(|s| s.service_id.as_str()).collect();
        assert_eq!(ids, ["battery", "water"]);
        let water = &shadow.services[1];
        assert_eq!(water.version, 2);
        assert_eq!(water.reported.properties["level"], OwnedValue::from(11));
        assert_eq!(water.reported.properties["state"], OwnedValue::from("ON"), "unreported properties stay");
        assert_eq!(
            water.reported.event_time.as_deref(),
            Some("20240101T001000Z"),
            "receive time without event_time"
        );
    }

    #[test]
    fn bad_reports_are_refused_without_changing_the_shadow() {
        let mut shadow = DeviceShadow::default();
        for bad in [
            r#"{"services":[]}"#,
            r#"{"services":[{"service_id":"","properties":{}}]}"#,
            r#"{"services":[{"service_id":"s","properties":{"a.b":1}}]}"#,
        ] {
            assert!(shadow.apply_report(report(bad), "20240101T000000Z").is_err(), "{bad}");
        }
        assert!(shadow.services.is_empty());
        assert!(crate::json::from_bytes::<PropertyReport>(b"{\"services\":5}").is_err());
    }

    fn desired(json: &str) -> DesiredUpdate {
        crate::json::from_bytes(json.as_bytes()).unwrap()
    }

    #[test]
    fn desired_values_are_set_cleared_version_checked_and_met_by_reports() {
        let mut shadow = DeviceShadow::default();
        shadow
            .apply_desired(
                desired(r#"{"shadow":[{"service_id":"water","desired":{"level":5,"mode":"eco"}}]}"#),
                "20240101T000000Z",
            )
            .unwrap();
        assert_eq!(shadow.services[0].version, 1);
        let stale = desired(r#"{"shadow":[{"service_id":"water","desired":{"level":6},"version":0}]}"#);
        let error = shadow.apply_desired(stale, "20240101T000001Z").unwrap_err();
        assert_eq!(error.field, "shadow[0].version");
        assert_eq!(shadow.services[0].desired.properties["level"], OwnedValue::from(5), "nothing applied");
        shadow
            .apply_desired(
                desired(r#"{"shadow":[{"service_id":"water","desired":{"mode":null},"version":1}]}"#),
                "20240101T000002Z",
            )
            .unwrap();
        assert!(!shadow.services[0].desired.properties.contains_key("mode"));
        assert_eq!(shadow.desired_differences().len(), 1);
        // The device reports the value: the desired one is met and cleared.
        shadow
            .apply_report(
                report(r#"{"services":[{"service_id":"water","properties":{"level":5}}]}"#),
                "20240101T000003Z",
            )
            .unwrap();
        assert!(shadow.clear_met_desired());
        assert!(shadow.services[0].desired.properties.is_empty());
        assert!(shadow.desired_differences().is_empty());
        shadow
            .apply_desired(
                desired(r#"{"shadow":[{"service_id":"water","desired":{"level":9,"x":1}}]}"#),
                "20240101T000004Z",
            )
            .unwrap();
        shadow
            .apply_desired(desired(r#"{"shadow":[{"service_id":"water","desired":{}}]}"#), "20240101T000005Z")
            .unwrap();
        assert!(shadow.services[0].desired.properties.is_empty(), "desired {{}} clears all");
    }

    #[test]
    fn numbers_are_equal_as_numbers() {
        let value = |json: &str| -> OwnedValue { crate::json::from_bytes(json.as_bytes()).unwrap() };
        assert!(same_value(&value("20"), &value("20.0")));
        assert!(same_value(&value(r#"{"a":[1,2.0]}"#), &value(r#"{"a":[1.0,2]}"#)));
        assert!(!same_value(&value("20"), &value("20.5")));
        assert!(!same_value(&value(r#""20""#), &value("20")));
        assert!(same_value(&value("18446744073709551615"), &value("18446744073709551615")));
        assert!(!same_value(&value("9007199254740993"), &value("9007199254740992")));
    }

    #[test]
    fn desired_updates_are_shape_checked() {
        for (bad, field) in [
            (r#"{"shadow":[]}"#, "shadow"),
            (r#"{"shadow":[{"service_id":"s"}]}"#, "shadow[0].desired"),
            (r#"{"shadow":[{"service_id":"","desired":{}}]}"#, "shadow[0].service_id"),
            (r#"{"shadow":[{"service_id":"s","desired":{"a$":1}}]}"#, "shadow[0].desired"),
            (
                r#"{"shadow":[{"service_id":"s","desired":{}},{"service_id":"s","desired":{}}]}"#,
                "shadow[1].service_id",
            ),
        ] {
            assert_eq!(desired(bad).validate().unwrap_err().field, field, "{bad}");
        }
    }

    #[test]
    fn initial_desired_values_seed_the_shadow() {
        let shadow = DeviceShadow::with_initial_desired(
            r#"[{"service_id":"water","desired":{"level":5}}]"#,
            "20240101T000000Z",
        );
        assert_eq!(shadow.services[0].desired.properties["level"], OwnedValue::from(5));
        assert!(shadow.services[0].reported.properties.is_empty());
    }
}
