//! IntegrationService: create, read, update and delete integrations.

use tonic::{Request, Response, Status};

use dirsync_core::secret::password_aad;
use dirsync_core::{IntegrationSettings, SealedSecret};
use dirsync_proto::api::{self, integration_service_server::IntegrationService};
use dirsync_store::IntegrationRecord;

use crate::error::{invalid, status_of};
use crate::{Gateway, convert, required};

/// Seals a bind password for its integration. The plaintext lives only for
/// the duration of this call.
fn seal_password(
    gw: &Gateway,
    account: &str,
    integration: &str,
    password: String,
) -> Result<SealedSecret, Status> {
    if password.is_empty() {
        return Err(Status::invalid_argument(
            "password: is required (the bind account's password)",
        ));
    }
    let secret = secrecy::SecretString::from(password);
    gw.keys
        .seal(&secret, &password_aad(account, integration))
        .map_err(|e| {
            tracing::error!(error = %e, "sealing a password failed");
            Status::internal("the password could not be encrypted")
        })
}

/// A store conflict on create or update is the name: say so by the field.
fn name_taken(e: dirsync_store::StoreError) -> Status {
    match e {
        dirsync_store::StoreError::Conflict(what) => {
            Status::already_exists(format!("settings.name: {what}"))
        }
        e => status_of(e),
    }
}

fn settings(s: Option<&api::IntegrationSettings>) -> Result<IntegrationSettings, Status> {
    let s = s.ok_or_else(|| Status::invalid_argument("settings: is required"))?;
    dirsync_convert::settings_from_api(s).map_err(|errors| invalid(&errors))
}

impl Gateway {
    /// ALREADY_EXISTS, naming the field, when another integration of the
    /// account (not `except`) has this name: what creating or updating
    /// would answer, for a request that only validates.
    async fn name_is_free(
        &self,
        account: &str,
        name: &str,
        except: Option<&str>,
    ) -> Result<(), Status> {
        match self.store.get_integration(account, name).await {
            Ok(other) if Some(other.id.as_str()) != except && other.settings.name == name => {
                Err(Status::already_exists(format!(
                    "settings.name: the account already has an integration named {name:?}"
                )))
            }
            Ok(_) | Err(dirsync_store::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(status_of(e)),
        }
    }
}

#[tonic::async_trait]
impl IntegrationService for Gateway {
    type TestConnectionStream = crate::test_connection::TestStream;

    async fn test_connection(
        &self,
        request: Request<api::TestConnectionRequest>,
    ) -> Result<Response<Self::TestConnectionStream>, Status> {
        Ok(Response::new(self.test_connection_stream(request).await?))
    }

    async fn create_integration(
        &self,
        request: Request<api::CreateIntegrationRequest>,
    ) -> Result<Response<api::Integration>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let settings = settings(req.settings.as_ref())?;
        let id = uuid::Uuid::new_v4().to_string();
        let password = seal_password(self, account, &id, req.password)?;
        let now = self.clock.now();
        let rec = IntegrationRecord {
            id,
            account_id: account.to_owned(),
            settings,
            password: Some(password),
            created_at: now,
            updated_at: now,
        };
        if req.validate_only {
            self.name_is_free(account, &rec.settings.name, None).await?;
            return Ok(Response::new(convert::integration(&rec)));
        }
        self.store
            .ensure_account(account, now)
            .await
            .map_err(status_of)?;
        self.store
            .create_integration(&rec)
            .await
            .map_err(name_taken)?;
        tracing::info!(account, integration = %rec.id, name = %rec.settings.name, "integration created");
        Ok(Response::new(convert::integration(&rec)))
    }

    async fn get_integration(
        &self,
        request: Request<api::GetIntegrationRequest>,
    ) -> Result<Response<api::Integration>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let which = required("integration", &req.integration)?;
        let rec = self
            .store
            .get_integration(account, which)
            .await
            .map_err(status_of)?;
        let mut out = convert::integration(&rec);
        out.status = Some(self.status(&rec, self.clock.now()).await?);
        Ok(Response::new(out))
    }

    async fn list_integrations(
        &self,
        request: Request<api::ListIntegrationsRequest>,
    ) -> Result<Response<api::ListIntegrationsResponse>, Status> {
        let (account, _) = self.authorize(request).await?;
        let account = account.as_str();
        let list = self
            .store
            .list_integrations(account)
            .await
            .map_err(status_of)?;
        let now = self.clock.now();
        let mut integrations = Vec::with_capacity(list.len());
        for rec in &list {
            let mut out = convert::integration(rec);
            out.status = Some(self.status(rec, now).await?);
            integrations.push(out);
        }
        Ok(Response::new(api::ListIntegrationsResponse {
            integrations,
        }))
    }

    async fn update_integration(
        &self,
        request: Request<api::UpdateIntegrationRequest>,
    ) -> Result<Response<api::Integration>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let which = required("integration", &req.integration)?;
        let settings = settings(req.settings.as_ref())?;
        let mut rec = self
            .store
            .get_integration(account, which)
            .await
            .map_err(status_of)?;
        if let Some(password) = req.password {
            rec.password = Some(seal_password(self, account, &rec.id, password)?);
        } else if let Some(kept) = &rec.password
            && kept.key_id != self.keys.id()
        {
            // A kept password is written back under the current key: an
            // edit racing `dirsync key rotate` never restores the old seal.
            rec.password = Some(
                self.keys
                    .reseal(kept, &password_aad(account, &rec.id))
                    .map_err(|e| {
                        tracing::error!(error = %e, "re-sealing a kept password failed");
                        Status::internal(
                            "the stored password cannot be decrypted with the loaded master keys",
                        )
                    })?,
            );
        }
        rec.settings = settings;
        rec.updated_at = self.clock.now();
        if req.validate_only {
            self.name_is_free(account, &rec.settings.name, Some(&rec.id))
                .await?;
            return Ok(Response::new(convert::integration(&rec)));
        }
        self.store
            .update_integration(&rec)
            .await
            .map_err(name_taken)?;
        tracing::info!(account, integration = %rec.id, "integration updated");
        Ok(Response::new(convert::integration(&rec)))
    }

    async fn delete_integration(
        &self,
        request: Request<api::DeleteIntegrationRequest>,
    ) -> Result<Response<api::DeleteIntegrationResponse>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let which = required("integration", &req.integration)?;
        let rec = self
            .store
            .get_integration(account, which)
            .await
            .map_err(status_of)?;
        self.store
            .delete_integration(account, &rec.id, self.clock.now())
            .await
            .map_err(status_of)?;
        tracing::info!(account, integration = %rec.id, "integration deleted");
        Ok(Response::new(api::DeleteIntegrationResponse {}))
    }
}
