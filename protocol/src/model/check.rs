//! Checks a downlink request against the product model (IoTDA §2.5–§2.6): the `paras` of a
//! synchronous command, the `services` of a property set, and the service of a property get.
//! Pure: no I/O, and the product is only read.
//!
//! Every error names the offending field as a JSON path of the request, e.g. `service_id`,
//! `command_name`, `paras.value`, `services[0].properties.level`, `paras.tags[1]`.
//!
//! ## Value rules ([`check_value`])
//! - `int` / `long`: a JSON integer, never a float — `1.5` **and `2.0`** are refused (the wire
//!   type is what a device's parser sees). `int` must also fit in 32 bits, `long` in 64.
//!   `min` / `max` are compared as 64-bit integers.
//! - `decimal`: any JSON number (integers included), compared with `min` / `max` as `f64`.
//! - `string`: a JSON string of at most `max_length` characters (Unicode scalar values, like the
//!   model's own limits), and one of `enum_list` when a non-empty list is given.
//! - `enum`: a JSON string in `enum_list`.
//! - `boolean`: a JSON `true` / `false`; the strings `"true"` / `"false"` are refused.
//! - `DateTime`: a string in `yyyyMMdd'T'HHmmss'Z'` ([`crate::time::parse_sdk_date`]).
//! - `jsonObject`: a JSON object, at most [`CONTAINER_DEPTH_MAX`] containers deep and at most
//!   [`CONTAINER_BYTES_MAX`] bytes as compact JSON.
//! - `string list`: an array of strings; each obeys `max_length` and, when given, `enum_list`;
//!   the whole list is at most [`CONTAINER_BYTES_MAX`] bytes as compact JSON.
//! - No type accepts `null`, and nothing is coerced (no `"5"` for an int, no `5` for a string).
//!
//! ## Decisions where the spec is silent
//! - `min` / `max` are honoured only for `int`, `long` and `decimal`; a bound that does not
//!   parse (impossible on a product that passed [`crate::model::validate`]) is ignored, as is an
//!   unknown `data_type` (the value is then not checked at all). `step` is not enforced.
//! - A command with a `service_id`: the service and command must exist, every required para
//!   must be present, and every key of `paras` must be a para of the command (the spec says the
//!   keys *are* the model's para names). Absent `paras` is read as `{}` here; whether `paras`
//!   may be absent at all is the request parser's business.
//! - A `service_id` without a `command_name` checks only that the service exists: the paras
//!   cannot be matched to a command.
//! - The depth and size bounds of `jsonObject` / `string list` are ours (the spec gives none):
//!   depth 8 is far beyond any record a product model describes (IoTDA's own shadow maps are
//!   flat) yet keeps every walk of a stored value shallow; 64 KiB is IoTDA's limit on one
//!   device message, so no value could be bigger there.
//! - Property set: at least one service; each entry's `properties` must be an object (it may be
//!   empty); `required` is not enforced, since a set is partial by nature. A property is
//!   writable when its `method` contains `W`.

use simd_json::prelude::*;
use simd_json::{OwnedValue, StaticNode};

use crate::error::ValidationError;
use crate::model::{DataType, Product, ServiceCapability, ServiceCommandPara, ServiceProperty};
use crate::time::parse_sdk_date;

/// Containers (objects, arrays) nested in a `jsonObject` value, itself included: `{"a":1}` is 1
/// deep, `{"a":{"b":[1]}}` is 3.
pub const CONTAINER_DEPTH_MAX: usize = 8;
/// A `jsonObject` or `string list` value as compact JSON.
pub const CONTAINER_BYTES_MAX: usize = 64 * 1024;

/// Why a value does not fit its definition, for callers that count refusals by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueFault {
    /// Not the JSON type of the data type (`null` included), or a string that is not a DateTime.
    WrongType,
    /// Outside `min` / `max`, or outside the 32 / 64 bits of `int` / `long`.
    OutOfRange,
    NotInEnum,
    /// A string (or `string list` item) longer than `max_length`.
    TooLong,
    /// A `jsonObject` nested deeper than [`CONTAINER_DEPTH_MAX`].
    TooDeep,
    /// A `jsonObject` or `string list` larger than [`CONTAINER_BYTES_MAX`].
    TooLarge,
}

/// A value that does not fit: the kind of fault and the error naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRefusal {
    pub fault: ValueFault,
    pub error: ValidationError,
}

impl ValueRefusal {
    fn new(fault: ValueFault, field: &str, message: impl Into<String>) -> Self {
        Self { fault, error: ValidationError::new(field, message) }
    }
}

/// The constraints of one para or property that a value must satisfy.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueRules<'a> {
    pub min: Option<&'a str>,
    pub max: Option<&'a str>,
    pub enum_list: Option<&'a [String]>,
    /// In characters; a negative value (never on a validated product) is ignored.
    pub max_length: Option<i64>,
}

impl<'a> ValueRules<'a> {
    /// The rules of a command (or response / event) para.
    pub fn of_para(para: &'a ServiceCommandPara) -> Self {
        Self {
            min: para.min.as_deref(),
            max: para.max.as_deref(),
            enum_list: para.enum_list.as_deref(),
            max_length: para.max_length,
        }
    }

    /// The rules of a service property.
    pub fn of_property(property: &'a ServiceProperty) -> Self {
        Self {
            min: property.min.as_deref(),
            max: property.max.as_deref(),
            enum_list: property.enum_list.as_deref(),
            max_length: property.max_length,
        }
    }
}

/// Checks a sync command against the product model. `paras`, when present, must be a JSON
/// object. With `service_id` `None` the command is free-format (IoTDA allows that) and only the
/// shape of `paras` is checked.
pub fn check_command(
    product: &Product,
    service_id: Option<&str>,
    command_name: Option<&str>,
    paras: Option<&OwnedValue>,
) -> Result<(), ValidationError> {
    let empty = simd_json::owned::Object::new();
    let paras = match paras {
        None => &empty,
        Some(value) => value.as_object().ok_or_else(|| {
            ValidationError::new("paras", format!("paras must be a JSON object, got {}", describe(value)))
        })?,
    };
    let Some(service_id) = service_id else { return Ok(()) };
    let service = find_service(product, "service_id", service_id)?;
    let Some(command_name) = command_name else { return Ok(()) };
    let command = service.command(command_name).ok_or_else(|| {
        ValidationError::new(
            "command_name",
            format!("unknown command '{command_name}' in service '{service_id}'"),
        )
    })?;

    for para in &command.paras {
        if para.required && !paras.contains_key(para.para_name.as_str()) {
            return Err(ValidationError::new(
                format!("paras.{}", para.para_name),
                format!("required para '{}' is missing", para.para_name),
            ));
        }
    }
    // Sorted so that the reported para does not depend on the object's hash order.
    let mut entries: Vec<(&String, &OwnedValue)> = paras.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in entries {
        let field = format!("paras.{key}");
        let para = command.para(key).ok_or_else(|| {
            ValidationError::new(&field, format!("unknown para '{key}' in command '{command_name}'"))
        })?;
        if let Some(data_type) = DataType::parse(&para.data_type) {
            check_value(&field, data_type, ValueRules::of_para(para), value)?;
        }
    }
    Ok(())
}

/// Checks a property set, `services: [{service_id, properties: {name: value}}]`, given as
/// `(service_id, properties)` pairs: each service must exist, each property must exist and be
/// writable, and each value must fit its definition.
pub fn check_property_set(
    product: &Product,
    services: &[(String, OwnedValue)],
) -> Result<(), ValidationError> {
    if services.is_empty() {
        return Err(ValidationError::new("services", "services must list at least one service"));
    }
    for (index, (service_id, properties)) in services.iter().enumerate() {
        let path = format!("services[{index}]");
        let service = find_service(product, &format!("{path}.service_id"), service_id)?;
        let properties = properties.as_object().ok_or_else(|| {
            ValidationError::new(
                format!("{path}.properties"),
                format!("properties must be a JSON object, got {}", describe(properties)),
            )
        })?;
        let mut entries: Vec<(&String, &OwnedValue)> = properties.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in entries {
            let field = format!("{path}.properties.{name}");
            let property = service.property(name).ok_or_else(|| {
                ValidationError::new(&field, format!("unknown property '{name}' in service '{service_id}'"))
            })?;
            if !property.method.contains('W') {
                return Err(ValidationError::new(&field, format!("property '{name}' is not writable")));
            }
            if let Some(data_type) = DataType::parse(&property.data_type) {
                check_value(&field, data_type, ValueRules::of_property(property), value)?;
            }
        }
    }
    Ok(())
}

/// Checks a property get: the service must exist.
pub fn check_property_get(product: &Product, service_id: &str) -> Result<(), ValidationError> {
    find_service(product, "service_id", service_id).map(|_| ())
}

/// Checks one value against one para or property definition (see the module doc for the rules).
pub fn check_value(
    field: &str,
    data_type: DataType,
    rules: ValueRules<'_>,
    value: &OwnedValue,
) -> Result<(), ValidationError> {
    check_value_fault(field, data_type, rules, value).map_err(|refusal| refusal.error)
}

/// [`check_value`], saying also which kind of fault the value has.
pub fn check_value_fault(
    field: &str,
    data_type: DataType,
    rules: ValueRules<'_>,
    value: &OwnedValue,
) -> Result<(), ValueRefusal> {
    let wrong_type = |expected: &str| {
        ValueRefusal::new(
            ValueFault::WrongType,
            field,
            format!("expected {expected}, got {}", describe(value)),
        )
    };
    match data_type {
        DataType::Int | DataType::Long => {
            let number = match value {
                OwnedValue::Static(StaticNode::I64(number)) => i128::from(*number),
                OwnedValue::Static(StaticNode::U64(number)) => i128::from(*number),
                _ => return Err(wrong_type(&format!("an integer ({})", data_type.as_str()))),
            };
            let (low, high) = if data_type == DataType::Int {
                (i128::from(i32::MIN), i128::from(i32::MAX))
            } else {
                (i128::from(i64::MIN), i128::from(i64::MAX))
            };
            if number < low || number > high {
                return Err(ValueRefusal::new(
                    ValueFault::OutOfRange,
                    field,
                    format!("value {number} is out of range for {}", data_type.as_str()),
                ));
            }
            check_bounds(field, number, rules, |bound| bound.trim().parse::<i64>().ok().map(i128::from))
        }
        DataType::Decimal => {
            let number = match value {
                OwnedValue::Static(StaticNode::F64(number)) => *number,
                // Integers beyond 2^53 lose precision here; acceptable for a range check.
                OwnedValue::Static(StaticNode::I64(number)) => *number as f64,
                OwnedValue::Static(StaticNode::U64(number)) => *number as f64,
                _ => return Err(wrong_type("a number (decimal)")),
            };
            check_bounds(field, number, rules, |bound| {
                bound.trim().parse::<f64>().ok().filter(|bound| bound.is_finite())
            })
        }
        DataType::String => {
            let text = value.as_str().ok_or_else(|| wrong_type("a string"))?;
            check_text(field, text, rules)
        }
        DataType::Enum => {
            let text = value.as_str().ok_or_else(|| wrong_type("a string (enum)"))?;
            check_in_enum(field, text, rules.enum_list)
        }
        DataType::Boolean => value.as_bool().map(|_| ()).ok_or_else(|| wrong_type("true or false")),
        DataType::DateTime => {
            let text = value.as_str().ok_or_else(|| wrong_type("a DateTime string (yyyyMMddTHHmmssZ)"))?;
            parse_sdk_date(text).map(|_| ()).map_err(|error| {
                ValueRefusal::new(ValueFault::WrongType, field, format!("not a DateTime: {error}"))
            })
        }
        DataType::JsonObject => {
            if !value.is_object() {
                return Err(wrong_type("a JSON object"));
            }
            if deeper_than(value, CONTAINER_DEPTH_MAX) {
                return Err(ValueRefusal::new(
                    ValueFault::TooDeep,
                    field,
                    format!("the object nests more than {CONTAINER_DEPTH_MAX} levels deep"),
                ));
            }
            check_container_bytes(field, crate::json::to_vec(value).len())
        }
        DataType::StringList => {
            let items = value.as_array().ok_or_else(|| wrong_type("an array of strings"))?;
            for (index, item) in items.iter().enumerate() {
                let item_field = format!("{field}[{index}]");
                let text = item.as_str().ok_or_else(|| {
                    ValueRefusal::new(
                        ValueFault::WrongType,
                        &item_field,
                        format!("expected a string, got {}", describe(item)),
                    )
                })?;
                check_text(&item_field, text, rules)?;
            }
            // The JSON as stored: escapes (`\u0001` is six bytes for one) count.
            check_container_bytes(field, crate::json::to_vec(value).len())
        }
    }
}

/// Whether `value` nests more than `levels` containers (itself included). Recurses at most
/// `levels + 1` deep, however deep the value is.
fn deeper_than(value: &OwnedValue, levels: usize) -> bool {
    match value {
        OwnedValue::Object(entries) => {
            levels == 0 || entries.values().any(|child| deeper_than(child, levels - 1))
        }
        OwnedValue::Array(items) => levels == 0 || items.iter().any(|child| deeper_than(child, levels - 1)),
        OwnedValue::Static(_) | OwnedValue::String(_) => false,
    }
}

fn check_container_bytes(field: &str, bytes: usize) -> Result<(), ValueRefusal> {
    if bytes > CONTAINER_BYTES_MAX {
        return Err(ValueRefusal::new(
            ValueFault::TooLarge,
            field,
            format!("the value is {bytes} bytes of JSON; the limit is {CONTAINER_BYTES_MAX}"),
        ));
    }
    Ok(())
}

fn find_service<'p>(
    product: &'p Product,
    field: &str,
    service_id: &str,
) -> Result<&'p ServiceCapability, ValidationError> {
    product
        .service(service_id)
        .ok_or_else(|| ValidationError::new(field, format!("unknown service '{service_id}'")))
}

/// `min ≤ number ≤ max` for the bounds that parse.
fn check_bounds<N: PartialOrd + std::fmt::Display>(
    field: &str,
    number: N,
    rules: ValueRules<'_>,
    parse: impl Fn(&str) -> Option<N>,
) -> Result<(), ValueRefusal> {
    if let Some(min) = rules.min.and_then(&parse) {
        if number < min {
            return Err(ValueRefusal::new(
                ValueFault::OutOfRange,
                field,
                format!("value {number} is below min {min}"),
            ));
        }
    }
    if let Some(max) = rules.max.and_then(&parse) {
        if number > max {
            return Err(ValueRefusal::new(
                ValueFault::OutOfRange,
                field,
                format!("value {number} is above max {max}"),
            ));
        }
    }
    Ok(())
}

/// A `string` (or `string list` item): `max_length`, then a non-empty `enum_list`.
fn check_text(field: &str, text: &str, rules: ValueRules<'_>) -> Result<(), ValueRefusal> {
    if let Some(max_length) = rules.max_length.and_then(|max| usize::try_from(max).ok()) {
        let chars = text.chars().count();
        if chars > max_length {
            return Err(ValueRefusal::new(
                ValueFault::TooLong,
                field,
                format!("value is {chars} characters long; the limit is {max_length}"),
            ));
        }
    }
    match rules.enum_list {
        Some(list) if !list.is_empty() => check_in_enum(field, text, Some(list)),
        _ => Ok(()),
    }
}

/// `text` must be one of `enum_list`; an absent or empty list (never on a validated `enum`)
/// allows any string.
fn check_in_enum(field: &str, text: &str, enum_list: Option<&[String]>) -> Result<(), ValueRefusal> {
    match enum_list {
        Some(list) if !list.is_empty() && !list.iter().any(|entry| entry == text) => Err(ValueRefusal::new(
            ValueFault::NotInEnum,
            field,
            format!("'{}' is not one of {}", shorten(text), list.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// A short description of a value's JSON type, for "expected …, got …" messages. Numbers and
/// booleans are shown; strings only when short; containers never.
fn describe(value: &OwnedValue) -> String {
    match value {
        OwnedValue::Static(StaticNode::Null) => "null".to_owned(),
        OwnedValue::Static(StaticNode::Bool(flag)) => flag.to_string(),
        OwnedValue::Static(StaticNode::I64(number)) => number.to_string(),
        OwnedValue::Static(StaticNode::U64(number)) => number.to_string(),
        OwnedValue::Static(StaticNode::F64(number)) => format!("{number:?}"),
        OwnedValue::String(text) => format!("the string '{}'", shorten(text)),
        OwnedValue::Array(_) => "an array".to_owned(),
        OwnedValue::Object(_) => "an object".to_owned(),
    }
}

/// `text` itself when at most 32 characters, else its first 32 followed by `…`.
fn shorten(text: &str) -> String {
    const MAX_SHOWN_CHARS: usize = 32;
    if text.chars().count() <= MAX_SHOWN_CHARS {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{head}…")
    }
}
