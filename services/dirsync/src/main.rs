//! `dirsync`: the service (any combination of roles) and its admin CLI.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use dirsync::cli::directory::Listing;
use dirsync::cli::keys::KeyCmd;
use dirsync::cli::{
    self, AccountCmd, Client, IntegrationCmd, ListCmd, RemovalsCmd, StoreArgs, SyncCmd, Target,
    TokenCmd,
};
use dirsync::demo::{self, DemoArgs};
use dirsync::serve::{self, ServeConfig};

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
    // Commands on this machine or the store.
    match cli.command {
        Command::Serve(cfg) => {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            serve::serve(*cfg, shutdown).await?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Demo(args) => {
            demo::run(args).await?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Token { store, command } => return cli::token::run(&store, command).await,
        Command::Key(cmd) => return cli::keys::run(cmd).await,
        _ => {}
    }
    // Commands through a gateway.
    let mut client = Client::connect(&cli.target).await?;
    let c = &mut client;
    match cli.command {
        Command::Integration(cmd) => cli::integration::run(c, cmd).await,
        Command::Sync(cmd) => cli::sync::run(c, cmd).await,
        Command::Runs { integration, limit } => cli::sync::runs(c, integration, limit).await,
        Command::Run { run } => cli::sync::show(c, run).await,
        Command::Changes {
            run,
            object,
            address,
            limit,
        } => cli::sync::changes(c, run, object, address, limit).await,
        Command::Removals(cmd) => cli::sync::removals(c, cmd).await,
        Command::Users(ListCmd::List) => cli::directory::list(c, Listing::Users).await,
        Command::Groups(ListCmd::List) => cli::directory::list(c, Listing::Groups).await,
        Command::Contacts(ListCmd::List) => cli::directory::list(c, Listing::Contacts).await,
        Command::Lookup { address } => cli::directory::lookup(c, address).await,
        Command::Account(cmd) => cli::account::run(c, cmd).await,
        Command::SignIn {
            address,
            password_file,
        } => cli::account::sign_in(c, address, &password_file).await,
        Command::Serve(_) | Command::Demo(_) | Command::Key(_) | Command::Token { .. } => {
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
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
