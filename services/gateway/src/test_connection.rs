//! Test Connection, streamed step by step.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use secrecy::SecretString;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use dirsync_core::secret::password_aad;
use dirsync_ldap::Target;
use dirsync_ldap::diagnose::{self, Check, Outcome, Step};
use dirsync_proto::api;
use dirsync_store::IntegrationRecord;

use crate::Gateway;
use crate::error::{invalid, status_of};

pub type TestStream = Pin<Box<dyn Stream<Item = Result<api::TestStep, Status>> + Send>>;

fn step(s: Step) -> api::TestStep {
    api::TestStep {
        check: match s.check {
            Check::Hostname => api::TestCheck::Hostname,
            Check::Connectivity => api::TestCheck::Connectivity,
            Check::Certificate => api::TestCheck::Certificate,
            Check::Authentication => api::TestCheck::Authentication,
            Check::SampleAddresses => api::TestCheck::SampleAddresses,
            Check::DeltaSync => api::TestCheck::DeltaSync,
        } as i32,
        host: s.host,
        outcome: match s.outcome {
            Outcome::Passed => api::TestOutcome::Passed,
            Outcome::Warning => api::TestOutcome::Warning,
            Outcome::Failed => api::TestOutcome::Failed,
            Outcome::Skipped => api::TestOutcome::Skipped,
        } as i32,
        detail: s.detail,
        hint: s.hint,
        elapsed_ms: u32::try_from(s.elapsed.as_millis()).unwrap_or(u32::MAX),
        samples: s.samples,
    }
}

impl Gateway {
    pub(crate) async fn test_connection_stream(
        &self,
        request: tonic::Request<api::TestConnectionRequest>,
    ) -> Result<TestStream, Status> {
        let (account, req) = self.authorize(request).await?;
        let (settings, password) = match (&req.settings, req.integration.trim()) {
            (Some(s), _) => {
                let settings = dirsync_convert::settings_from_api(s).map_err(|e| invalid(&e))?;
                let password = match (req.password, req.integration.trim()) {
                    (Some(p), _) => SecretString::from(p),
                    (None, "") => {
                        return Err(Status::invalid_argument(
                            "password: is required to test unsaved settings",
                        ));
                    }
                    (None, which) => {
                        let rec = self
                            .store
                            .get_integration(&account, which)
                            .await
                            .map_err(status_of)?;
                        self.stored_password(&rec)?
                    }
                };
                (settings, password)
            }
            (None, "") => {
                return Err(Status::invalid_argument(
                    "integration or settings: give a saved integration or the settings to test",
                ));
            }
            (None, which) => {
                let rec = self
                    .store
                    .get_integration(&account, which)
                    .await
                    .map_err(status_of)?;
                let password = match req.password {
                    Some(p) => SecretString::from(p),
                    None => self.stored_password(&rec)?,
                };
                (rec.settings, password)
            }
        };
        let target = Target {
            host: settings.host.clone(),
            alternate_host: settings.alternate_host.clone(),
            port: settings.port,
            encryption: settings.encryption,
            allow_insecure_bind: settings.allow_insecure_bind,
            bind_dn: settings.user_dn.to_string(),
            password,
            extra_roots: self.extra_roots.clone(),
            timeouts: self.ldap_timeouts,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let now_secs = self.clock.now() / 1000;
        let root_dn = settings.root_dn.clone();
        let directory = settings.directory.clone();
        let delta_method = settings.delta_method;
        tokio::spawn(async move {
            diagnose::run(&target, &root_dn, &directory, delta_method, now_secs, tx).await
        });
        Ok(Box::pin(ReceiverStream::new(rx).map(|s| Ok(step(s)))))
    }

    /// The saved integration's bind password, opened.
    fn stored_password(&self, rec: &IntegrationRecord) -> Result<SecretString, Status> {
        let sealed = rec
            .password
            .clone()
            .ok_or_else(|| Status::failed_precondition("the integration has no stored password"))?;
        self.keys
            .open(&sealed, &password_aad(&rec.account_id, &rec.id))
            .map_err(|e| {
                tracing::error!(error = %e, "a stored password does not open");
                Status::internal(
                    "the stored password cannot be decrypted with the loaded master keys",
                )
            })
    }
}
