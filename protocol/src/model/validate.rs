//! Turning a CreateProduct / UpdateProduct body into a [`Product`] (spec §2.3), or naming
//! the first field that breaks a rule. Fields are checked in the order the spec lists them,
//! so the error a client sees is stable.
//!
//! Names, device types and descriptions are length-checked only: IoTDA also restricts their
//! character set (letters, digits, CJK and some punctuation), but the exact set differs between
//! doc pages, and rejecting a name IoTDA accepts would be worse than accepting one it rejects.

use crate::error::ValidationError;
use crate::model::field::{check_id, check_one_of, check_optional, check_required};
use crate::model::service::validate_services;
use crate::model::{
    CreateProductRequest, Product, ServiceCapability, UpdateProductRequest, DEFAULT_APP_ID, DEFAULT_APP_NAME,
};

/// `product_id` and `app_id` (resource space) limits.
pub const PRODUCT_ID_MAX_CHARS: usize = 36;
pub const APP_ID_MAX_CHARS: usize = 36;
const NAME_MAX_CHARS: usize = 64;
const DEVICE_TYPE_MAX_CHARS: usize = 32;
const MANUFACTURER_NAME_MAX_CHARS: usize = 32;
const INDUSTRY_MAX_CHARS: usize = 64;
const DESCRIPTION_MAX_CHARS: usize = 128;

/// Accepted `protocol_type` values, exact spelling.
pub const PROTOCOL_TYPES: &[&str] =
    &["MQTT", "CoAP", "HTTP", "HTTPS", "Modbus", "ONVIF", "OPC-UA", "OPC-DA", "Other", "TCP", "UDP"];
/// Accepted `data_format` values.
pub const DATA_FORMATS: &[&str] = &["json", "binary"];
/// `data_format` when the request leaves it out.
pub const DEFAULT_DATA_FORMAT: &str = "json";

/// Validates a CreateProduct body and builds the product to store.
///
/// `generated_product_id` is used when the body carries no `product_id`; the caller makes it
/// (e.g. 24 hex digits) and must make it a valid id. `create_time` is T1, from the caller's clock.
pub fn validate_create(
    request: CreateProductRequest,
    generated_product_id: &str,
    create_time: &str,
) -> Result<Product, ValidationError> {
    let product_id = match request.product_id {
        Some(product_id) => {
            check_id("product_id", &product_id, PRODUCT_ID_MAX_CHARS)?;
            product_id
        }
        None => {
            debug_assert!(check_id("product_id", generated_product_id, PRODUCT_ID_MAX_CHARS).is_ok());
            generated_product_id.to_owned()
        }
    };
    check_name(&request.name)?;
    check_device_type(&request.device_type)?;
    check_protocol_type(&request.protocol_type)?;
    let data_format = request.data_format.unwrap_or_else(|| DEFAULT_DATA_FORMAT.to_owned());
    check_data_format(&data_format)?;
    let mut service_capabilities = request
        .service_capabilities
        .ok_or_else(|| ValidationError::new("service_capabilities", "service_capabilities is required"))?;
    validate_services(&mut service_capabilities)?;
    check_manufacturer_name(request.manufacturer_name.as_deref())?;
    check_industry(request.industry.as_deref())?;
    check_description(request.description.as_deref())?;
    let (app_id, app_name) = resource_space(request.app_id)?;
    Ok(Product {
        app_id,
        app_name,
        product_id,
        name: request.name,
        device_type: request.device_type,
        protocol_type: request.protocol_type,
        data_format,
        manufacturer_name: request.manufacturer_name,
        industry: request.industry,
        description: request.description,
        service_capabilities,
        create_time: create_time.to_owned(),
    })
}

/// Validates an UpdateProduct body against `existing` and returns the updated product.
/// `product_id`, `create_time` and the resource space never change; a present
/// `service_capabilities` replaces the whole list. A present `app_id` must name the product's
/// own resource space.
pub fn apply_update(existing: &Product, request: UpdateProductRequest) -> Result<Product, ValidationError> {
    let UpdateProductRequest {
        name,
        device_type,
        protocol_type,
        data_format,
        service_capabilities,
        manufacturer_name,
        industry,
        description,
        app_id,
    } = request;
    let mut product = existing.clone();
    if let Some(name) = name {
        check_name(&name)?;
        product.name = name;
    }
    if let Some(device_type) = device_type {
        check_device_type(&device_type)?;
        product.device_type = device_type;
    }
    if let Some(protocol_type) = protocol_type {
        check_protocol_type(&protocol_type)?;
        product.protocol_type = protocol_type;
    }
    if let Some(data_format) = data_format {
        check_data_format(&data_format)?;
        product.data_format = data_format;
    }
    if let Some(service_capabilities) = service_capabilities {
        product.service_capabilities = validated_services(service_capabilities)?;
    }
    check_manufacturer_name(manufacturer_name.as_deref())?;
    product.manufacturer_name = manufacturer_name.or(product.manufacturer_name);
    check_industry(industry.as_deref())?;
    product.industry = industry.or(product.industry);
    check_description(description.as_deref())?;
    product.description = description.or(product.description);
    if let Some(app_id) = app_id {
        check_same_resource_space(existing, &app_id)?;
    }
    Ok(product)
}

fn validated_services(
    mut services: Vec<ServiceCapability>,
) -> Result<Vec<ServiceCapability>, ValidationError> {
    validate_services(&mut services)?;
    Ok(services)
}

fn check_name(name: &str) -> Result<(), ValidationError> {
    check_required("name", name, NAME_MAX_CHARS)
}

fn check_device_type(device_type: &str) -> Result<(), ValidationError> {
    check_required("device_type", device_type, DEVICE_TYPE_MAX_CHARS)
}

fn check_protocol_type(protocol_type: &str) -> Result<(), ValidationError> {
    check_one_of("protocol_type", protocol_type, PROTOCOL_TYPES)
}

fn check_data_format(data_format: &str) -> Result<(), ValidationError> {
    check_one_of("data_format", data_format, DATA_FORMATS)
}

fn check_manufacturer_name(manufacturer_name: Option<&str>) -> Result<(), ValidationError> {
    check_optional("manufacturer_name", manufacturer_name, MANUFACTURER_NAME_MAX_CHARS)
}

fn check_industry(industry: Option<&str>) -> Result<(), ValidationError> {
    check_optional("industry", industry, INDUSTRY_MAX_CHARS)
}

fn check_description(description: Option<&str>) -> Result<(), ValidationError> {
    check_optional("description", description, DESCRIPTION_MAX_CHARS)
}

/// `(app_id, app_name)` of the resource space a new product goes into.
fn resource_space(app_id: Option<String>) -> Result<(String, String), ValidationError> {
    match app_id {
        None => Ok((DEFAULT_APP_ID.to_owned(), DEFAULT_APP_NAME.to_owned())),
        Some(app_id) => {
            check_id("app_id", &app_id, APP_ID_MAX_CHARS)?;
            Ok((app_id.clone(), app_id))
        }
    }
}

fn check_same_resource_space(existing: &Product, app_id: &str) -> Result<(), ValidationError> {
    check_id("app_id", app_id, APP_ID_MAX_CHARS)?;
    if app_id != existing.app_id {
        return Err(ValidationError::new(
            "app_id",
            format!(
                "product '{}' belongs to resource space '{}', not '{app_id}'; a product cannot change resource space",
                existing.product_id, existing.app_id
            ),
        ));
    }
    Ok(())
}
