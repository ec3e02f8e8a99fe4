//! The device shadow (spec §1.5 property report, §2.9 ShowDeviceShadow): per service, the
//! `desired` and `reported` property maps with their event times, and a version.
//!
//! Decisions where the spec is brief:
//! - A property report **merges** into `reported`: properties it names are replaced, the others
//!   keep their last reported value (a device may report a subset).
//! - A service's `version` increases by one with every change to that service's shadow.
//! - `event_time` is the report's own (T1) when it is valid, else the receive time (spec §1.5).
//! - Property maps are flat: values are any JSON, keys follow the model's property-name rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
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
