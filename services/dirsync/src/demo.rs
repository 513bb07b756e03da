//! `dirsync demo`: the embedded shape end to end. Starts every role in this
//! process on SQLite and the in-process bus, creates an integration for the
//! given directory through the gRPC API, syncs it and prints the result.

use std::path::PathBuf;

use anyhow::Context;

use dirsync_core::MasterKey;
use dirsync_proto::api;

use crate::cli::{self, Client, read_secret};
use crate::serve::{InProcess, ServeConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the demo keeps its SQLite store and master key.
    #[arg(long, default_value = ".dirsync")]
    pub data_dir: PathBuf,
    /// Domain controller.
    #[arg(long, default_value = "127.0.0.1")]
    pub ad_host: String,
    #[arg(long, default_value_t = 636)]
    pub ad_port: u32,
    /// Bind account.
    #[arg(
        long,
        default_value = "CN=Sync Reader,OU=demo,DC=corp,DC=example,DC=test"
    )]
    pub bind_dn: String,
    /// File holding the bind password.
    #[arg(long)]
    pub password_file: PathBuf,
    /// Subtree to sync.
    #[arg(long, default_value = "OU=Sync,OU=demo,DC=corp,DC=example,DC=test")]
    pub root_dn: String,
    /// After printing the directory, keep serving the admin console (and
    /// the gRPC API) until interrupted; the sign-in token is written to
    /// DATA_DIR/demo.token.
    #[arg(long)]
    pub console: bool,
    /// Where the admin console listens with --console.
    #[arg(long, default_value = crate::serve::EMBEDDED_CONSOLE_LISTEN)]
    pub console_listen: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let key_file = args.data_dir.join("master.key");
    if !key_file.exists() {
        write_private(&key_file, &MasterKey::generate_hex())?;
    }
    let db = args.data_dir.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut cfg = ServeConfig::embedded(format!("sqlite://{}", db.display()), key_file);
    cfg.console_listen = Some(if args.console {
        args.console_listen.clone()
    } else {
        "off".to_owned()
    });
    let stack = InProcess::start(&cfg).await?;
    let token = crate::cli::issue_token(&stack.store, "demo", "demo", stack.clock.now()).await?;
    let mut result = drive(&args, &stack.gateway, token.clone()).await;
    if result.is_ok()
        && let Some(url) = &stack.console
    {
        result = keep_serving(&args, url, &token).await;
    }
    stack.stop().await?;
    result
}

/// Serves the console until Ctrl-C or SIGTERM.
async fn keep_serving(args: &DemoArgs, url: &str, token: &str) -> anyhow::Result<()> {
    let token_file = args.data_dir.join("demo.token");
    let _ = std::fs::remove_file(&token_file);
    write_private(&token_file, token)?;
    println!(
        "\nAdmin console: {url}\nSign in with the API token in {} (account \"demo\").\nServing until Ctrl-C.",
        token_file.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

async fn drive(args: &DemoArgs, gateway: &str, token: String) -> anyhow::Result<()> {
    let mut client = Client::connect(&cli::Target {
        gateway: gateway.to_owned(),
        account: "demo".to_owned(),
        token_file: None,
        token: Some(token),
    })
    .await?;
    let password = read_secret(&args.password_file)?;
    let integration = client
        .integrations
        .create_integration(api::CreateIntegrationRequest {
            account_id: client.account.clone(),
            settings: Some(api::IntegrationSettings {
                name: "Local demo AD".to_owned(),
                description: "Samba AD DC on loopback".to_owned(),
                r#type: api::DirectoryType::ActiveDirectory as i32,
                host: args.ad_host.clone(),
                encrypt: Some(true),
                encryption_mode: api::EncryptionMode::Relaxed as i32,
                port: args.ad_port,
                user_dn: args.bind_dn.clone(),
                root_dn: args.root_dn.clone(),
                acknowledge_disabled_accounts: true,
                include_contacts: true,
                maximum_sync_deletions: 10,
                ..Default::default()
            }),
            password,
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("Integration");
    cli::print_integration(&integration);
    let run = client
        .sync
        .sync_now(api::SyncNowRequest {
            account_id: client.account.clone(),
            integration: integration.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let run = client.wait(&run.id).await?;
    println!("\nRun");
    cli::print_run(&run);
    if run.state != api::RunState::Succeeded as i32 {
        anyhow::bail!("the sync did not succeed: {}", run.error);
    }
    println!();
    cli::print_directory(&mut client).await
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}
