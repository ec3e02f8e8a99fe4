//! Checks a device's property report (`.../sys/properties/report`, spec §1.5) against its
//! product model: what conforms is kept, each value that does not is dropped with a reason.
//! Pure: no I/O, and the product is only read.
//!
//! ## What IoTDA does, as far as documented
//! The user guide's "Device Reporting Properties" page: "A product model is required. The
//! reported data must match the properties defined in the product model", and the platform
//! "stores the data that complies with the product model definition"; its FAQ explains
//! reported data missing from the console by "the reported device properties do not match the
//! properties defined in the product model". So IoTDA drops what does not conform, without
//! telling the device. How finely it checks a value (type only, or range and enum too) is not
//! documented, nor whether one bad value loses the whole report.
//!
//! ## What we do ([`check_report`])
//! - Each value is checked like a property set's ([`check_value_fault`]): type, `min`/`max`,
//!   `enum_list`, `max_length`, and the depth / size bounds of `jsonObject` and `string list`
//!   ([`super::check::CONTAINER_DEPTH_MAX`], [`super::check::CONTAINER_BYTES_MAX`]).
//! - Granularity is the value: a bad value is dropped and the valid rest of the report is
//!   applied (one broken sensor must not blind the shadow to the others).
//! - A service not in the model drops all its properties (`unknown_service`); a property not in
//!   its service is dropped (`unknown_property`). Documented IoTDA behaviour.
//! - A product without services (or with no model on this shard) has nothing a value could
//!   conform to: every value is dropped as `unknown_service`. IoTDA requires a model for
//!   property reports; devices without one should use `.../sys/messages/up`.
//! - `null` fits no data type and is dropped as `wrong_type`: a device cannot delete a reported
//!   value (IoTDA has no such operation for the reported side).
//! - `method` is not checked: any property of the model may be reported (`R` is about what the
//!   application may read, `W` about property sets).
//! - A property with an unknown `data_type` (impossible on a validated product) is kept
//!   unchecked, as property sets do.
//! - `event_time` is untouched: it stays with each kept service, and the shadow decides as
//!   before whether it is used.
//! - A kept service whose properties were all dropped is removed from the report, so its
//!   shadow (version, event time) does not change; a service reported with no properties at
//!   all is kept as before. A report left with no service stores nothing — the caller
//!   acknowledges it all the same: bad values never cost a device its session.

use simd_json::OwnedValue;

use super::check::{check_value_fault, ValueFault, ValueRules};
use super::{DataType, Product};
use crate::shadow::{PropertyReport, ReportedService};

/// Why a reported value was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    UnknownService,
    UnknownProperty,
    WrongType,
    OutOfRange,
    NotInEnum,
    TooLong,
    TooDeep,
    TooLarge,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        Self::UnknownService,
        Self::UnknownProperty,
        Self::WrongType,
        Self::OutOfRange,
        Self::NotInEnum,
        Self::TooLong,
        Self::TooDeep,
        Self::TooLarge,
    ];

    /// The label used in metrics and logs, e.g. `out_of_range`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownService => "unknown_service",
            Self::UnknownProperty => "unknown_property",
            Self::WrongType => "wrong_type",
            Self::OutOfRange => "out_of_range",
            Self::NotInEnum => "not_in_enum",
            Self::TooLong => "too_long",
            Self::TooDeep => "too_deep",
            Self::TooLarge => "too_large",
        }
    }

    /// The position in [`DropReason::ALL`], for per-reason counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<ValueFault> for DropReason {
    fn from(fault: ValueFault) -> Self {
        match fault {
            ValueFault::WrongType => Self::WrongType,
            ValueFault::OutOfRange => Self::OutOfRange,
            ValueFault::NotInEnum => Self::NotInEnum,
            ValueFault::TooLong => Self::TooLong,
            ValueFault::TooDeep => Self::TooDeep,
            ValueFault::TooLarge => Self::TooLarge,
        }
    }
}

/// One value dropped from a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedValue {
    pub service_id: String,
    pub property_name: String,
    pub reason: DropReason,
    /// What is wrong with it, in words. It may quote the value (as a 400's message does), so
    /// it is not for the log: a device may put a secret in the wrong property.
    pub detail: String,
}

/// A report split into what conforms to the model and what was dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckedReport {
    /// The services and values to apply; may hold no service.
    pub accepted: PropertyReport,
    /// At most one entry per reported value, in report order.
    pub dropped: Vec<DroppedValue>,
}

/// Splits `report` into what conforms to `product` (`None`: the device's product has no model
/// here) and what is dropped; see the module doc for the rules. Run it on a report that passed
/// [`PropertyReport::validate`], which bounds the number of values.
pub fn check_report(product: Option<&Product>, report: PropertyReport) -> CheckedReport {
    let mut checked = CheckedReport::default();
    for service in report.services {
        let Some(model) = product.and_then(|product| product.service(&service.service_id)) else {
            let detail = format!("service '{}' is not in the product model", service.service_id);
            checked.dropped.extend(service.properties.into_keys().map(|property_name| DroppedValue {
                service_id: service.service_id.clone(),
                property_name,
                reason: DropReason::UnknownService,
                detail: detail.clone(),
            }));
            continue;
        };
        let ReportedService { service_id, properties, event_time } = service;
        let reported_count = properties.len();
        let mut kept = ReportedService { service_id, properties: Default::default(), event_time };
        for (property_name, value) in properties {
            match check_property(model, &property_name, &value) {
                Ok(()) => {
                    kept.properties.insert(property_name, value);
                }
                Err((reason, detail)) => checked.dropped.push(DroppedValue {
                    service_id: kept.service_id.clone(),
                    property_name,
                    reason,
                    detail,
                }),
            }
        }
        if reported_count == 0 || !kept.properties.is_empty() {
            checked.accepted.services.push(kept);
        }
    }
    checked
}

fn check_property(
    service: &super::ServiceCapability,
    property_name: &str,
    value: &OwnedValue,
) -> Result<(), (DropReason, String)> {
    let Some(property) = service.property(property_name) else {
        let detail = format!("property '{property_name}' is not in service '{}'", service.service_id);
        return Err((DropReason::UnknownProperty, detail));
    };
    let Some(data_type) = DataType::parse(&property.data_type) else { return Ok(()) };
    check_value_fault(property_name, data_type, ValueRules::of_property(property), value)
        .map_err(|refusal| (refusal.fault.into(), refusal.error.message))
}
