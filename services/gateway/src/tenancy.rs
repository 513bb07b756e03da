//! Tenancy: every RPC acts for the account of its API token
//! (`authorization: Bearer dst_…`). A request naming another account is
//! refused; one naming none acts for the token's.

use tonic::{Request, Status};

use dirsync_core::token;
use dirsync_proto::api;

use crate::Gateway;
use crate::error::status_of;

/// A request that names (or may name) its account.
pub trait Scoped {
    fn account_field(&self) -> &str;
}

macro_rules! scoped {
    ($($t:ident),* $(,)?) => {
        $(impl Scoped for api::$t {
            fn account_field(&self) -> &str {
                &self.account_id
            }
        })*
    };
}

scoped!(
    CreateIntegrationRequest,
    GetIntegrationRequest,
    ListIntegrationsRequest,
    UpdateIntegrationRequest,
    DeleteIntegrationRequest,
    TestConnectionRequest,
    SyncNowRequest,
    SyncAllRequest,
    GetRunRequest,
    ListRunsRequest,
    ListPendingRemovalsRequest,
    ApproveRemovalsRequest,
    ListChangesRequest,
    ListObjectsRequest,
    LookupAddressRequest,
    GetAccountRequest,
    UpdateAccountRequest,
    AuthenticateRequest,
);

impl Gateway {
    /// The token's account and the request, or UNAUTHENTICATED /
    /// PERMISSION_DENIED.
    pub(crate) async fn authorize<T: Scoped>(
        &self,
        request: Request<T>,
    ) -> Result<(String, T), Status> {
        // A console request, its session checked by the console: it acts
        // for the session's account. Only this crate can attach one; no
        // request from the network carries extensions.
        if let Some(principal) = request.extensions().get::<ConsolePrincipal>() {
            let account = principal.account_id.clone();
            let req = request.into_inner();
            return scoped_to(account, req);
        }
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let req = request.into_inner();
        let unauthenticated = |why: &str| {
            Status::unauthenticated(format!(
                "{why}; send `authorization: Bearer <token>` with a token from `dirsync token create`"
            ))
        };
        let header = header.ok_or_else(|| unauthenticated("no API token"))?;
        let presented = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or_else(|| unauthenticated("the authorization header is not a bearer token"))?;
        let (id, secret) =
            token::parse(presented).ok_or_else(|| unauthenticated("not a dirsync API token"))?;
        let record = self
            .store
            .token(id)
            .await
            .map_err(status_of)?
            .filter(|t| t.revoked_at.is_none() && t.secret_hash == token::hash(secret))
            .ok_or_else(|| unauthenticated("the API token is unknown or revoked"))?;
        scoped_to(record.account_id, req)
    }
}

/// The account a console session acts for, attached to the requests the
/// console makes of the services (see `console`).
#[derive(Debug, Clone)]
pub(crate) struct ConsolePrincipal {
    pub account_id: String,
}

/// The request, when it names no account or the caller's own.
fn scoped_to<T: Scoped>(account: String, req: T) -> Result<(String, T), Status> {
    let asked = req.account_field();
    if !asked.is_empty() && asked != account {
        return Err(Status::permission_denied(format!(
            "account_id: the API token does not act for account {asked:?}"
        )));
    }
    Ok((account, req))
}
