//! The admin CLI: talks to a gateway over gRPC.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tonic::transport::Channel;

use dirsync_proto::api::account_service_client::AccountServiceClient;
use dirsync_proto::api::auth_service_client::AuthServiceClient;
use dirsync_proto::api::directory_service_client::DirectoryServiceClient;
use dirsync_proto::api::integration_service_client::IntegrationServiceClient;
use dirsync_proto::api::sync_service_client::SyncServiceClient;
use dirsync_proto::api::{self, RunState};

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

#[derive(Debug, clap::Subcommand)]
pub enum IntegrationCmd {
    /// Create an integration from a TOML file (see deploy/local/integration.example.toml).
    Create {
        /// TOML file with the settings.
        #[arg(long)]
        file: PathBuf,
        /// File holding the bind password ('-': standard input). Overrides
        /// `password_file` in the TOML file.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Replace an integration's settings from a TOML file; the stored
    /// password is kept unless a new one is given.
    Update {
        integration: String,
        #[arg(long)]
        file: PathBuf,
        /// A new bind password ('-': standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List the account's integrations.
    List,
    /// Show one integration.
    Get { integration: String },
    /// Delete an integration (its objects stay, unmanaged).
    Delete { integration: String },
    /// Test Connection: hostname, connectivity, certificate,
    /// authentication and sample addresses, with hints.
    Test {
        /// A saved integration (id or name).
        integration: Option<String>,
        /// Test settings not saved yet, from a TOML file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The bind password for --file ('-': standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SyncCmd {
    /// Start a sync of one integration.
    Now {
        integration: String,
        /// Wait for the run to finish, showing its progress.
        #[arg(long)]
        wait: bool,
        /// Read only what changed since the last applied run (AD: DirSync),
        /// not the whole Root DN.
        #[arg(long)]
        delta: bool,
    },
    /// A dry run: show what a sync would change, change nothing.
    Preview { integration: String },
    /// Start a sync of every enabled integration of the account.
    All {
        /// Wait for every run to finish.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Create an API token for an account; printed once.
    Create {
        #[arg(long)]
        account: String,
        /// What the token is for, e.g. "ci" or "console".
        #[arg(long)]
        name: String,
    },
    /// List an account's tokens (never their secrets).
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke a token.
    Revoke {
        #[arg(long)]
        account: String,
        id: String,
    },
}

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

#[derive(Debug, clap::Subcommand)]
pub enum AccountCmd {
    /// Show the account's time zone and schedule.
    Show,
    /// Set the time zone and/or the default times of scheduled syncs.
    Set {
        /// IANA time zone, e.g. Europe/London.
        #[arg(long)]
        time_zone: Option<String>,
        /// Times of day, e.g. 08:00,13:00,23:00.
        #[arg(long)]
        schedule: Option<String>,
        /// End users sign in with their AD password (the LDAP directory
        /// connector of the authentication profile).
        #[arg(long)]
        ldap_sign_in: Option<bool>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum RemovalsCmd {
    /// List the removals a blocked run holds.
    List { run: String },
    /// Apply exactly the removals a blocked run holds.
    Approve {
        run: String,
        /// Refuse unless the run holds exactly this many removals (the
        /// number you reviewed).
        #[arg(long)]
        expect: Option<u64>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ListCmd {
    /// List them.
    List,
}

/// The settings file of `integration create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub host: String,
    #[serde(default)]
    pub alternate_host: String,
    #[serde(default)]
    pub port: u32,
    pub encrypt: Option<bool>,
    /// "strict" or "relaxed".
    pub encryption_mode: Option<String>,
    pub user_dn: String,
    pub root_dn: String,
    /// File holding the bind password.
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub acknowledge_disabled_accounts: bool,
    #[serde(default)]
    pub filter_email_domains: String,
    #[serde(default)]
    pub include_contacts: bool,
    #[serde(default)]
    pub maximum_sync_deletions: i64,
    #[serde(default)]
    pub delete_users: bool,
    pub enabled: Option<bool>,
    /// Collectors of this partition take the jobs; empty: the Root DN's domain.
    #[serde(default)]
    pub partition: String,
    /// Own times of day, e.g. "06:00,18:00"; empty: the account's.
    #[serde(default)]
    pub schedule: String,
    /// Minutes between delta syncs; absent: 5; 0: none.
    pub delta_interval_minutes: Option<u32>,
    /// Active Directory: "dirsync" (the default; uSNChanged polling where
    /// the DC refuses DirSync) or "usn_changed".
    pub delta_method: Option<String>,
    /// With encrypt = false: accept that binds send passwords in clear.
    #[serde(default)]
    pub allow_insecure_bind: bool,
    /// "active_directory" (the default) or "ldap" (OpenLDAP and the like).
    #[serde(default, rename = "type")]
    pub directory_type: Option<String>,
    /// The mapping of a "ldap" directory; absent: the defaults.
    pub ldap_schema: Option<LdapSchemaFile>,
}

/// `[ldap_schema]` of a settings file; see `LdapSchema` in the API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSchemaFile {
    #[serde(default)]
    pub user_class: String,
    #[serde(default)]
    pub group_class: String,
    #[serde(default)]
    pub contact_class: String,
    pub disabled_attribute: Option<String>,
    #[serde(default)]
    pub disabled_values: Vec<String>,
    /// Property → attribute, e.g. `aliases = "proxyAddresses"`.
    #[serde(default)]
    pub attributes: std::collections::HashMap<String, String>,
}

impl IntegrationFile {
    /// Reads and checks a settings file; unknown keys are refused.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn to_api(&self) -> anyhow::Result<api::IntegrationSettings> {
        let mode = match self.encryption_mode.as_deref() {
            None => api::EncryptionMode::Unspecified,
            Some("strict") => api::EncryptionMode::Strict,
            Some("relaxed") => api::EncryptionMode::Relaxed,
            Some(other) => bail!("encryption_mode: {other:?} is not strict or relaxed"),
        };
        let delta_method = match self.delta_method.as_deref() {
            None => api::DeltaMethod::Unspecified,
            Some("dirsync") => api::DeltaMethod::Dirsync,
            Some("usn_changed") => api::DeltaMethod::UsnChanged,
            Some(other) => bail!("delta_method: {other:?} is not dirsync or usn_changed"),
        };
        let directory_type = match self.directory_type.as_deref() {
            None | Some("active_directory") => api::DirectoryType::ActiveDirectory,
            Some("ldap") => api::DirectoryType::Ldap,
            Some(other) => bail!("type: {other:?} is not active_directory or ldap"),
        };
        Ok(api::IntegrationSettings {
            name: self.name.clone(),
            description: self.description.clone(),
            r#type: directory_type as i32,
            ldap_schema: self.ldap_schema.as_ref().map(|m| api::LdapSchema {
                user_class: m.user_class.clone(),
                group_class: m.group_class.clone(),
                contact_class: m.contact_class.clone(),
                disabled_attribute: m.disabled_attribute.clone(),
                disabled_values: m.disabled_values.clone(),
                attributes: m.attributes.clone(),
            }),
            host: self.host.clone(),
            alternate_host: self.alternate_host.clone(),
            encrypt: self.encrypt,
            encryption_mode: mode as i32,
            port: self.port,
            user_dn: self.user_dn.clone(),
            root_dn: self.root_dn.clone(),
            acknowledge_disabled_accounts: self.acknowledge_disabled_accounts,
            filter_email_domains: self.filter_email_domains.clone(),
            include_contacts: self.include_contacts,
            maximum_sync_deletions: self.maximum_sync_deletions,
            delete_users: self.delete_users,
            enabled: self.enabled,
            partition: self.partition.clone(),
            schedule: self.schedule.clone(),
            delta_interval_minutes: self.delta_interval_minutes,
            delta_method: delta_method as i32,
            allow_insecure_bind: self.allow_insecure_bind,
        })
    }
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
                            short(&run.id),
                            state_name(state)
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

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub fn state_name(s: RunState) -> &'static str {
    match s {
        RunState::Unspecified => "unknown",
        RunState::Queued => "queued",
        RunState::Collecting => "collecting",
        RunState::Reconciling => "reconciling",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Blocked => "blocked",
    }
}

pub fn print_run(run: &api::Run) {
    let c = run.counts.unwrap_or_default();
    let state = RunState::try_from(run.state).unwrap_or(RunState::Unspecified);
    let kind = match api::RunKind::try_from(run.kind) {
        Ok(api::RunKind::Delta) => "delta",
        _ => "full",
    };
    println!(
        "{}  {:<11} {kind:<5}  collected {:>5}  added {:>5}  updated {:>5}  removed {:>5}  unchanged {:>5}  {}",
        run.id,
        state_name(state),
        c.collected,
        c.added,
        c.updated,
        c.removed,
        c.unchanged,
        run.host
    );
    if let (Some(from), Some(to)) = (&run.created_at, &run.finished_at) {
        let ms = (to.seconds - from.seconds) * 1000 + i64::from(to.nanos - from.nanos) / 1_000_000;
        println!(
            "  took {:.3}s from the request to the end",
            ms as f64 / 1000.0
        );
    }
    if !run.error.is_empty() {
        println!("  error: {}", run.error);
    }
    if !run.full_reason.is_empty() {
        println!("  read in full: {}", run.full_reason);
    }
    if c.pending > 0 {
        println!(
            "  {} removals wait for approval: dirsync removals list {}",
            c.pending, run.id
        );
    }
    if !run.hold_reason.is_empty() {
        println!("  held: {}", run.hold_reason);
    }
    for w in &run.warnings {
        println!("  warning: {w}");
    }
}

pub fn print_account(a: &api::Account) {
    println!(
        "{}  time zone {}  schedule {}  AD password sign-in {}",
        a.id,
        a.time_zone,
        a.schedule,
        if a.ldap_sign_in { "on" } else { "off" }
    );
}

pub fn print_changes(changes: &[api::Change]) {
    for c in changes {
        let op = api::ChangeOperation::try_from(c.operation)
            .map(|o| {
                o.as_str_name()
                    .trim_start_matches("CHANGE_OPERATION_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        println!("{op:<8} {}  ({})", c.dn, c.reason);
        for f in &c.fields {
            println!("           {}: {:?} -> {:?}", f.field, f.old, f.new);
        }
    }
}

/// Prints one Test Connection step as it arrives; returns whether it failed.
pub fn print_step(s: &api::TestStep) -> bool {
    let check = api::TestCheck::try_from(s.check)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("TEST_CHECK_")
                .replace('_', " ")
                .to_lowercase()
        })
        .unwrap_or_default();
    let (mark, failed) = match api::TestOutcome::try_from(s.outcome) {
        Ok(api::TestOutcome::Passed) => ("✓", false),
        Ok(api::TestOutcome::Warning) => ("!", false),
        Ok(api::TestOutcome::Skipped) => ("-", false),
        _ => ("✗", true),
    };
    let host = if s.host.is_empty() {
        String::new()
    } else {
        format!(" [{}]", s.host)
    };
    println!("{mark} {check}{host}: {} ({} ms)", s.detail, s.elapsed_ms);
    for sample in &s.samples {
        println!("    {sample}");
    }
    if !s.hint.is_empty() {
        println!("    hint: {}", s.hint);
    }
    failed
}

pub fn print_pending(removals: &[api::PendingRemoval]) {
    println!("Pending removals ({})", removals.len());
    for r in removals {
        let o = r.object.clone().unwrap_or_default();
        let action = match api::RemovalAction::try_from(r.action) {
            Ok(api::RemovalAction::Delete) => "delete",
            Ok(api::RemovalAction::Demote) => "demote",
            _ => "?",
        };
        let address = if o.primary_address.is_empty() {
            "-"
        } else {
            &o.primary_address
        };
        println!("  {action:<7} {:<24} {address}  {}", o.display_name, o.dn);
    }
}

fn when(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

pub fn print_integration(i: &api::Integration) {
    print_integration_line(i);
    if let Some(st) = &i.status {
        let last = st.last_run.as_ref().map_or("none".to_owned(), |r| {
            state_name(RunState::try_from(r.state).unwrap_or(RunState::Unspecified)).to_owned()
        });
        let deltas = match i.settings.as_ref().and_then(|s| s.delta_interval_minutes) {
            Some(0) => "off".to_owned(),
            Some(n) => format!("every {n} min"),
            None => "every 5 min".to_owned(),
        };
        let polls = i.settings.as_ref().is_some_and(|s| {
            api::DeltaMethod::try_from(s.delta_method) == Ok(api::DeltaMethod::UsnChanged)
        });
        let deltas = if polls && deltas != "off" {
            format!("{deltas} (uSNChanged polling)")
        } else {
            deltas
        };
        println!(
            "  last run {last}; last success {}; next run {}; delta syncs {deltas}",
            when(&st.last_success_at),
            when(&st.next_run_at)
        );
        if st.destructive_changes_paused {
            println!("  destructive changes paused: {}", st.paused_reason);
        }
    }
}

fn print_integration_line(i: &api::Integration) {
    let s = i.settings.clone().unwrap_or_default();
    let enc = match (s.encrypt, api::EncryptionMode::try_from(s.encryption_mode)) {
        (Some(false), _) => "none",
        (_, Ok(api::EncryptionMode::Relaxed)) => "relaxed",
        _ => "strict",
    };
    println!(
        "{}  {:<24} {}:{} ({enc})  root {}{}",
        i.id,
        s.name,
        s.host,
        s.port,
        s.root_dn,
        if s.enabled == Some(false) {
            "  [disabled]"
        } else {
            ""
        }
    );
}

/// Prints a directory listing: users, groups or contacts.
pub fn print_objects(title: &str, objects: &[api::DirectoryObject], all: &[api::DirectoryObject]) {
    println!("{title} ({})", objects.len());
    for o in objects {
        let mut flags = Vec::new();
        if o.disabled {
            flags.push("disabled");
        }
        if !o.managed {
            flags.push("unmanaged");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        };
        let address = if o.primary_address.is_empty() {
            "-"
        } else {
            &o.primary_address
        };
        println!("  {:<24} {address}{flags}", o.display_name);
        if !o.aliases.is_empty() {
            println!("  {:<24}   aliases: {}", "", o.aliases.join(", "));
        }
        if o.kind == api::ObjectKind::Group as i32 {
            let mut names: Vec<&str> = o
                .member_ids
                .iter()
                .map(|id| {
                    all.iter()
                        .find(|x| &x.id == id)
                        .map(|x| x.display_name.as_str())
                        .unwrap_or(id.as_str())
                })
                .collect();
            names.sort_unstable();
            println!("  {:<24}   members: {}", "", names.join(", "));
        }
    }
}

/// Fetches users, groups and contacts and prints them.
pub async fn print_directory(client: &mut Client) -> anyhow::Result<()> {
    let req = || api::ListObjectsRequest {
        account_id: client.account.clone(),
        ..Default::default()
    };
    let users = client
        .directory
        .list_users(req())
        .await?
        .into_inner()
        .objects;
    let groups = client
        .directory
        .list_groups(req())
        .await?
        .into_inner()
        .objects;
    let contacts = client
        .directory
        .list_contacts(req())
        .await?
        .into_inner()
        .objects;
    let all: Vec<api::DirectoryObject> = users
        .iter()
        .chain(&groups)
        .chain(&contacts)
        .cloned()
        .collect();
    print_objects("Users", &users, &all);
    print_objects("Groups", &groups, &all);
    print_objects("Contacts", &contacts, &all);
    Ok(())
}

/// Creates an API token for `account` in the store; returns it (shown once).
pub async fn issue_token(
    store: &dirsync_store::Store,
    account: &str,
    name: &str,
    now: dirsync_core::UnixMillis,
) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    dirsync_gateway::account_id(account).map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    store.ensure_account(account, now).await?;
    let new = dirsync_core::token::generate();
    store
        .create_token(&dirsync_store::TokenRecord {
            id: new.id.clone(),
            account_id: account.to_owned(),
            name: name.to_owned(),
            secret_hash: new.secret_hash.clone(),
            created_at: now,
            revoked_at: None,
        })
        .await?;
    Ok(new.token.expose_secret().to_owned())
}

/// Opens the store `dirsync token` works on.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<dirsync_store::Store> {
    let url = match &args.database_url_file {
        Some(p) => read_secret(p)?,
        None => args.database_url.clone(),
    };
    Ok(dirsync_store::connect(url.trim()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dirsync_core::{DirectorySchema, IntegrationSettings};

    #[test]
    fn the_example_settings_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/local/integration.example.toml");
        let file = IntegrationFile::load(&path).expect("the example parses");
        let s = IntegrationSettings::from_api(&file.to_api().expect("converts")).expect("valid");
        assert_eq!(s.directory, DirectorySchema::ActiveDirectory);
    }

    #[test]
    fn an_ldap_settings_file_maps_attributes() {
        let text = r#"
            name = "OpenLDAP"
            type = "ldap"
            host = "ldap.example.com"
            user_dn = "cn=dirsync,dc=example,dc=com"
            root_dn = "ou=people,dc=example,dc=com"
            [ldap_schema]
            disabled_attribute = "nsAccountLock"
            disabled_values = ["TRUE"]
            [ldap_schema.attributes]
            aliases = "proxyAddresses"
        "#;
        let file: IntegrationFile = toml::from_str(text).expect("parses");
        let s = IntegrationSettings::from_api(&file.to_api().expect("converts")).expect("valid");
        let DirectorySchema::Ldap(m) = s.directory else {
            panic!("an LDAP directory");
        };
        assert_eq!(m.attribute("aliases"), Some("proxyAddresses"));
        assert_eq!(m.attribute("mail"), Some("mail"), "defaults fill the rest");
        assert_eq!(m.disabled_values, ["TRUE"]);

        let bad: IntegrationFile =
            toml::from_str(&text.replace("type = \"ldap\"", "type = \"novell\"")).expect("parses");
        assert!(
            bad.to_api()
                .expect_err("unknown type")
                .to_string()
                .contains("novell")
        );
    }
}
