//! The one place where errors become gRPC statuses.

use tonic::Status;
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use dirsync_core::FieldError;
use dirsync_store::StoreError;

pub fn status_of(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(what) => Status::not_found(format!("{what} not found")),
        StoreError::Conflict(what) => Status::already_exists(what),
        StoreError::Precondition(what) => Status::failed_precondition(what),
        StoreError::Connect { .. } | StoreError::Database(_) => {
            tracing::error!(error = %e, "store unavailable");
            Status::unavailable("the directory store is unavailable; retry later")
        }
        StoreError::Corrupt(_) | StoreError::Migrate(_) => {
            tracing::error!(error = %e, "store error");
            Status::internal("internal error in the directory store")
        }
    }
}

/// Every field problem in one INVALID_ARGUMENT, each naming its field: in
/// the message, and as `google.rpc.BadRequest` field violations in the
/// status details (gRPC's rich error model) for clients that show each
/// beside its field.
pub fn invalid(errors: &[FieldError]) -> Status {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let violations: Vec<FieldViolation> = errors
        .iter()
        .map(|e| FieldViolation::new(e.field, e.message.clone()))
        .collect();
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        text.join("; "),
        ErrorDetails::with_bad_request(violations),
    )
}
