//! Rules for one service capability and everything below it (spec §2.3): names, counts,
//! uniqueness, data types and value constraints.
//!
//! Properties and command/event paras share one set of value rules ([`ValueRules`]): the data
//! type must be known; `min`/`max` are strings of 1–16 characters that must parse as numbers
//! for numeric types (`int`/`long` as 64-bit integers, `decimal` as a finite float) with
//! `min ≤ max`; `enum_list` must be non-empty for `enum` and never repeat an entry; every enum
//! entry fits `max_length` when both are given; `max_length ≥ 0`; `step > 0`.
//!
//! Deliberately lenient, because IoTDA's own examples do it: `min`/`max` on non-numeric types
//! are length-checked but not parsed, `max_length` and `enum_list` are accepted on any type,
//! and `default_value` is not checked against the data type.

use std::collections::HashSet;

use crate::error::ValidationError;
use crate::model::field::{check_max_chars, check_max_items, check_one_of, check_optional, check_required};
use crate::model::{ServiceCapability, ServiceCommand, ServiceCommandPara, ServiceEvent, ServiceProperty};

/// Services per product, and properties / commands / events per service.
const ITEMS_MAX: usize = 500;
/// The `service_capabilities` list as compact JSON ("≤ 500 KB", read as KiB).
const SERVICE_CAPABILITIES_MAX_BYTES: usize = 500 * 1024;
const SERVICE_ID_MAX_CHARS: usize = 64;
const SERVICE_TYPE_MAX_CHARS: usize = 64;
const DESCRIPTION_MAX_CHARS: usize = 128;
const PROPERTY_NAME_MAX_CHARS: usize = 64;
const COMMAND_NAME_MAX_CHARS: usize = 64;
const PARA_NAME_MAX_CHARS: usize = 32;
const RESPONSE_NAME_MAX_CHARS: usize = 128;
/// Not in the spec (events are not user-definable yet); the para-name limit is reused.
const EVENT_TYPE_MAX_CHARS: usize = 32;
const UNIT_MAX_CHARS: usize = 16;
const BOUND_MAX_CHARS: usize = 16;

const SERVICE_OPTIONS: &[&str] = &["Master", "Mandatory", "Optional"];
/// Stored when a service names no `option`.
const DEFAULT_SERVICE_OPTION: &str = "Optional";
const PROPERTY_METHODS: &[&str] = &["RWE", "RW", "RE", "WE", "E", "W", "R"];
/// Characters a property name must not contain: it is a key of the shadow JSON document.
const PROPERTY_NAME_FORBIDDEN: &[char] = &['.', '$', '\0'];

/// The data type of a property or para, as spelled on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Int,
    Long,
    Decimal,
    String,
    DateTime,
    JsonObject,
    Enum,
    Boolean,
    StringList,
}

impl DataType {
    pub const ALL: [DataType; 9] = [
        Self::Int,
        Self::Long,
        Self::Decimal,
        Self::String,
        Self::DateTime,
        Self::JsonObject,
        Self::Enum,
        Self::Boolean,
        Self::StringList,
    ];

    /// The wire spelling, e.g. `"DateTime"`, `"string list"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::Long => "long",
            Self::Decimal => "decimal",
            Self::String => "string",
            Self::DateTime => "DateTime",
            Self::JsonObject => "jsonObject",
            Self::Enum => "enum",
            Self::Boolean => "boolean",
            Self::StringList => "string list",
        }
    }

    /// Parses the exact wire spelling (case-sensitive).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|data_type| data_type.as_str() == text)
    }
}

/// Validates the whole `service_capabilities` list, then stores the default `option`.
pub(crate) fn validate_services(services: &mut [ServiceCapability]) -> Result<(), ValidationError> {
    check_max_items("service_capabilities", services.len(), ITEMS_MAX)?;
    let json_bytes = crate::json::to_vec(&services).len();
    if json_bytes > SERVICE_CAPABILITIES_MAX_BYTES {
        return Err(ValidationError::new(
            "service_capabilities",
            format!(
                "service_capabilities is {json_bytes} bytes of JSON; the limit is {SERVICE_CAPABILITIES_MAX_BYTES}"
            ),
        ));
    }
    for (index, service) in services.iter().enumerate() {
        validate_service(&format!("service_capabilities[{index}]"), service)?;
    }
    check_unique("service_capabilities", "service_id", services, |service| &service.service_id)?;
    for service in services.iter_mut() {
        service.option.get_or_insert_with(|| DEFAULT_SERVICE_OPTION.to_owned());
    }
    Ok(())
}

fn validate_service(path: &str, service: &ServiceCapability) -> Result<(), ValidationError> {
    check_required(&format!("{path}.service_id"), &service.service_id, SERVICE_ID_MAX_CHARS)?;
    check_required(&format!("{path}.service_type"), &service.service_type, SERVICE_TYPE_MAX_CHARS)?;

    let properties_path = format!("{path}.properties");
    check_max_items(&properties_path, service.properties.len(), ITEMS_MAX)?;
    for (index, property) in service.properties.iter().enumerate() {
        validate_property(&format!("{properties_path}[{index}]"), property)?;
    }
    check_unique(&properties_path, "property_name", &service.properties, |p| &p.property_name)?;

    let commands_path = format!("{path}.commands");
    check_max_items(&commands_path, service.commands.len(), ITEMS_MAX)?;
    for (index, command) in service.commands.iter().enumerate() {
        validate_command(&format!("{commands_path}[{index}]"), command)?;
    }
    check_unique(&commands_path, "command_name", &service.commands, |c| &c.command_name)?;

    let events_path = format!("{path}.events");
    check_max_items(&events_path, service.events.len(), ITEMS_MAX)?;
    for (index, event) in service.events.iter().enumerate() {
        validate_event(&format!("{events_path}[{index}]"), event)?;
    }
    check_unique(&events_path, "event_type", &service.events, |e| &e.event_type)?;

    check_optional(&format!("{path}.description"), service.description.as_deref(), DESCRIPTION_MAX_CHARS)?;
    if let Some(option) = &service.option {
        check_one_of(&format!("{path}.option"), option, SERVICE_OPTIONS)?;
    }
    Ok(())
}

fn validate_property(path: &str, property: &ServiceProperty) -> Result<(), ValidationError> {
    let name_field = format!("{path}.property_name");
    check_required(&name_field, &property.property_name, PROPERTY_NAME_MAX_CHARS)?;
    if property.property_name.contains(PROPERTY_NAME_FORBIDDEN) {
        return Err(ValidationError::new(
            name_field,
            format!(
                "property_name '{}' must not contain '.', '$' or NUL: it is a key in the device shadow",
                property.property_name.escape_default()
            ),
        ));
    }
    check_value_rules(path, &ValueRules::of_property(property))?;
    check_one_of(&format!("{path}.method"), &property.method, PROPERTY_METHODS)
}

fn validate_command(path: &str, command: &ServiceCommand) -> Result<(), ValidationError> {
    check_required(&format!("{path}.command_name"), &command.command_name, COMMAND_NAME_MAX_CHARS)?;
    validate_paras(&format!("{path}.paras"), &command.paras)?;
    for (index, response) in command.responses.iter().enumerate() {
        let response_path = format!("{path}.responses[{index}]");
        check_required(
            &format!("{response_path}.response_name"),
            &response.response_name,
            RESPONSE_NAME_MAX_CHARS,
        )?;
        validate_paras(&format!("{response_path}.paras"), &response.paras)?;
    }
    Ok(())
}

fn validate_event(path: &str, event: &ServiceEvent) -> Result<(), ValidationError> {
    check_required(&format!("{path}.event_type"), &event.event_type, EVENT_TYPE_MAX_CHARS)?;
    validate_paras(&format!("{path}.paras"), &event.paras)
}

/// A list of paras (of a command, a response or an event): each valid, names unique.
fn validate_paras(list_path: &str, paras: &[ServiceCommandPara]) -> Result<(), ValidationError> {
    for (index, para) in paras.iter().enumerate() {
        let path = format!("{list_path}[{index}]");
        check_required(&format!("{path}.para_name"), &para.para_name, PARA_NAME_MAX_CHARS)?;
        check_value_rules(&path, &ValueRules::of_para(para))?;
    }
    check_unique(list_path, "para_name", paras, |para| &para.para_name)
}

/// Reports the second occurrence of a name in `items`, e.g.
/// `service_capabilities[0].commands[3].command_name: duplicate command_name 'ON_OFF'`.
fn check_unique<'a, T>(
    list_path: &str,
    name_field: &str,
    items: &'a [T],
    name_of: impl Fn(&'a T) -> &'a str,
) -> Result<(), ValidationError> {
    let mut seen = HashSet::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let name = name_of(item);
        if !seen.insert(name) {
            return Err(ValidationError::new(
                format!("{list_path}[{index}].{name_field}"),
                format!("duplicate {name_field} '{name}'"),
            ));
        }
    }
    Ok(())
}

/// The value constraints common to properties and paras.
struct ValueRules<'a> {
    data_type: &'a str,
    enum_list: Option<&'a [String]>,
    min: Option<&'a str>,
    max: Option<&'a str>,
    max_length: Option<i64>,
    step: Option<f64>,
    unit: Option<&'a str>,
    description: Option<&'a str>,
}

impl<'a> ValueRules<'a> {
    fn of_property(property: &'a ServiceProperty) -> Self {
        Self {
            data_type: &property.data_type,
            enum_list: property.enum_list.as_deref(),
            min: property.min.as_deref(),
            max: property.max.as_deref(),
            max_length: property.max_length,
            step: property.step,
            unit: property.unit.as_deref(),
            description: property.description.as_deref(),
        }
    }

    fn of_para(para: &'a ServiceCommandPara) -> Self {
        Self {
            data_type: &para.data_type,
            enum_list: para.enum_list.as_deref(),
            min: para.min.as_deref(),
            max: para.max.as_deref(),
            max_length: para.max_length,
            step: para.step,
            unit: para.unit.as_deref(),
            description: para.description.as_deref(),
        }
    }
}

fn check_value_rules(path: &str, rules: &ValueRules<'_>) -> Result<(), ValidationError> {
    let data_type = parse_data_type(&format!("{path}.data_type"), rules.data_type)?;
    if let Some(max_length) = rules.max_length {
        if max_length < 0 {
            return Err(ValidationError::new(
                format!("{path}.max_length"),
                format!("max_length ({max_length}) must not be negative"),
            ));
        }
    }
    check_enum_list(path, data_type, rules.enum_list, rules.max_length)?;
    check_bounds(path, data_type, rules.min, rules.max)?;
    if let Some(step) = rules.step {
        if !(step.is_finite() && step > 0.0) {
            return Err(ValidationError::new(
                format!("{path}.step"),
                format!("step ({step}) must be a number greater than 0"),
            ));
        }
    }
    check_optional(&format!("{path}.unit"), rules.unit, UNIT_MAX_CHARS)?;
    check_optional(&format!("{path}.description"), rules.description, DESCRIPTION_MAX_CHARS)
}

fn parse_data_type(field: &str, text: &str) -> Result<DataType, ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::new(field, "data_type is required"));
    }
    DataType::parse(text).ok_or_else(|| {
        let names: Vec<&str> = DataType::ALL.iter().map(|data_type| data_type.as_str()).collect();
        ValidationError::new(field, format!("data_type '{text}' is not one of: {}", names.join(", ")))
    })
}

fn check_enum_list(
    path: &str,
    data_type: DataType,
    enum_list: Option<&[String]>,
    max_length: Option<i64>,
) -> Result<(), ValidationError> {
    let field = format!("{path}.enum_list");
    let entries = enum_list.unwrap_or_default();
    if data_type == DataType::Enum && entries.is_empty() {
        return Err(ValidationError::new(
            field,
            "enum_list must list at least one value when data_type is enum",
        ));
    }
    let mut seen = HashSet::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        if !seen.insert(entry.as_str()) {
            return Err(ValidationError::new(
                format!("{field}[{index}]"),
                format!("duplicate enum_list value '{entry}'"),
            ));
        }
        let chars = entry.chars().count();
        if max_length.is_some_and(|max_length| chars as i64 > max_length) {
            return Err(ValidationError::new(
                format!("{field}[{index}]"),
                format!(
                    "enum_list value '{entry}' is {chars} characters long, more than max_length ({})",
                    max_length.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// A parsed `min` or `max`. Integers stay integers so that 16-digit `long` bounds compare
/// exactly (an f64 is exact only up to 2^53). Both bounds of one field always have the same
/// variant, so the derived order (variant first) never mixes them.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Bound {
    Integer(i64),
    Decimal(f64),
}

fn check_bounds(
    path: &str,
    data_type: DataType,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<(), ValidationError> {
    let parse = |name: &str, text: Option<&str>| match text {
        Some(text) => parse_bound(&format!("{path}.{name}"), name, text, data_type),
        None => Ok(None),
    };
    let (low, high) = (parse("min", min)?, parse("max", max)?);
    if let (Some(low), Some(high)) = (low, high) {
        if low > high {
            return Err(ValidationError::new(
                format!("{path}.min"),
                format!(
                    "min ({}) is greater than max ({})",
                    min.unwrap_or_default(),
                    max.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the length of a bound and, for numeric types, parses it; `Ok(None)` for other types.
fn parse_bound(
    field: &str,
    name: &str,
    text: &str,
    data_type: DataType,
) -> Result<Option<Bound>, ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::new(field, format!("{name} must not be empty")));
    }
    check_max_chars(field, text, BOUND_MAX_CHARS)?;
    let parsed = match data_type {
        DataType::Int | DataType::Long => text.parse::<i64>().ok().map(Bound::Integer),
        DataType::Decimal => text.parse::<f64>().ok().filter(|value| value.is_finite()).map(Bound::Decimal),
        _ => return Ok(None),
    };
    let kind = if data_type == DataType::Decimal { "a number" } else { "an integer" };
    parsed.map(Some).ok_or_else(|| {
        ValidationError::new(
            field,
            format!("{name} '{text}' is not {kind} (data_type is {})", data_type.as_str()),
        )
    })
}
