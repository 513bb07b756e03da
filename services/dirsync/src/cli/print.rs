//! What the CLI shows: runs, integrations, Test Connection steps, the
//! directory, the change log. Printing only; the calls are the commands'.

use dirsync_proto::api::{self, RunState};

use super::Client;

pub(crate) fn short(id: &str) -> &str {
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
