//! `dirsync`: the service (any combination of roles) and its admin CLI.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use dirsync::cli::{
    self, AccountCmd, Client, IntegrationCmd, ListCmd, RemovalsCmd, StoreArgs, SyncCmd, Target,
    TokenCmd,
};
use dirsync::demo::{self, DemoArgs};
use dirsync::keys::KeyCmd;
use dirsync::serve::{self, ServeConfig};
use dirsync_core::Clock;
use dirsync_proto::api;

#[derive(Debug, Parser)]
#[command(
    name = "dirsync",
    version,
    about = "Active Directory → directory store synchronization"
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// Log format: text or json.
    #[arg(
        long,
        env = "DIRSYNC_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run dirsync's roles (gateway, scheduler, collector, reconciler).
    Serve(Box<ServeConfig>),
    /// Sync a directory with every role in this process and print the result.
    Demo(DemoArgs),
    /// API tokens (administration on the store itself).
    Token {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: TokenCmd,
    },
    /// Master key management.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The account's time zone and schedule.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage integrations.
    #[command(subcommand)]
    Integration(IntegrationCmd),
    /// Start syncs.
    #[command(subcommand)]
    Sync(SyncCmd),
    /// Show an integration's runs, newest first.
    Runs {
        integration: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The change log: what runs did to objects, and why.
    Changes {
        /// Changes of this run.
        #[arg(long)]
        run: Option<String>,
        /// Changes of this object (its id).
        #[arg(long)]
        object: Option<String>,
        /// Changes of the object that owns this address.
        #[arg(long)]
        address: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Removals held by the deletion guard: review and approve.
    #[command(subcommand)]
    Removals(RemovalsCmd),
    /// Directory users.
    #[command(subcommand)]
    Users(ListCmd),
    /// Directory groups and their members.
    #[command(subcommand)]
    Groups(ListCmd),
    /// Directory contacts.
    #[command(subcommand)]
    Contacts(ListCmd),
    /// Find the object that owns an email address.
    Lookup { address: String },
    /// One run in full.
    Run { run: String },
    /// Check an end user's AD password the way applications do (the
    /// account's LDAP sign-in must be on).
    SignIn {
        address: String,
        /// File holding the password ('-': standard input).
        #[arg(long)]
        password_file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // TOKIO_WORKER_THREADS, when set, decides.
    if let Command::Serve(cfg) = &cli.command
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
        && let Some(n) = serve::worker_threads(&cfg.roles)
    {
        runtime.worker_threads(n);
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(main_in_runtime(cli)),
        Err(e) => {
            eprintln!("error: the async runtime cannot start: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn main_in_runtime(cli: Cli) -> std::process::ExitCode {
    let service = match &cli.command {
        Command::Serve(cfg) => Some(format!(
            "dirsync-{}",
            cfg.roles
                .iter()
                .map(|r| format!("{r:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join("-")
        )),
        _ => None,
    };
    let mut telemetry = dirsync_telemetry::init(&cli.log_format, service.as_deref());
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    // Traces are flushed last.
    telemetry.shutdown();
    code
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let ok = std::process::ExitCode::SUCCESS;
    let account = cli.target.account.clone();
    match cli.command {
        Command::Serve(cfg) => {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            serve::serve(*cfg, shutdown).await?;
            return Ok(ok);
        }
        Command::Demo(args) => {
            demo::run(args).await?;
            return Ok(ok);
        }
        Command::Token { store, command } => {
            let store = cli::open_store(&store).await?;
            match command {
                TokenCmd::Create { account, name } => {
                    let token =
                        cli::issue_token(&store, &account, &name, dirsync_core::SystemClock.now())
                            .await?;
                    eprintln!("API token for account {account} ({name}); it is shown only now:");
                    println!("{token}");
                }
                TokenCmd::List { account } => {
                    for t in store.list_tokens(&account).await? {
                        println!(
                            "{}  {:<20} {}",
                            t.id,
                            t.name,
                            if t.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        );
                    }
                }
                TokenCmd::Revoke { account, id } => {
                    store
                        .revoke_token(&account, &id, dirsync_core::SystemClock.now())
                        .await?;
                    println!("revoked {id}");
                }
            }
            return Ok(ok);
        }
        Command::Key(cmd) => return dirsync::keys::run(cmd).await,
        _ => {}
    }
    let mut client = Client::connect(&cli.target).await?;
    match cli.command {
        Command::Integration(IntegrationCmd::Create {
            file,
            password_file,
        }) => {
            let spec = cli::IntegrationFile::load(&file)?;
            let pw_path = password_file
                .or(spec.password_file.clone())
                .context("give the bind password with --password-file FILE or password_file in the TOML file")?;
            let created = client
                .integrations
                .create_integration(api::CreateIntegrationRequest {
                    account_id: account,
                    settings: Some(spec.to_api()?),
                    password: cli::read_secret(&pw_path)?,
                    ..Default::default()
                })
                .await?
                .into_inner();
            cli::print_integration(&created);
        }
        Command::Integration(IntegrationCmd::Test {
            integration,
            file,
            password_file,
        }) => {
            let (settings, password) = match &file {
                Some(file) => {
                    let spec = cli::IntegrationFile::load(file)?;
                    let pw = password_file
                        .clone()
                        .or(spec.password_file.clone())
                        .map(|p| cli::read_secret(&p))
                        .transpose()?;
                    (Some(spec.to_api()?), pw)
                }
                None => (
                    None,
                    password_file.map(|p| cli::read_secret(&p)).transpose()?,
                ),
            };
            let mut steps = client
                .integrations
                .test_connection(api::TestConnectionRequest {
                    account_id: account,
                    integration: integration.unwrap_or_default(),
                    settings,
                    password,
                })
                .await?
                .into_inner();
            let mut failed = false;
            while let Some(step) = steps.message().await? {
                failed |= cli::print_step(&step);
            }
            if failed {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Integration(IntegrationCmd::Update {
            integration,
            file,
            password_file,
        }) => {
            let spec = cli::IntegrationFile::load(&file)?;
            let password = password_file
                .or(spec.password_file.clone())
                .map(|p| cli::read_secret(&p))
                .transpose()?;
            let updated = client
                .integrations
                .update_integration(api::UpdateIntegrationRequest {
                    account_id: account,
                    integration,
                    settings: Some(spec.to_api()?),
                    password,
                    ..Default::default()
                })
                .await?
                .into_inner();
            cli::print_integration(&updated);
        }
        Command::Run { run } => {
            let run = client
                .sync
                .get_run(api::GetRunRequest {
                    account_id: account,
                    run_id: run,
                })
                .await?
                .into_inner();
            cli::print_run(&run);
        }
        Command::SignIn {
            address,
            password_file,
        } => {
            let answer = client
                .auth
                .authenticate(api::AuthenticateRequest {
                    account_id: account,
                    address,
                    password: cli::read_secret(&password_file)?,
                })
                .await?
                .into_inner();
            let result = api::AuthResult::try_from(answer.result)
                .map(|r| {
                    r.as_str_name()
                        .trim_start_matches("AUTH_RESULT_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            println!("{result}: {}", answer.message);
            if answer.result != api::AuthResult::Ok as i32 {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Integration(IntegrationCmd::List) => {
            let list = client
                .integrations
                .list_integrations(api::ListIntegrationsRequest {
                    account_id: account,
                })
                .await?
                .into_inner();
            for i in &list.integrations {
                cli::print_integration(i);
            }
        }
        Command::Integration(IntegrationCmd::Get { integration }) => {
            let i = client
                .integrations
                .get_integration(api::GetIntegrationRequest {
                    account_id: account,
                    integration,
                })
                .await?
                .into_inner();
            cli::print_integration(&i);
        }
        Command::Integration(IntegrationCmd::Delete { integration }) => {
            client
                .integrations
                .delete_integration(api::DeleteIntegrationRequest {
                    account_id: account,
                    integration: integration.clone(),
                })
                .await?;
            println!("deleted {integration}");
        }
        Command::Sync(SyncCmd::Now {
            integration,
            wait,
            delta,
        }) => {
            let run = client
                .sync
                .sync_now(api::SyncNowRequest {
                    account_id: account,
                    integration,
                    kind: if delta {
                        api::RunKind::Delta
                    } else {
                        api::RunKind::Full
                    } as i32,
                })
                .await?
                .into_inner();
            let run = if wait {
                client.wait(&run.id).await?
            } else {
                run
            };
            cli::print_run(&run);
            if wait && run.state != api::RunState::Succeeded as i32 {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Account(AccountCmd::Show) => {
            let a = client
                .accounts
                .get_account(api::GetAccountRequest {
                    account_id: account,
                })
                .await?
                .into_inner();
            cli::print_account(&a);
        }
        Command::Account(AccountCmd::Set {
            time_zone,
            schedule,
            ldap_sign_in,
        }) => {
            let a = client
                .accounts
                .update_account(api::UpdateAccountRequest {
                    account_id: account,
                    time_zone: time_zone.unwrap_or_default(),
                    schedule: schedule.unwrap_or_default(),
                    ldap_sign_in,
                })
                .await?
                .into_inner();
            cli::print_account(&a);
        }
        Command::Sync(SyncCmd::All { wait }) => {
            let runs = client
                .sync
                .sync_all(api::SyncAllRequest {
                    account_id: account,
                })
                .await?
                .into_inner()
                .runs;
            let mut failed = false;
            for run in runs {
                let run = if wait {
                    client.wait(&run.id).await?
                } else {
                    run
                };
                failed |= wait && run.state != api::RunState::Succeeded as i32;
                cli::print_run(&run);
            }
            if failed {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Sync(SyncCmd::Preview { integration }) => {
            let run = client
                .sync
                .preview_sync(api::SyncNowRequest {
                    account_id: account.clone(),
                    integration,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let run = client.wait(&run.id).await?;
            cli::print_run(&run);
            let changes = client
                .sync
                .list_changes(api::ListChangesRequest {
                    account_id: account,
                    run_id: run.id.clone(),
                    limit: 10_000,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .changes;
            println!("Would change ({}):", changes.len());
            cli::print_changes(&changes);
        }
        Command::Changes {
            run,
            object,
            address,
            limit,
        } => {
            let changes = client
                .sync
                .list_changes(api::ListChangesRequest {
                    account_id: account,
                    run_id: run.unwrap_or_default(),
                    object_id: object.unwrap_or_default(),
                    address: address.unwrap_or_default(),
                    limit,
                })
                .await?
                .into_inner()
                .changes;
            cli::print_changes(&changes);
        }
        Command::Runs { integration, limit } => {
            let runs = client
                .sync
                .list_runs(api::ListRunsRequest {
                    account_id: account,
                    integration,
                    limit,
                })
                .await?
                .into_inner();
            for r in &runs.runs {
                cli::print_run(r);
            }
        }
        Command::Removals(RemovalsCmd::List { run }) => {
            let list = client
                .sync
                .list_pending_removals(api::ListPendingRemovalsRequest {
                    account_id: account,
                    run_id: run,
                })
                .await?
                .into_inner();
            cli::print_pending(&list.removals);
        }
        Command::Removals(RemovalsCmd::Approve { run, expect }) => {
            let run = client
                .sync
                .approve_removals(api::ApproveRemovalsRequest {
                    account_id: account,
                    run_id: run,
                    expected_count: expect.unwrap_or(0),
                })
                .await?
                .into_inner();
            cli::print_run(&run);
        }
        Command::Users(ListCmd::List) => {
            let objects = client
                .directory
                .list_users(api::ListObjectsRequest {
                    account_id: account,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .objects;
            cli::print_objects("Users", &objects, &objects);
        }
        Command::Groups(ListCmd::List) => {
            let req = || api::ListObjectsRequest {
                account_id: account.clone(),
                ..Default::default()
            };
            let groups = client
                .directory
                .list_groups(req())
                .await?
                .into_inner()
                .objects;
            let mut all = client
                .directory
                .list_users(req())
                .await?
                .into_inner()
                .objects;
            all.extend(
                client
                    .directory
                    .list_contacts(req())
                    .await?
                    .into_inner()
                    .objects,
            );
            all.extend(groups.iter().cloned());
            cli::print_objects("Groups", &groups, &all);
        }
        Command::Contacts(ListCmd::List) => {
            let objects = client
                .directory
                .list_contacts(api::ListObjectsRequest {
                    account_id: account,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .objects;
            cli::print_objects("Contacts", &objects, &objects);
        }
        Command::Lookup { address } => {
            let o = client
                .directory
                .lookup_address(api::LookupAddressRequest {
                    account_id: account,
                    address,
                })
                .await?
                .into_inner();
            cli::print_objects("Found", std::slice::from_ref(&o), &[]);
        }
        Command::Serve(_) | Command::Demo(_) | Command::Key(_) | Command::Token { .. } => {}
    }
    Ok(ok)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
