//! The one place where errors become gRPC statuses.

use tonic::Status;

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

/// Every field problem in one INVALID_ARGUMENT, each naming its field.
pub fn invalid(errors: &[FieldError]) -> Status {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Status::invalid_argument(text.join("; "))
}
