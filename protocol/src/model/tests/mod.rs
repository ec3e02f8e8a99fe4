//! Product-model tests: parsing realistic bodies (`parse`), the product-level rules and
//! UpdateProduct (`product`), the service-capability rules (`service`), calls against the model
//! (`check`) and property reports against it (`report`).

mod check;
mod parse;
mod product;
mod report;
mod service;

use crate::error::ValidationError;
use crate::json::from_bytes;
use crate::model::{
    validate_create, CreateProductRequest, Product, ServiceCapability, ServiceCommand, ServiceCommandPara,
    ServiceProperty,
};

const CREATE_TIME: &str = "20240102T030405Z";
const GENERATED_ID: &str = "65a1b2c3d4e5f60718293a4b";

/// The smart water meter used throughout: service `water` with property `level` (int 0–100,
/// `RE`) and command `ON_OFF` with para `value` (enum ON/OFF).
const SMARTWATER_JSON: &str = r#"{
  "product_id": "smartwater",
  "name": "Smart water meter",
  "device_type": "WaterMeter",
  "protocol_type": "MQTT",
  "manufacturer_name": "Acme",
  "industry": "smartCity",
  "description": "a water meter",
  "service_capabilities": [{
    "service_id": "water",
    "service_type": "water",
    "description": "water level and valve",
    "properties": [{
      "property_name": "level",
      "data_type": "int",
      "required": true,
      "min": "0",
      "max": "100",
      "step": 1,
      "unit": "%",
      "method": "RE",
      "default_value": 50
    }],
    "commands": [{
      "command_name": "ON_OFF",
      "paras": [{
        "para_name": "value",
        "data_type": "enum",
        "required": true,
        "enum_list": ["ON", "OFF"],
        "max_length": 3
      }],
      "responses": [{
        "response_name": "ON_OFF_RESULT",
        "paras": [{"para_name": "result", "data_type": "int", "min": "0", "max": "1"}]
      }]
    }]
  }]
}"#;

fn smartwater_request() -> CreateProductRequest {
    from_bytes(SMARTWATER_JSON.as_bytes()).expect("the smartwater body parses")
}

fn create(request: CreateProductRequest) -> Result<Product, ValidationError> {
    validate_create(request, GENERATED_ID, CREATE_TIME)
}

fn smartwater() -> Product {
    create(smartwater_request()).expect("the smartwater product is valid")
}

/// The validation error of `result`, as `(field, message)`.
fn error_of<T: std::fmt::Debug>(result: Result<T, ValidationError>) -> (String, String) {
    let error = result.expect_err("expected a validation error");
    (error.field, error.message)
}

/// Asserts that `result` failed on `field`, and returns the message.
fn rejected_at<T: std::fmt::Debug>(result: Result<T, ValidationError>, field: &str) -> String {
    let (actual_field, message) = error_of(result);
    assert_eq!(actual_field, field, "wrong field; message was: {message}");
    message
}

/// A minimal valid request with the given services.
fn request_with(services: Vec<ServiceCapability>) -> CreateProductRequest {
    CreateProductRequest {
        name: "p".to_owned(),
        device_type: "t".to_owned(),
        protocol_type: "MQTT".to_owned(),
        service_capabilities: Some(services),
        ..Default::default()
    }
}

fn service(service_id: &str) -> ServiceCapability {
    ServiceCapability {
        service_id: service_id.to_owned(),
        service_type: "type".to_owned(),
        ..Default::default()
    }
}

fn property(property_name: &str, data_type: &str) -> ServiceProperty {
    ServiceProperty {
        property_name: property_name.to_owned(),
        data_type: data_type.to_owned(),
        method: "RW".to_owned(),
        ..Default::default()
    }
}

fn command(command_name: &str, paras: Vec<ServiceCommandPara>) -> ServiceCommand {
    ServiceCommand { command_name: command_name.to_owned(), paras, ..Default::default() }
}

fn para(para_name: &str, data_type: &str) -> ServiceCommandPara {
    ServiceCommandPara {
        para_name: para_name.to_owned(),
        data_type: data_type.to_owned(),
        ..Default::default()
    }
}

/// Validates a product whose only service has these properties.
fn with_properties(properties: Vec<ServiceProperty>) -> Result<Product, ValidationError> {
    create(request_with(vec![ServiceCapability { properties, ..service("s") }]))
}

/// Validates a product whose only service has these commands.
fn with_commands(commands: Vec<ServiceCommand>) -> Result<Product, ValidationError> {
    create(request_with(vec![ServiceCapability { commands, ..service("s") }]))
}
