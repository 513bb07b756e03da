//! The admin CLI: the gRPC client of a gateway, and the commands, one
//! module per group (integrations, syncs and runs, the directory, the
//! account and sign-in, tokens and master keys on the store). Each
//! command's module makes the calls; `print` shows what comes back.

pub mod account;
pub mod directory;
pub mod integration;
pub mod keys;
pub mod print;
pub mod sync;
pub mod token;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;

use dirsync_proto::api::account_service_client::AccountServiceClient;
use dirsync_proto::api::auth_service_client::AuthServiceClient;
use dirsync_proto::api::directory_service_client::DirectoryServiceClient;
use dirsync_proto::api::integration_service_client::IntegrationServiceClient;
use dirsync_proto::api::sync_service_client::SyncServiceClient;
use dirsync_proto::api::{self, RunState};

pub use account::AccountCmd;
pub use directory::ListCmd;
pub use integration::{IntegrationCmd, IntegrationFile, LdapSchemaFile};
pub use print::{print_directory, print_integration, print_run};
pub use sync::{RemovalsCmd, SyncCmd};
pub use token::{TokenCmd, issue_token};

/// What a command ends with: success, or a failure it has said.
pub type Exit = std::process::ExitCode;

/// Where the gateway is and how to act there.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Gateway address.
    #[arg(
        long,
        env = "DIRSYNC_GATEWAY",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub gateway: String,
    /// Account to act on; empty: the API token's.
    #[arg(long, env = "DIRSYNC_ACCOUNT", default_value = "", global = true)]
    pub account: String,
    /// File holding the API token. Without it, the token is read from the
    /// environment variable DIRSYNC_TOKEN (never from a flag).
    #[arg(long, env = "DIRSYNC_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// The API token itself, when given in code rather than read.
    #[arg(skip)]
    pub token: Option<String>,
}

impl Target {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        if let Some(path) = &self.token_file {
            return read_secret(path);
        }
        std::env::var("DIRSYNC_TOKEN").map_err(|_| {
            anyhow::anyhow!(
                "no API token: set DIRSYNC_TOKEN or --token-file (create one with `dirsync token create`)"
            )
        })
    }
}

/// Adds the API token to every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Svc = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Where `dirsync token` finds the store.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    #[arg(
        long,
        env = "DIRSYNC_DATABASE_URL",
        default_value = "sqlite://.dirsync/dirsync.db"
    )]
    pub database_url: String,
    #[arg(long, env = "DIRSYNC_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
}

/// Reads a secret from a file, or standard input for '-'; one trailing
/// newline is dropped.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let mut text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the password from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

pub struct Client {
    pub account: String,
    pub auth: AuthServiceClient<Svc>,
    pub accounts: AccountServiceClient<Svc>,
    pub integrations: IntegrationServiceClient<Svc>,
    pub sync: SyncServiceClient<Svc>,
    pub directory: DirectoryServiceClient<Svc>,
}

impl Client {
    pub async fn connect(target: &Target) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(target.gateway.clone())
            .with_context(|| format!("gateway address {:?}", target.gateway))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", target.gateway))?;
        let bearer = Bearer(
            format!("Bearer {}", target.token()?.trim())
                .parse()
                .context("the API token is not valid text")?,
        );
        let with = |c: &Channel| {
            tonic::service::interceptor::InterceptedService::new(c.clone(), bearer.clone())
        };
        Ok(Self {
            account: target.account.clone(),
            auth: AuthServiceClient::new(with(&channel)),
            accounts: AccountServiceClient::new(with(&channel)),
            integrations: IntegrationServiceClient::new(with(&channel)),
            sync: SyncServiceClient::new(with(&channel)),
            directory: DirectoryServiceClient::new(with(&channel)),
        })
    }

    /// Follows a run until it settles, drawing its progress. A watch the
    /// gateway ends early (its deadline) is opened again.
    pub async fn wait(&mut self, run_id: &str) -> anyhow::Result<api::Run> {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        loop {
            let mut updates = self
                .sync
                .watch_run(api::GetRunRequest {
                    account_id: self.account.clone(),
                    run_id: run_id.to_owned(),
                })
                .await?
                .into_inner();
            let mut last = None;
            loop {
                match updates.message().await {
                    Ok(Some(run)) => {
                        let state = RunState::try_from(run.state).unwrap_or(RunState::Unspecified);
                        let read = run.counts.map(|c| c.collected).unwrap_or_default();
                        bar.set_message(format!(
                            "run {} {} ({read} objects read)",
                            print::short(&run.id),
                            print::state_name(state)
                        ));
                        last = Some(run);
                    }
                    Ok(None) => break,
                    Err(s)
                        if s.code() == tonic::Code::Cancelled
                            || s.code() == tonic::Code::DeadlineExceeded =>
                    {
                        break;
                    }
                    Err(s) => return Err(s.into()),
                }
            }
            let settled = last.as_ref().is_some_and(|r| {
                !matches!(
                    RunState::try_from(r.state),
                    Ok(RunState::Queued | RunState::Collecting | RunState::Reconciling)
                )
            });
            if settled {
                bar.finish_and_clear();
                return last.context("the gateway sent no state for the run");
            }
        }
    }
}

/// Opens the store `dirsync token` works on.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<dirsync_store::Store> {
    let url = match &args.database_url_file {
        Some(p) => read_secret(p)?,
        None => args.database_url.clone(),
    };
    Ok(dirsync_store::connect(url.trim()).await?)
}
