//! REST handlers, one file per resource. Each handler is small: parse, validate (in
//! `protocol`), call the right shard, shape the answer.

pub mod devices;
pub mod products;
pub mod query;
pub mod view;
