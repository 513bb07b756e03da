//! `dirsync account` and `sign-in`: the account's time zone, schedule and
//! authentication profile, and an end user's sign-in as applications do it.

use std::path::Path;

use dirsync_proto::api;

use super::print::print_account;
use super::{Client, Exit, read_secret};

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

pub async fn run(client: &mut Client, cmd: AccountCmd) -> anyhow::Result<Exit> {
    let account = client.account.clone();
    let a = match cmd {
        AccountCmd::Show => {
            client
                .accounts
                .get_account(api::GetAccountRequest {
                    account_id: account,
                })
                .await?
        }
        AccountCmd::Set {
            time_zone,
            schedule,
            ldap_sign_in,
        } => {
            client
                .accounts
                .update_account(api::UpdateAccountRequest {
                    account_id: account,
                    time_zone: time_zone.unwrap_or_default(),
                    schedule: schedule.unwrap_or_default(),
                    ldap_sign_in,
                })
                .await?
        }
    };
    print_account(&a.into_inner());
    Ok(Exit::SUCCESS)
}

/// `dirsync sign-in`: checks a user's AD password as applications do.
pub async fn sign_in(
    client: &mut Client,
    address: String,
    password_file: &Path,
) -> anyhow::Result<Exit> {
    let answer = client
        .auth
        .authenticate(api::AuthenticateRequest {
            account_id: client.account.clone(),
            address,
            password: read_secret(password_file)?,
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
    Ok(if answer.result == api::AuthResult::Ok as i32 {
        Exit::SUCCESS
    } else {
        Exit::FAILURE
    })
}
