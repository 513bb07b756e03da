//! `dirsync sync`, `runs`, `run`, `changes` and `removals`: start syncs,
//! follow runs, read the change log, review and approve held removals.

use dirsync_proto::api;

use super::print::{print_changes, print_pending, print_run};
use super::{Client, Exit};

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

pub async fn run(client: &mut Client, cmd: SyncCmd) -> anyhow::Result<Exit> {
    let account = client.account.clone();
    match cmd {
        SyncCmd::Now {
            integration,
            wait,
            delta,
        } => {
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
            print_run(&run);
            if wait && run.state != api::RunState::Succeeded as i32 {
                return Ok(Exit::FAILURE);
            }
        }
        SyncCmd::All { wait } => {
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
                print_run(&run);
            }
            if failed {
                return Ok(Exit::FAILURE);
            }
        }
        SyncCmd::Preview { integration } => {
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
            print_run(&run);
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
            print_changes(&changes);
        }
    }
    Ok(Exit::SUCCESS)
}

pub async fn removals(client: &mut Client, cmd: RemovalsCmd) -> anyhow::Result<Exit> {
    let account = client.account.clone();
    match cmd {
        RemovalsCmd::List { run } => {
            let list = client
                .sync
                .list_pending_removals(api::ListPendingRemovalsRequest {
                    account_id: account,
                    run_id: run,
                })
                .await?
                .into_inner();
            print_pending(&list.removals);
        }
        RemovalsCmd::Approve { run, expect } => {
            let run = client
                .sync
                .approve_removals(api::ApproveRemovalsRequest {
                    account_id: account,
                    run_id: run,
                    expected_count: expect.unwrap_or(0),
                })
                .await?
                .into_inner();
            print_run(&run);
        }
    }
    Ok(Exit::SUCCESS)
}

/// `dirsync runs`: an integration's runs, newest first.
pub async fn runs(client: &mut Client, integration: String, limit: u32) -> anyhow::Result<Exit> {
    let runs = client
        .sync
        .list_runs(api::ListRunsRequest {
            account_id: client.account.clone(),
            integration,
            limit,
        })
        .await?
        .into_inner();
    for r in &runs.runs {
        print_run(r);
    }
    Ok(Exit::SUCCESS)
}

/// `dirsync run`: one run in full.
pub async fn show(client: &mut Client, run: String) -> anyhow::Result<Exit> {
    let run = client
        .sync
        .get_run(api::GetRunRequest {
            account_id: client.account.clone(),
            run_id: run,
        })
        .await?
        .into_inner();
    print_run(&run);
    Ok(Exit::SUCCESS)
}

/// `dirsync changes`: the change log of a run, an object or an address.
pub async fn changes(
    client: &mut Client,
    run: Option<String>,
    object: Option<String>,
    address: Option<String>,
    limit: u32,
) -> anyhow::Result<Exit> {
    let changes = client
        .sync
        .list_changes(api::ListChangesRequest {
            account_id: client.account.clone(),
            run_id: run.unwrap_or_default(),
            object_id: object.unwrap_or_default(),
            address: address.unwrap_or_default(),
            limit,
        })
        .await?
        .into_inner()
        .changes;
    print_changes(&changes);
    Ok(Exit::SUCCESS)
}
