//! End-user sign-in through the LDAP directory connector: find the user by
//! address, bind to AD as that user through the integration's hosts and
//! TLS settings, answer in AD's words — with rate limits so that a
//! password-spraying client cannot lock users out of AD through us.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use secrecy::SecretString;
use tonic::{Request, Response, Status};

use dirsync_core::{EmailAddress, ObjectKind, UnixMillis};
use dirsync_ldap::{BindFailure, LdapError, Target};
use dirsync_proto::api::{self, AuthResult, auth_service_server::AuthService};
use dirsync_store::StoreError;

use crate::Gateway;
use crate::error::status_of;

/// Failed sign-ins allowed per address within [`ADDRESS_WINDOW_MS`]; well
/// under AD's usual lockout thresholds.
pub const ADDRESS_FAILURES: usize = 5;
pub const ADDRESS_WINDOW_MS: i64 = 15 * 60_000;
/// Sign-in attempts allowed per account within [`ACCOUNT_WINDOW_MS`].
pub const ACCOUNT_ATTEMPTS: usize = 300;
pub const ACCOUNT_WINDOW_MS: i64 = 60_000;

/// Sliding-window counters of sign-in attempts.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, VecDeque<UnixMillis>>>,
    attempts: Mutex<HashMap<String, VecDeque<UnixMillis>>>,
}

fn prune(q: &mut VecDeque<UnixMillis>, now: UnixMillis, window: i64) {
    while q.front().is_some_and(|t| *t <= now - window) {
        q.pop_front();
    }
}

impl SignInLimiter {
    /// Counts an attempt; false when the address or the account is over
    /// its limit (AD must not be asked).
    fn admit(&self, account: &str, address: &str, now: UnixMillis) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = failures.entry(format!("{account}/{address}")).or_default();
        prune(f, now, ADDRESS_WINDOW_MS);
        if f.len() >= ADDRESS_FAILURES {
            return false;
        }
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let a = attempts.entry(account.to_owned()).or_default();
        prune(a, now, ACCOUNT_WINDOW_MS);
        if a.len() >= ACCOUNT_ATTEMPTS {
            return false;
        }
        a.push_back(now);
        true
    }

    fn failed(&self, account: &str, address: &str, now: UnixMillis) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .entry(format!("{account}/{address}"))
            .or_default()
            .push_back(now);
    }

    fn succeeded(&self, account: &str, address: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&format!("{account}/{address}"));
    }
}

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
        if !self.sign_in_limits.admit(account, address.as_str(), now) {
            return Ok(answer(
                AuthResult::RateLimited,
                "",
                "too many sign-in attempts; try again later",
            ));
        }
        let fail = |result: AuthResult, message: &str| {
            self.sign_in_limits.failed(account, address.as_str(), now);
            Ok(answer(result, "", message))
        };
        if req.password.is_empty() {
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
            bind_dn: object.record.dn.clone(),
            password: SecretString::from(req.password),
            extra_roots: self.extra_roots.clone(),
            timeouts: self.ldap_timeouts,
        };
        let mut last = None;
        for endpoint in target.endpoints() {
            match dirsync_ldap::connect_host(&target, &endpoint).await {
                Ok(session) => {
                    session.unbind().await;
                    self.sign_in_limits.succeeded(account, address.as_str());
                    let id = object.record.anchor.to_string();
                    return Ok(answer(AuthResult::Ok, &id, "signed in"));
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
