//! End-user sign-in through the LDAP directory connector: find the user by
//! address, bind to AD as that user through the integration's hosts and
//! TLS settings, answer in AD's words — with rate limits so that a
//! password-spraying client cannot lock users out of AD through us.

use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use dirsync_core::{EmailAddress, ObjectKind};
use dirsync_ldap::{BindFailure, LdapError, Target};
use dirsync_proto::api::{self, AuthResult, auth_service_server::AuthService};
use dirsync_store::{SignInLimits, StoreError};

use crate::Gateway;
use crate::error::status_of;

/// Failed sign-ins allowed per address within [`ADDRESS_WINDOW_MS`]; well
/// under AD's usual lockout thresholds.
pub const ADDRESS_FAILURES: usize = 5;
pub const ADDRESS_WINDOW_MS: i64 = 15 * 60_000;
/// Sign-in attempts allowed per account within [`ACCOUNT_WINDOW_MS`].
pub const ACCOUNT_ATTEMPTS: usize = 300;
pub const ACCOUNT_WINDOW_MS: i64 = 60_000;

/// The sign-in limits, counted in the store: every gateway replica sees
/// the same counts, and a restart does not reset them.
pub const SIGN_IN_LIMITS: SignInLimits = SignInLimits {
    address_failures: ADDRESS_FAILURES as u32,
    address_window_ms: ADDRESS_WINDOW_MS,
    account_attempts: ACCOUNT_ATTEMPTS as u32,
    account_window_ms: ACCOUNT_WINDOW_MS,
};

fn answer(
    result: AuthResult,
    object_id: &str,
    message: &str,
) -> Response<api::AuthenticateResponse> {
    Response::new(api::AuthenticateResponse {
        result: result as i32,
        object_id: object_id.to_owned(),
        message: message.to_owned(),
    })
}

#[tonic::async_trait]
impl AuthService for Gateway {
    async fn authenticate(
        &self,
        request: Request<api::AuthenticateRequest>,
    ) -> Result<Response<api::AuthenticateResponse>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let profile = self.account(account).await?;
        if !profile.ldap_sign_in {
            return Err(Status::failed_precondition(
                "sign-in with the AD password is off for this account: enable the LDAP directory connector in the account's authentication profile",
            ));
        }
        let now = self.clock.now();
        let bad = "the address or the password is not right";
        // Not an address at all (e.g. an LDAP filter): nothing to find.
        let Ok(address) = EmailAddress::parse(&req.address) else {
            return Ok(answer(AuthResult::BadCredentials, "", bad));
        };
        if !self
            .store
            .admit_sign_in(account, address.as_str(), now, &SIGN_IN_LIMITS)
            .await
            .map_err(status_of)?
        {
            return Ok(answer(
                AuthResult::RateLimited,
                "",
                "too many sign-in attempts; try again later",
            ));
        }
        let (result, id, message) = self
            .verify(account, &address, SecretString::from(req.password))
            .await?;
        if result == AuthResult::Ok {
            self.store
                .sign_in_succeeded(account, address.as_str())
                .await
                .map_err(status_of)?;
        } else {
            self.store
                .sign_in_failed(account, address.as_str(), now)
                .await
                .map_err(status_of)?;
        }
        Ok(answer(result, &id, &message))
    }
}

impl Gateway {
    /// Whether `password` is the user's with `address`, as the directory
    /// says: (result, the object's id when it is, what to tell).
    async fn verify(
        &self,
        account: &str,
        address: &EmailAddress,
        password: SecretString,
    ) -> Result<(AuthResult, String, String), Status> {
        let bad = "the address or the password is not right";
        let fail =
            |result: AuthResult, message: &str| Ok((result, String::new(), message.to_owned()));
        if password.expose_secret().is_empty() {
            return fail(AuthResult::BadCredentials, bad);
        }
        let object = match self.store.lookup_address(account, address.as_str()).await {
            Ok(o) => o,
            Err(StoreError::NotFound(_)) => return fail(AuthResult::BadCredentials, bad),
            Err(e) => return Err(status_of(e)),
        };
        if object.record.kind != ObjectKind::User || !object.managed {
            return fail(AuthResult::BadCredentials, bad);
        }
        if object.record.disabled {
            return fail(AuthResult::Disabled, "the account is disabled");
        }
        let integration = match self
            .store
            .get_integration(account, &object.integration_id)
            .await
        {
            Ok(i) => i,
            Err(StoreError::NotFound(_)) => return fail(AuthResult::BadCredentials, bad),
            Err(e) => return Err(status_of(e)),
        };
        let s = &integration.settings;
        let target = Target {
            host: s.host.clone(),
            alternate_host: s.alternate_host.clone(),
            port: s.port,
            encryption: s.encryption,
            allow_insecure_bind: s.allow_insecure_bind,
            bind_dn: object.record.dn.clone(),
            password,
            extra_roots: self.extra_roots.clone(),
            timeouts: self.ldap_timeouts,
        };
        let mut last = None;
        for endpoint in target.endpoints() {
            match dirsync_ldap::connect_host(&target, &endpoint).await {
                Ok(session) => {
                    session.unbind().await;
                    let id = object.record.anchor.to_string();
                    return Ok((AuthResult::Ok, id, "signed in".to_owned()));
                }
                Err(e) if e.is_connection_failure() => last = Some(e),
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        match last {
            Some(LdapError::Bind { failure, .. }) => match failure {
                BindFailure::AccountDisabled => {
                    fail(AuthResult::Disabled, "the account is disabled")
                }
                BindFailure::AccountLocked => fail(AuthResult::Locked, "the account is locked out"),
                BindFailure::PasswordExpired
                | BindFailure::PasswordMustChange
                | BindFailure::AccountExpired => fail(
                    AuthResult::PasswordExpired,
                    "the password has expired or must be changed",
                ),
                _ => fail(AuthResult::BadCredentials, bad),
            },
            Some(e) => {
                tracing::warn!(account, error = %e, "sign-in could not reach the directory");
                Err(Status::unavailable(
                    "the directory cannot be reached; try again later",
                ))
            }
            None => Err(Status::unavailable(
                "the directory cannot be reached; try again later",
            )),
        }
    }
}
