//! REST handlers, one file per resource. Each handler is small: parse, validate (in
//! `protocol`), call the right shard, shape the answer.

pub mod batch_tasks;
pub mod device_calls;
pub mod devices;
pub mod messages;
pub mod metrics;
pub mod products;
pub mod query;
pub mod routing_rules;
pub mod view;
