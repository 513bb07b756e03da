//! `dirsync token`: API tokens, made and revoked on the store itself.

use dirsync_core::Clock;

use super::{Exit, StoreArgs, open_store};

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

pub async fn run(store: &StoreArgs, cmd: TokenCmd) -> anyhow::Result<Exit> {
    let store = open_store(store).await?;
    let now = || dirsync_core::SystemClock.now();
    match cmd {
        TokenCmd::Create { account, name } => {
            let token = issue_token(&store, &account, &name, now()).await?;
            eprintln!("API token for account {account} ({name}); it is shown only now:");
            println!("{token}");
        }
        TokenCmd::List { account } => {
            for t in store.list_tokens(&account).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}  {:<20} {state}", t.id, t.name);
            }
        }
        TokenCmd::Revoke { account, id } => {
            store.revoke_token(&account, &id, now()).await?;
            println!("revoked {id}");
        }
    }
    Ok(Exit::SUCCESS)
}
