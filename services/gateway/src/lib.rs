//! The gateway: dirsync's gRPC API (configuration, sync control, run status,
//! directory queries) plus `grpc.health.v1`, and the web admin console
//! over the same handlers (`console`).

mod accounts;
mod auth;
mod console;
mod convert;
mod directory;
mod error;
mod integrations;
mod sync;
mod tenancy;
mod test_connection;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use dirsync_bus::Bus;
use dirsync_core::{Clock, Keyring};
use dirsync_proto::api::account_service_server::AccountServiceServer;
use dirsync_proto::api::auth_service_server::AuthServiceServer;
use dirsync_proto::api::directory_service_server::DirectoryServiceServer;
use dirsync_proto::api::integration_service_server::IntegrationServiceServer;
use dirsync_proto::api::sync_service_server::SyncServiceServer;
use dirsync_store::Store;

pub use console::ConsoleConfig;
pub use error::status_of;

/// Everything the RPC handlers share.
#[derive(Clone)]
pub struct Gateway {
    pub store: Store,
    pub bus: Bus,
    /// Seals new bind passwords, opens stored ones.
    pub keys: Arc<Keyring>,
    pub clock: Arc<dyn Clock>,
    /// CA certificates trusted in Strict mode besides the system's, and
    /// LDAP timeouts: for Test Connection.
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub ldap_timeouts: dirsync_ldap::Timeouts,
    /// Rate limits of end-user sign-in.
    /// Serve gRPC server reflection (for grpcurl and the like).
    pub reflection: bool,
}

/// How long calls in flight may run on once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest request accepted, in bytes.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

impl Gateway {
    /// Serves the API on `listener` until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<IntegrationServiceServer<Gateway>>()
            .await;
        reporter.set_serving::<SyncServiceServer<Gateway>>().await;
        reporter
            .set_serving::<DirectoryServiceServer<Gateway>>()
            .await;
        reporter
            .set_serving::<AccountServiceServer<Gateway>>()
            .await;
        reporter.set_serving::<AuthServiceServer<Gateway>>().await;
        tracing::info!(?addr, reflection = self.reflection, "gateway listening");
        let reflection = if self.reflection {
            Some(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(dirsync_proto::FILE_DESCRIPTOR_SET)
                    .build_v1()?,
            )
        } else {
            None
        };
        let server = tonic::transport::Server::builder()
            // Deadlines: a client's grpc-timeout is honoured; none lasts
            // longer than this.
            .timeout(std::time::Duration::from_secs(300))
            .add_optional_service(reflection)
            .add_service(health)
            .add_service(
                IntegrationServiceServer::new(self.clone())
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(
                SyncServiceServer::new(self.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(
                AccountServiceServer::new(self.clone())
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(
                AuthServiceServer::new(self.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(
                DirectoryServiceServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            );
        // Calls in flight get a grace period; clients that keep their
        // connections open do not hold the process beyond it.
        let grace = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = server => served?,
            () = grace => tracing::warn!(
                "calls still open {SHUTDOWN_GRACE:?} after shutdown began; stopping anyway"
            ),
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Checks an account id: 1–64 of `a-z 0-9 - _`.
pub fn account_id(s: &str) -> Result<&str, Status> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(s)
    } else {
        Err(Status::invalid_argument(format!(
            "account_id: {s:?} is not an account id (1-64 characters of a-z, 0-9, '-' and '_', e.g. acme)"
        )))
    }
}

pub(crate) fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    let v = value.trim();
    if v.is_empty() {
        Err(Status::invalid_argument(format!("{field}: is required")))
    } else {
        Ok(v)
    }
}
