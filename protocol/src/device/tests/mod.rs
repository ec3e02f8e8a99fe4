//! Device tests: AddDevice rules (`add`), UpdateDevice rules (`update`), and the response
//! shapes (`response`).

mod add;
mod response;
mod update;

use crate::error::ValidationError;

/// Asserts that `result` failed on `field`, and returns the message.
fn rejected_at<T: std::fmt::Debug>(result: Result<T, ValidationError>, field: &str) -> String {
    let error = result.expect_err("expected a validation error");
    assert_eq!(error.field, field, "wrong field; message was: {}", error.message);
    error.message
}
