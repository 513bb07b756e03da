//! The console's JSON layer over the gRPC handlers: a request in proto3
//! JSON is read against the RPC's input message (from the API's own
//! descriptors, so the JSON is exactly the gRPC API's), handed to the
//! handler with the session's account attached, and the answer written
//! back in proto3 JSON.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{Stream, StreamExt};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use dirsync_proto::api::account_service_server::AccountService;
use dirsync_proto::api::directory_service_server::DirectoryService;
use dirsync_proto::api::integration_service_server::IntegrationService;
use dirsync_proto::api::sync_service_server::SyncService;

use super::json_response;
use crate::Gateway;
use crate::tenancy::ConsolePrincipal;

pub(super) struct Bridge {
    pool: DescriptorPool,
}

/// Answers in full: every field, defaults included, as its proto name,
/// 64-bit counts as JSON numbers.
const OUT: SerializeOptions = SerializeOptions::new()
    .skip_default_fields(false)
    .use_proto_field_name(true)
    .stringify_64_bit_integers(false);

impl Bridge {
    pub(super) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            pool: DescriptorPool::decode(dirsync_proto::FILE_DESCRIPTOR_SET)?,
        })
    }

    fn method(&self, service: &str, method: &str) -> Option<MethodDescriptor> {
        self.pool
            .get_service_by_name(&format!("dirsync.v1.{service}"))?
            .methods()
            .find(|m| m.name() == method)
    }

    /// Runs `service`/`method` for the principal's account; `None` when the
    /// console may not call it (end-user sign-in is not an admin's).
    pub(super) async fn call(
        &self,
        gw: &Gateway,
        principal: ConsolePrincipal,
        service: &str,
        method: &str,
        body: &[u8],
    ) -> Option<Response> {
        let m = self.method(service, method)?;
        macro_rules! unary {
            ($handler:path) => {
                Some(
                    unary(
                        gw.clone(),
                        principal,
                        &m,
                        body,
                        |gw: Gateway, r| async move { $handler(&gw, r).await },
                    )
                    .await,
                )
            };
        }
        macro_rules! streamed {
            ($handler:path) => {
                Some(
                    streamed(
                        gw.clone(),
                        principal,
                        &m,
                        body,
                        |gw: Gateway, r| async move { $handler(&gw, r).await },
                    )
                    .await,
                )
            };
        }
        match (service, method) {
            ("IntegrationService", "CreateIntegration") => {
                unary!(IntegrationService::create_integration)
            }
            ("IntegrationService", "GetIntegration") => unary!(IntegrationService::get_integration),
            ("IntegrationService", "ListIntegrations") => {
                unary!(IntegrationService::list_integrations)
            }
            ("IntegrationService", "UpdateIntegration") => {
                unary!(IntegrationService::update_integration)
            }
            ("IntegrationService", "DeleteIntegration") => {
                unary!(IntegrationService::delete_integration)
            }
            ("IntegrationService", "TestConnection") => {
                streamed!(IntegrationService::test_connection)
            }
            ("AccountService", "GetAccount") => unary!(AccountService::get_account),
            ("AccountService", "UpdateAccount") => unary!(AccountService::update_account),
            ("SyncService", "SyncNow") => unary!(SyncService::sync_now),
            ("SyncService", "SyncAll") => unary!(SyncService::sync_all),
            ("SyncService", "GetRun") => unary!(SyncService::get_run),
            ("SyncService", "WatchRun") => streamed!(SyncService::watch_run),
            ("SyncService", "ListRuns") => unary!(SyncService::list_runs),
            ("SyncService", "ListPendingRemovals") => unary!(SyncService::list_pending_removals),
            ("SyncService", "ApproveRemovals") => unary!(SyncService::approve_removals),
            ("SyncService", "PreviewSync") => unary!(SyncService::preview_sync),
            ("SyncService", "ListChanges") => unary!(SyncService::list_changes),
            ("DirectoryService", "ListUsers") => unary!(DirectoryService::list_users),
            ("DirectoryService", "ListGroups") => unary!(DirectoryService::list_groups),
            ("DirectoryService", "ListContacts") => unary!(DirectoryService::list_contacts),
            ("DirectoryService", "LookupAddress") => unary!(DirectoryService::lookup_address),
            _ => None,
        }
    }
}

/// The request message of `m` from its proto3 JSON, or INVALID_ARGUMENT
/// naming what is wrong with it.
fn request<Req: Message + Default>(m: &MethodDescriptor, body: &[u8]) -> Result<Req, Status> {
    let bad = |why: String| {
        Err(Status::invalid_argument(format!(
            "the request is not a {} in JSON: {why}",
            m.input().name()
        )))
    };
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let dynamic = match DynamicMessage::deserialize_with_options(
        m.input(),
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(true),
    ) {
        Ok(d) => d,
        Err(e) => return bad(e.to_string()),
    };
    if let Err(e) = de.end() {
        return bad(e.to_string());
    }
    Req::decode(dynamic.encode_to_vec().as_slice()).or_else(|e| bad(e.to_string()))
}

/// A response message in proto3 JSON.
fn json_of<M: Message>(desc: &MessageDescriptor, msg: &M) -> serde_json::Value {
    DynamicMessage::decode(desc.clone(), msg.encode_to_vec().as_slice())
        .map_err(|e| e.to_string())
        .and_then(|d| {
            d.serialize_with_options(serde_json::value::Serializer, &OUT)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, message = desc.name(), "a response does not convert to JSON");
            serde_json::Value::Null
        })
}

/// The handler's request: the message read from `body`, acting as the
/// session's account.
fn prepared<Req: Message + Default>(
    principal: ConsolePrincipal,
    m: &MethodDescriptor,
    body: &[u8],
) -> Result<Request<Req>, Status> {
    let mut request = Request::new(request::<Req>(m, body)?);
    request.extensions_mut().insert(principal);
    Ok(request)
}

async fn unary<Req, Resp, F, Fut>(
    gw: Gateway,
    principal: ConsolePrincipal,
    m: &MethodDescriptor,
    body: &[u8],
    handler: F,
) -> Response
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Gateway, Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let req = match prepared::<Req>(principal, m, body) {
        Ok(r) => r,
        Err(status) => return status_response(&status),
    };
    match handler(gw, req).await {
        Ok(answer) => json_response(StatusCode::OK, &json_of(&m.output(), answer.get_ref())),
        Err(status) => status_response(&status),
    }
}

/// A streamed RPC: one line per message, `{"result": …}`, and a last
/// `{"error": …}` line if the stream fails part way.
async fn streamed<Req, Resp, S, F, Fut>(
    gw: Gateway,
    principal: ConsolePrincipal,
    m: &MethodDescriptor,
    body: &[u8],
    handler: F,
) -> Response
where
    Req: Message + Default,
    Resp: Message + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(Gateway, Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let req = match prepared::<Req>(principal, m, body) {
        Ok(r) => r,
        Err(status) => return status_response(&status),
    };
    let stream = match handler(gw, req).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return status_response(&status),
    };
    let desc = m.output();
    let lines = stream.map(move |item| {
        let value = match item {
            Ok(msg) => serde_json::json!({ "result": json_of(&desc, &msg) }),
            Err(status) => error_json(&status),
        };
        let mut line = value.to_string();
        line.push('\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    super::ndjson(Body::from_stream(lines))
}

/// HTTP status of a gRPC code, as the gRPC-HTTP mapping has it.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"error": {"code", "message", "fields": [{"field", "description"}]}}`:
/// each bad field named, from the status's BadRequest details, or from a
/// message of the API's `field: problem` form.
fn error_json(status: &Status) -> serde_json::Value {
    let mut fields: Vec<serde_json::Value> = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| serde_json::json!({ "field": v.field, "description": v.description }))
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty()
        && let Some((field, description)) = field_message(status.message())
    {
        fields.push(serde_json::json!({ "field": field, "description": description }));
    }
    serde_json::json!({ "error": {
        "code": code_name(status.code()),
        "message": status.message(),
        "fields": fields,
    }})
}

/// `("settings.host", "is required")` of `"settings.host: is required"`.
fn field_message(message: &str) -> Option<(&str, &str)> {
    let (field, rest) = message.split_once(": ")?;
    let is_path = !field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    is_path.then_some((field, rest))
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

pub(super) fn status_response(status: &Status) -> Response {
    json_response(http_status(status.code()), &error_json(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_error_is_read_from_the_message_or_the_details() {
        assert_eq!(
            field_message("settings.host: is required"),
            Some(("settings.host", "is required"))
        );
        assert_eq!(field_message("the store is unavailable: retry"), None);
        let status = crate::error::invalid(&[
            dirsync_core::FieldError::new("settings.host", "is required"),
            dirsync_core::FieldError::new("settings.port", "is out of range; use 636"),
        ]);
        let json = error_json(&status);
        assert_eq!(json["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(json["error"]["fields"][1]["field"], "settings.port");
        assert_eq!(
            json["error"]["fields"][1]["description"],
            "is out of range; use 636"
        );
    }

    #[test]
    fn requests_are_read_as_the_apis_json() {
        let bridge = Bridge::new().expect("descriptors");
        let m = bridge
            .method("IntegrationService", "CreateIntegration")
            .expect("method");
        let req: dirsync_proto::api::CreateIntegrationRequest = request(
            &m,
            br#"{"settings": {"name": "HQ", "port": 636, "encryption_mode": "ENCRYPTION_MODE_STRICT"}, "validateOnly": true}"#,
        )
        .expect("request");
        let settings = req.settings.expect("settings");
        assert_eq!((settings.name.as_str(), settings.port), ("HQ", 636));
        assert_eq!(
            settings.encryption_mode,
            dirsync_proto::api::EncryptionMode::Strict as i32
        );
        assert!(req.validate_only);
        for bad in [
            &br#"{"settings": {"nmae": "HQ"}}"#[..],
            b"{",
            b"[1]",
            b"{} {}",
        ] {
            assert!(
                request::<dirsync_proto::api::CreateIntegrationRequest>(&m, bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(bridge.method("AuthService", "Authenticate").is_some());
        assert!(bridge.method("IntegrationService", "Nope").is_none());
    }
}
