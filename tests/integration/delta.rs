//! Delta sync against the Samba AD DC: each kind of change through a delta
//! (DirSync), the store after the deltas equal to the store a full sync
//! leaves, the deletion guard across deltas, and the fallbacks to a full
//! read (no cursor, a cookie the DC refuses, a bind account without
//! replication rights).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dirsync::cli::Client;
use dirsync_proto::api;
use dirsync_tests::{
    Distributed, Embedded, Fixture, LdapFixture, Snapshot, assert_succeeded, counts,
    create_integration, env, snapshot, start_sync_kind, sync, sync_delta,
};

fn kind(run: &api::Run) -> api::RunKind {
    api::RunKind::try_from(run.kind).unwrap()
}

async fn add(ldap: &mut ldap3::Ldap, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
    let attrs: Vec<(&str, HashSet<&str>)> = attrs
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    ldap.add(dn, attrs)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("adding {dn}: {e}"));
}

async fn modify(ldap: &mut ldap3::Ldap, dn: &str, mods: Vec<ldap3::Mod<&str>>) {
    ldap.modify(dn, mods)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("modifying {dn}: {e}"));
}

fn set<'a>(values: &[&'a str]) -> HashSet<&'a str> {
    values.iter().copied().collect()
}

/// An integration of the fixture that binds as the domain administrator
/// (who holds "Replicating Directory Changes"), deltas off the schedule.
fn admin_settings(fx: &Fixture, name: &str) -> api::IntegrationSettings {
    api::IntegrationSettings {
        user_dn: env("DIRSYNC_TEST_AD_ADMIN_DN"),
        delta_interval_minutes: Some(0),
        ..fx.settings(name)
    }
}

/// Every kind of change, in the fixture's AD directory: Frank added to
/// People and Engineering, Carol out of Engineering; Alice's title and
/// name, Erin disabled; Zoë deleted; Carol moved out of the Root DN and
/// Oscar into it. Frank's DN.
async fn every_kind_of_change(fx: &Fixture, ldap: &mut ldap3::Ldap) -> String {
    let people = format!("OU=People,{}", fx.root_dn);
    let groups = format!("OU=Groups,{}", fx.root_dn);
    let tag = &fx.ou[1..];
    let frank = format!("CN=Frank Fresh,{people}");
    add(
        ldap,
        &frank,
        vec![
            ("objectClass", vec!["user"]),
            ("sAMAccountName", vec![&format!("{tag}frank")]),
            ("displayName", vec!["Frank Fresh"]),
            ("mail", vec!["frank@example.com"]),
        ],
    )
    .await;
    let engineering = format!("CN=Engineering,{groups}");
    modify(
        ldap,
        &engineering,
        vec![
            ldap3::Mod::Add("member", set(&[&frank])),
            ldap3::Mod::Delete("member", set(&[&format!("CN=Carol Chen,{people}")])),
        ],
    )
    .await;
    // A rename, an attribute change, a disable.
    let alice = format!("CN=Alice Anders,{people}");
    modify(
        ldap,
        &alice,
        vec![ldap3::Mod::Replace("title", set(&["Chief Engineer"]))],
    )
    .await;
    ldap.modifydn(&alice, "CN=Alice Anders-Lee", true, None)
        .await
        .unwrap()
        .success()
        .unwrap();
    modify(
        ldap,
        &format!("CN=Smith\\, Erin,{people}"),
        vec![ldap3::Mod::Replace("userAccountControl", set(&["514"]))],
    )
    .await;
    // A deletion, and a move out of the Root DN.
    ldap.delete(&format!("CN=Zoë Ærø,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.modifydn(
        &format!("CN=Carol Chen,{people}"),
        "CN=Carol Chen",
        true,
        Some(&format!("OU=Outside,{}", fx.base)),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    // A move into the Root DN, with its group memberships and reports.
    ldap.modifydn(
        &format!("CN=Oscar Outside,OU=Outside,{}", fx.base),
        "CN=Oscar Outside",
        true,
        Some(&people),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    frank
}

#[tokio::test]
async fn deltas_apply_every_kind_of_change_as_a_full_sync_would() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let i = create_integration(
        &mut client,
        admin_settings(&fx, "Delta"),
        &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;

    // The first sync reads in full, whatever was asked: no cursor yet.
    let first = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&first);
    assert_eq!(kind(&first), api::RunKind::Full, "{first:?}");
    assert!(
        first.full_reason.contains("no delta cursor"),
        "{}",
        first.full_reason
    );
    let (before, _) = snapshot(&mut client).await;

    // Nothing changed: a delta that writes nothing.
    let idle = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&idle);
    assert_eq!(kind(&idle), api::RunKind::Delta, "{idle:?}");
    // (Other tests change other OUs of the domain meanwhile: DirSync
    // reports those too, and they change nothing here.)
    let (_, added, updated, removed, _) = counts(&idle);
    assert_eq!((added, updated, removed), (0, 0, 0), "{idle:?}");
    assert!(idle.full_reason.is_empty());
    assert_eq!(snapshot(&mut client).await.0, before);

    // Every kind of change.
    let mut ldap = fx.admin().await;
    every_kind_of_change(&fx, &mut ldap).await;

    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    let (_, added, updated, removed, _) = counts(&delta);
    // Frank and Oscar arrive; Zoë and Carol leave (kept unmanaged).
    assert_eq!((added, removed), (2, 2), "{delta:?}");
    assert!(updated >= 3, "{delta:?}");
    let (after_delta, objects) = snapshot(&mut client).await;
    assert_ne!(after_delta, before);
    let alice = objects
        .iter()
        .find(|o| o.display_name == "Alice Anders")
        .unwrap();
    assert!(alice.dn.starts_with("CN=Alice Anders-Lee,"), "{}", alice.dn);
    assert_eq!(alice.title, "Chief Engineer");
    let erin = objects
        .iter()
        .find(|o| o.display_name == "Smith, Erin")
        .unwrap();
    assert!(erin.disabled);
    // Erin's manager was renamed: her record names the new DN.
    assert_eq!(erin.manager_id, alice.id);

    // A full sync of the same directory finds nothing to change: the
    // deltas left the store as it would.
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    assert_eq!(kind(&full), api::RunKind::Full);
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    assert_eq!(snapshot(&mut client).await.0, after_delta);

    // The change log names the delta's changes; the runs list each kind.
    let runs = client
        .sync
        .list_runs(api::ListRunsRequest {
            account_id: "acme".into(),
            integration: i.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    let kinds: Vec<api::RunKind> = runs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        vec![
            api::RunKind::Full,
            api::RunKind::Delta,
            api::RunKind::Delta,
            api::RunKind::Full
        ]
    );
    ds.stop().await;
}

#[tokio::test]
async fn the_deletion_guard_counts_removals_across_deltas() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let i = create_integration(
        &mut client,
        api::IntegrationSettings {
            maximum_sync_deletions: 2,
            delete_users: true,
            ..admin_settings(&fx, "Guarded")
        },
        &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let people = format!("OU=People,{}", fx.root_dn);
    let mut ldap = fx.admin().await;
    let mut delete = async |cn: &str| {
        ldap.delete(&format!("CN={cn},{people}"))
            .await
            .unwrap()
            .success()
            .unwrap();
    };
    // Two deltas of one deletion each: within the limit of 2.
    delete("Zoë Ærø").await;
    let one = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&one);
    assert_eq!(counts(&one).3, 1, "{one:?}");
    delete("Bob Brown").await;
    let two = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&two);
    assert_eq!(counts(&two).3, 1, "{two:?}");
    // A third would make three since the full sync: held for approval.
    delete("Alice Anders").await;
    let three = sync_delta(&mut client, &i.id).await;
    assert_eq!(three.state, api::RunState::Blocked as i32, "{three:?}");
    assert_eq!(three.counts.unwrap().pending, 1);
    assert!(
        three.hold_reason.contains("3 accounts"),
        "{}",
        three.hold_reason
    );
    let approved = client
        .sync
        .approve_removals(api::ApproveRemovalsRequest {
            account_id: "acme".into(),
            run_id: three.id.clone(),
            expected_count: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.counts.unwrap().removed, 1, "{approved:?}");
    // The next delta reads the held change again: nothing left to do.
    let again = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&again);
    assert_eq!(kind(&again), api::RunKind::Delta);
    assert_eq!(counts(&again).3, 0, "{again:?}");
    // A full sync starts the count again, and finds the store right.
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    ds.stop().await;
}

#[tokio::test]
async fn deltas_fall_back_to_full_reads_and_say_why() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    // The fixture's reader lacks "Replicating Directory Changes": DirSync
    // with object security, which does not see deletions.
    let i = create_integration(
        &mut client,
        api::IntegrationSettings {
            delta_interval_minutes: Some(0),
            ..fx.settings("Reader")
        },
        "Dirsync-User-1!",
    )
    .await;
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    assert!(
        full.warnings
            .iter()
            .any(|w| w.contains("Replicating Directory Changes")),
        "{:?}",
        full.warnings
    );
    let people = format!("OU=People,{}", fx.root_dn);
    let mut ldap = fx.admin().await;
    modify(
        &mut ldap,
        &format!("CN=Bob Brown,{people}"),
        vec![ldap3::Mod::Replace("title", set(&["Buyer"]))],
    )
    .await;
    ldap.delete(&format!("CN=Zoë Ærø,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    assert_eq!(counts(&delta).2, 1, "{delta:?}");
    assert_eq!(counts(&delta).3, 0, "deletions wait for the full sync");
    assert!(
        delta.warnings.iter().any(|w| w.contains("object security")),
        "{:?}",
        delta.warnings
    );
    let full = sync(&mut client, &i.id).await;
    assert_eq!(counts(&full).3, 1, "{full:?}");

    // A cookie the DC refuses: the delta reads in full and says why.
    let db = ds.dir.path().join("dirsync.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE sync_cursors SET value = X'4d534453'")
        .execute(&pool)
        .await
        .unwrap();
    let refused = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&refused);
    assert_eq!(kind(&refused), api::RunKind::Full, "{refused:?}");
    assert!(
        refused.full_reason.contains("DirSync"),
        "{}",
        refused.full_reason
    );
    // Which took a new cookie: the next delta reads a delta again.
    let next = sync_delta(&mut client, &i.id).await;
    assert_eq!(kind(&next), api::RunKind::Delta, "{next:?}");

    // A cookie last applied longer ago than the domain keeps tombstones
    // (Samba's tombstoneLifetime: 180 days) may have missed deletions.
    sqlx::query("UPDATE sync_cursors SET updated_at = updated_at - 181 * 86400000")
        .execute(&pool)
        .await
        .unwrap();
    let stale = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&stale);
    assert_eq!(kind(&stale), api::RunKind::Full, "{stale:?}");
    assert!(
        stale.full_reason.contains("tombstone lifetime 180 days"),
        "{}",
        stale.full_reason
    );
    let next = sync_delta(&mut client, &i.id).await;
    assert_eq!(kind(&next), api::RunKind::Delta, "{next:?}");

    // Settings that change what is read make the next run a full one.
    let mut changed = fx.settings("Reader");
    changed.include_contacts = false;
    changed.delta_interval_minutes = Some(0);
    client
        .integrations
        .update_integration(api::UpdateIntegrationRequest {
            account_id: "acme".into(),
            integration: i.id.clone(),
            settings: Some(changed),
            ..Default::default()
        })
        .await
        .unwrap();
    let rescoped = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&rescoped);
    assert_eq!(kind(&rescoped), api::RunKind::Full, "{rescoped:?}");
    assert!(
        rescoped.full_reason.contains("no delta cursor"),
        "{}",
        rescoped.full_reason
    );
    ds.stop().await;
}

#[tokio::test]
async fn a_delta_survives_a_killed_reconciler_in_the_distributed_shape() {
    let fx = Fixture::seed();
    let mut stack = Distributed::start_with(&[None], 3).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(
        &mut client,
        admin_settings(&fx, "Delta"),
        &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let people = format!("OU=People,{}", fx.root_dn);
    let mut ldap = fx.admin().await;
    add(
        &mut ldap,
        &format!("CN=Gina Green,{people}"),
        vec![
            ("objectClass", vec!["user"]),
            ("sAMAccountName", vec![&format!("{}gina", &fx.ou[1..])]),
            ("displayName", vec!["Gina Green"]),
            ("mail", vec!["gina@example.com"]),
        ],
    )
    .await;
    ldap.delete(&format!("CN=Zoë Ærø,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();

    // The reconciler dies as it applies the delta (before or after its
    // commit, before or after the ack): redelivered, the delta applies
    // once.
    let run = start_sync_kind(&mut client, &i.id, api::RunKind::Delta).await;
    let started = Instant::now();
    while !stack.log("reconciler").contains("applying the delta") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no delta applied"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stack.kill("reconciler");
    stack.restart("reconciler");
    let run = tokio::time::timeout(Duration::from_secs(120), client.wait(&run.id))
        .await
        .expect("the delta did not settle after the restart")
        .unwrap();
    assert_succeeded(&run);
    assert_eq!(kind(&run), api::RunKind::Delta, "{run:?}");
    let (_, added, _, removed, _) = counts(&run);
    assert_eq!((added, removed), (1, 1), "{run:?}");
    let (snap, _) = snapshot(&mut client).await;
    assert!(snap.users.iter().any(|u| u.0 == "Gina Green" && u.4));
    assert!(snap.users.iter().any(|u| u.0 == "Zoë Ærø" && !u.4));

    // Nothing left over, nothing applied twice.
    let again = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&again);
    assert_eq!(kind(&again), api::RunKind::Delta);
    let (_, added, updated, removed, _) = counts(&again);
    assert_eq!((added, updated, removed), (0, 0, 0), "{again:?}");
    let full = sync(&mut client, &i.id).await;
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
}

#[tokio::test]
async fn cursors_are_kept_per_domain_controller() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    // The primary refuses connections: every run goes to the alternate.
    let i = create_integration(
        &mut client,
        api::IntegrationSettings {
            host: "127.0.0.9".into(),
            alternate_host: fx.host.clone(),
            ..admin_settings(&fx, "Failover")
        },
        &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    assert_eq!(full.host, fx.host);
    let people = format!("OU=People,{}", fx.root_dn);
    let mut ldap = fx.admin().await;
    let bob = format!("CN=Bob Brown,{people}");
    modify(
        &mut ldap,
        &bob,
        vec![ldap3::Mod::Replace("title", set(&["Buyer"]))],
    )
    .await;
    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    assert_eq!(delta.host, fx.host);
    assert_eq!(counts(&delta).2, 1, "{delta:?}");

    // A cookie of another DC (as after a failover to a DC the last run
    // did not read): no delta from it, a full read that says why.
    let db = ds.dir.path().join("dirsync.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE sync_cursors SET server = '00000000-0000-4000-8000-00000000dc02'")
        .execute(&pool)
        .await
        .unwrap();
    modify(
        &mut ldap,
        &bob,
        vec![ldap3::Mod::Replace("title", set(&["Head buyer"]))],
    )
    .await;
    let other = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&other);
    assert_eq!(kind(&other), api::RunKind::Full, "{other:?}");
    assert!(
        other.full_reason.contains("another domain controller"),
        "{}",
        other.full_reason
    );
    assert_eq!(
        counts(&other).2,
        1,
        "the full read has the change: {other:?}"
    );
    let cursors: Vec<(String,)> = sqlx::query_as("SELECT server FROM sync_cursors")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(cursors.len(), 1, "the full run's cursor replaced the other");
    assert_ne!(cursors[0].0, "00000000-0000-4000-8000-00000000dc02");
    let next = sync_delta(&mut client, &i.id).await;
    assert_eq!(kind(&next), api::RunKind::Delta, "{next:?}");
    ds.stop().await;
}

#[tokio::test]
async fn usn_changed_polling_reads_deltas_as_dirsync_does() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let polling = |settings: api::IntegrationSettings| api::IntegrationSettings {
        delta_method: api::DeltaMethod::UsnChanged as i32,
        ..settings
    };
    // As the administrator, who may read CN=Deleted Objects.
    let i = create_integration(
        &mut client,
        polling(admin_settings(&fx, "Polling")),
        &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;
    assert_eq!(
        i.settings.as_ref().unwrap().delta_method,
        api::DeltaMethod::UsnChanged as i32
    );
    let first = sync(&mut client, &i.id).await;
    assert_succeeded(&first);
    assert!(
        !first
            .warnings
            .iter()
            .any(|w| w.contains("uSNChanged") || w.contains("Deleted Objects")),
        "{:?}",
        first.warnings
    );
    let (before, _) = snapshot(&mut client).await;
    let idle = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&idle);
    assert_eq!(kind(&idle), api::RunKind::Delta, "{idle:?}");
    let (_, added, updated, removed, _) = counts(&idle);
    assert_eq!((added, updated, removed), (0, 0, 0), "{idle:?}");
    assert_eq!(snapshot(&mut client).await.0, before);

    // The changes the DirSync test makes; only the members of a group
    // change: the group is read whole.
    let people = format!("OU=People,{}", fx.root_dn);
    let mut ldap = fx.admin().await;
    let frank = every_kind_of_change(&fx, &mut ldap).await;

    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    let (_, added, updated, removed, _) = counts(&delta);
    // Frank and Oscar arrive; Zoë (a tombstone) and Carol leave.
    assert_eq!((added, removed), (2, 2), "{delta:?}");
    assert!(updated >= 2, "{delta:?}");
    let (after_delta, objects) = snapshot(&mut client).await;
    let alice = objects
        .iter()
        .find(|o| o.display_name == "Alice Anders")
        .unwrap();
    assert!(alice.dn.starts_with("CN=Alice Anders-Lee,"), "{}", alice.dn);
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    assert_eq!(snapshot(&mut client).await.0, after_delta);
    let cursors: Vec<(String, Vec<u8>)> = {
        let db = ds.dir.path().join("dirsync.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_as("SELECT source, value FROM sync_cursors")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].0, "usn");
    assert!(
        std::str::from_utf8(&cursors[0].1)
            .unwrap()
            .parse::<u64>()
            .is_ok(),
        "{cursors:?}"
    );

    // The fixture's reader polls too; Test Connection says how deltas
    // read, and whether they see deletions. (In another account: the two
    // integrations read the same Root DN.)
    let mut client = ds.client("globex").await;
    let reader = create_integration(
        &mut client,
        polling(api::IntegrationSettings {
            delta_interval_minutes: Some(0),
            ..fx.settings("Polling reader")
        }),
        "Dirsync-User-1!",
    )
    .await;
    let mut stream = client
        .integrations
        .test_connection(api::TestConnectionRequest {
            account_id: "globex".into(),
            integration: reader.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut delta_check = None;
    while let Some(step) = stream.message().await.unwrap() {
        if step.check == api::TestCheck::DeltaSync as i32 {
            delta_check = Some(step);
        }
    }
    let delta_check = delta_check.expect("a delta sync check");
    assert!(
        delta_check.detail.contains("poll uSNChanged"),
        "{delta_check:?}"
    );
    // Samba lets the reader see CN=Deleted Objects, but not what is in it.
    assert_eq!(
        delta_check.outcome,
        api::TestOutcome::Warning as i32,
        "{delta_check:?}"
    );
    assert!(
        delta_check.detail.contains("deletions wait"),
        "{delta_check:?}"
    );
    assert!(
        delta_check.hint.contains("CN=Deleted Objects"),
        "{delta_check:?}"
    );
    let full = sync(&mut client, &reader.id).await;
    assert_succeeded(&full);
    assert!(
        full.warnings
            .iter()
            .any(|w| w.contains("CN=Deleted Objects")),
        "{:?}",
        full.warnings
    );
    modify(
        &mut ldap,
        &format!("CN=Bob Brown,{people}"),
        vec![ldap3::Mod::Replace("title", set(&["Buyer"]))],
    )
    .await;
    ldap.delete(&frank).await.unwrap().success().unwrap();
    let delta = sync_delta(&mut client, &reader.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    assert_eq!(counts(&delta).2, 1, "{delta:?}");
    assert_eq!(counts(&delta).3, 0, "deletions wait for the full sync");
    assert!(
        delta
            .warnings
            .iter()
            .any(|w| w.contains("CN=Deleted Objects")),
        "{:?}",
        delta.warnings
    );
    let full = sync(&mut client, &reader.id).await;
    assert_eq!(counts(&full).3, 1, "{full:?}");
    ds.stop().await;
}

#[tokio::test]
async fn generic_ldap_deltas_through_content_synchronization() {
    use dirsync_tests::LdapFixture;
    let fx = LdapFixture::seed().await;
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let settings = api::IntegrationSettings {
        delta_interval_minutes: Some(0),
        ..fx.settings("OpenLDAP deltas")
    };
    let i = create_integration(&mut client, settings, &LdapFixture::password()).await;
    let mut stream = client
        .integrations
        .test_connection(api::TestConnectionRequest {
            account_id: "acme".into(),
            integration: i.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut delta_check = None;
    while let Some(step) = stream.message().await.unwrap() {
        if step.check == api::TestCheck::DeltaSync as i32 {
            delta_check = Some(step);
        }
    }
    let delta_check = delta_check.expect("a delta sync check");
    assert_eq!(
        delta_check.outcome,
        api::TestOutcome::Passed as i32,
        "{delta_check:?}"
    );
    assert!(delta_check.detail.contains("content synchronization"));

    let first = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&first);
    assert_eq!(kind(&first), api::RunKind::Full, "{first:?}");
    let (before, _) = snapshot(&mut client).await;
    let idle = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&idle);
    assert_eq!(kind(&idle), api::RunKind::Delta, "{idle:?}");
    let (_, added, updated, removed, _) = counts(&idle);
    assert_eq!((added, updated, removed), (0, 0, 0), "{idle:?}");
    assert_eq!(snapshot(&mut client).await.0, before);

    // An add, a member added, an attribute change, a deletion, a rename
    // (OpenLDAP here keeps the old DN in groups: no refint overlay) and a
    // move out of the Root DN.
    let people = fx.people();
    let groups = format!("ou=groups,{}", fx.base);
    let mut ldap = fx.admin().await;
    let dave = format!("uid=dave,{people}");
    add(
        &mut ldap,
        &dave,
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec!["dave"]),
            ("cn", vec!["Dave Delta"]),
            ("sn", vec!["Delta"]),
            ("displayName", vec!["Dave Delta"]),
            ("mail", vec!["dave@example.com"]),
            ("manager", vec![&format!("uid=alice,{people}")]),
        ],
    )
    .await;
    modify(
        &mut ldap,
        &format!("cn=engineering,{groups}"),
        vec![ldap3::Mod::Add("member", set(&[&dave]))],
    )
    .await;
    modify(
        &mut ldap,
        &format!("uid=bob,{people}"),
        vec![ldap3::Mod::Replace("title", set(&["Buyer"]))],
    )
    .await;
    ldap.delete(&format!("uid=carol,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.modifydn(&format!("uid=alice,{people}"), "uid=alice2", true, None)
        .await
        .unwrap()
        .success()
        .unwrap();
    // (Out to the suffix, under a name of this test's own.)
    let outside = format!("uid=bob-{}", &fx.base[3..fx.base.find(',').unwrap()]);
    ldap.modifydn(
        &format!("uid=bob,{people}"),
        &outside,
        true,
        Some(&fx.suffix),
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    let (_, added, updated, removed, _) = counts(&delta);
    // Dave arrives; Carol (deleted) and Bob (moved out) leave.
    assert_eq!((added, removed), (1, 2), "{delta:?}");
    assert!(updated >= 2, "{delta:?}");
    let (after_delta, objects) = snapshot(&mut client).await;
    let alice = objects
        .iter()
        .find(|o| o.display_name.starts_with("Alice"))
        .unwrap();
    assert!(alice.dn.starts_with("uid=alice2,"), "{}", alice.dn);
    // A full sync of the same directory finds nothing to change.
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    assert_eq!(snapshot(&mut client).await.0, after_delta);

    // Cookies that cannot be trusted read in full, and say why.
    let db = ds.dir.path().join("dirsync.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for (value, why) in [
        // Older than the server's session log: a present phase.
        (
            "rid=000,csn=20000101000000.000000Z#000000#000#000000",
            "present phase",
        ),
        // Newer than the server: restored from a backup.
        (
            "rid=000,csn=20991231000000.000000Z#000000#000#000000",
            "restore from backup",
        ),
    ] {
        sqlx::query("UPDATE sync_cursors SET value = ?")
            .bind(value.as_bytes())
            .execute(&pool)
            .await
            .unwrap();
        let run = sync_delta(&mut client, &i.id).await;
        assert_succeeded(&run);
        assert_eq!(kind(&run), api::RunKind::Full, "{run:?}");
        assert!(run.full_reason.contains(why), "{}", run.full_reason);
        assert_eq!(counts(&run).1 + counts(&run).2 + counts(&run).3, 0);
        let next = sync_delta(&mut client, &i.id).await;
        assert_eq!(kind(&next), api::RunKind::Delta, "{next:?}");
    }
    ds.stop().await;
}

#[tokio::test]
async fn a_user_restored_from_deleted_objects_gets_its_account_back() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let i = create_integration(
        &mut client,
        admin_settings(&fx, "Restore"),
        &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let (before, objects) = snapshot(&mut client).await;
    let carol_id = objects
        .iter()
        .find(|o| o.display_name == "Carol Chen")
        .unwrap()
        .id
        .clone();

    // Deleted in AD: the delta keeps her as an unmanaged account.
    let people = format!("OU=People,{}", fx.root_dn);
    let carol = format!("CN=Carol Chen,{people}");
    let mut ldap = fx.admin().await;
    ldap.delete(&carol).await.unwrap().success().unwrap();
    let delta = sync_delta(&mut client, &i.id).await;
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    assert_eq!(counts(&delta).3, 1, "{delta:?}");
    let (_, objects) = snapshot(&mut client).await;
    let kept = objects.iter().find(|o| o.id == carol_id).unwrap();
    assert!(!kept.managed);

    // Restored by an administrator (tombstone reanimation: the same
    // objectGUID; without the Recycle Bin the stripped attributes and the
    // group membership are set again, after it: Samba refuses them in the
    // reanimating modify).
    let show_deleted = ldap3::controls::RawControl {
        ctype: "1.2.840.113556.1.4.417".into(),
        crit: true,
        val: None,
    };
    let (found, _) = ldap
        .with_controls(vec![show_deleted.clone()])
        .search(
            &format!("CN=Deleted Objects,{}", env("DIRSYNC_TEST_AD_BASE_DN")),
            ldap3::Scope::OneLevel,
            &format!("(sAMAccountName={}carol)", &fx.ou[1..]),
            vec!["objectGUID"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(found.len(), 1, "one tombstone of Carol");
    let tombstone = ldap3::SearchEntry::construct(found.into_iter().next().unwrap()).dn;
    ldap.with_controls(vec![show_deleted])
        .modify(
            &tombstone,
            vec![
                ldap3::Mod::Delete("isDeleted", HashSet::new()),
                ldap3::Mod::Replace("distinguishedName", set(&[&carol])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("reanimating {tombstone}: {e}"));
    modify(
        &mut ldap,
        &carol,
        vec![
            ldap3::Mod::Replace("mail", set(&["carol@example.org"])),
            ldap3::Mod::Replace("displayName", set(&["Carol Chen"])),
            ldap3::Mod::Replace("givenName", set(&["Carol"])),
            ldap3::Mod::Replace("sn", set(&["Chen"])),
        ],
    )
    .await;
    modify(
        &mut ldap,
        &format!("CN=Engineering,OU=Groups,{}", fx.root_dn),
        vec![ldap3::Mod::Add("member", set(&[&carol]))],
    )
    .await;

    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    let (after, objects) = snapshot(&mut client).await;
    assert_eq!(after, before, "managed again, with her address and group");
    let back = objects
        .iter()
        .filter(|o| o.display_name == "Carol Chen")
        .collect::<Vec<_>>();
    assert_eq!(back.len(), 1, "one account, not a second one");
    assert_eq!(back[0].id, carol_id);
    assert!(back[0].managed);
    let full = sync(&mut client, &i.id).await;
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    ds.stop().await;
}

#[tokio::test]
async fn generic_ldap_deltas_in_the_distributed_shape() {
    use dirsync_tests::LdapFixture;
    let fx = LdapFixture::seed().await;
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    let settings = api::IntegrationSettings {
        delta_interval_minutes: Some(0),
        ..fx.settings("OpenLDAP deltas")
    };
    let i = create_integration(&mut client, settings, &LdapFixture::password()).await;
    let first = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&first);
    assert_eq!(kind(&first), api::RunKind::Full, "{first:?}");
    let people = fx.people();
    let mut ldap = fx.admin().await;
    add(
        &mut ldap,
        &format!("uid=erin,{people}"),
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec!["erin"]),
            ("cn", vec!["Erin Early"]),
            ("sn", vec!["Early"]),
            ("mail", vec!["erin@example.com"]),
        ],
    )
    .await;
    modify(
        &mut ldap,
        &format!("uid=bob,{people}"),
        vec![ldap3::Mod::Replace("title", set(&["Buyer"]))],
    )
    .await;
    ldap.delete(&format!("uid=carol,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    let delta = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    let (_, added, updated, removed, _) = counts(&delta);
    // Erin in; Bob changed, and Engineering without Carol; Carol out.
    assert_eq!((added, updated, removed), (1, 2, 1), "{delta:?}");
    let (after_delta, _) = snapshot(&mut client).await;
    let full = sync(&mut client, &i.id).await;
    assert_succeeded(&full);
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    assert_eq!(snapshot(&mut client).await.0, after_delta);
}

/// The Test Connection step of `check` on the saved settings.
async fn test_step(client: &mut Client, integration: &str, check: api::TestCheck) -> api::TestStep {
    let mut stream = client
        .integrations
        .test_connection(api::TestConnectionRequest {
            account_id: client.account.clone(),
            integration: integration.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut found = None;
    while let Some(step) = stream.message().await.unwrap() {
        if step.check == check as i32 {
            found = Some(step);
        }
    }
    found.unwrap_or_else(|| panic!("no {check:?} step"))
}

/// `snapshot` without the users whose display names start with `gone`,
/// as members too.
fn without(mut s: Snapshot, gone: &[&str]) -> Snapshot {
    let left = |name: &String| !gone.iter().any(|g| name.starts_with(g));
    s.users.retain(|u| left(&u.0));
    for g in &mut s.groups {
        g.2.retain(left);
    }
    s
}

/// A generic LDAP directory without content synchronization (no
/// syncprov): deltas read what changed by modifyTimestamp, on the
/// directory's clock (cn=Monitor); deletions and moves out wait for the
/// full sync, and every run says so.
async fn modify_timestamp_polling(client: &mut Client) {
    let fx = LdapFixture::seed_plain().await;
    let tag = fx.base[3..fx.base.find(',').unwrap()].to_owned();
    let people = fx.people();
    let mut ldap = fx.admin().await;
    // Outside the Root DN for now; moved in later.
    let erin_outside = format!("uid=erin-{tag},{}", fx.suffix);
    add(
        &mut ldap,
        &erin_outside,
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec!["erin"]),
            ("cn", vec!["Erin Early"]),
            ("sn", vec!["Early"]),
            ("displayName", vec!["Erin Early"]),
            ("mail", vec!["erin@example.com"]),
        ],
    )
    .await;
    let settings = api::IntegrationSettings {
        delta_interval_minutes: Some(0),
        ..fx.settings("OpenLDAP without syncprov")
    };
    let i = create_integration(client, settings, &LdapFixture::password()).await;
    let check = test_step(client, &i.id, api::TestCheck::DeltaSync).await;
    assert_eq!(check.outcome, api::TestOutcome::Warning as i32, "{check:?}");
    assert!(
        check.detail.contains("modifyTimestamp") && check.detail.contains("directory's clock"),
        "{check:?}"
    );
    assert!(check.hint.contains("syncprov"), "{check:?}");

    let first = sync_delta(client, &i.id).await;
    assert_succeeded(&first);
    assert_eq!(kind(&first), api::RunKind::Full, "{first:?}");
    let says_why = |run: &api::Run| {
        run.warnings
            .iter()
            .any(|w| w.contains("modifyTimestamp") && w.contains("next full sync"))
    };
    assert!(says_why(&first), "{:?}", first.warnings);
    let (before, _) = snapshot(client).await;
    let idle = sync_delta(client, &i.id).await;
    assert_succeeded(&idle);
    assert_eq!(kind(&idle), api::RunKind::Delta, "{idle:?}");
    // (It reads the fixture again: written within the cursor's overlap.)
    let (_, added, updated, removed, _) = counts(&idle);
    assert_eq!((added, updated, removed), (0, 0, 0), "{idle:?}");
    assert!(says_why(&idle), "{:?}", idle.warnings);
    assert_eq!(snapshot(client).await.0, before);

    // An add (with a manager, into a group), an attribute change, a
    // rename, a move into the Root DN; a deletion and a move out, which
    // wait for the full sync.
    let dave = format!("uid=dave,{people}");
    add(
        &mut ldap,
        &dave,
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec!["dave"]),
            ("cn", vec!["Dave Delta"]),
            ("sn", vec!["Delta"]),
            ("displayName", vec!["Dave Delta"]),
            ("mail", vec!["dave@example.com"]),
            ("manager", vec![&format!("uid=alice,{people}")]),
        ],
    )
    .await;
    modify(
        &mut ldap,
        &format!("cn=engineering,ou=groups,{}", fx.base),
        vec![ldap3::Mod::Add("member", set(&[&dave]))],
    )
    .await;
    modify(
        &mut ldap,
        &format!("uid=alice,{people}"),
        vec![ldap3::Mod::Replace("title", set(&["Principal Engineer"]))],
    )
    .await;
    ldap.modifydn(&erin_outside, "uid=erin", true, Some(&people))
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.modifydn(&format!("uid=alice,{people}"), "uid=alice2", true, None)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.delete(&format!("uid=carol,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.modifydn(
        &format!("uid=bob,{people}"),
        &format!("uid=bob-{tag}"),
        true,
        Some(&fx.suffix),
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let delta = sync_delta(client, &i.id).await;
    assert_succeeded(&delta);
    assert_eq!(kind(&delta), api::RunKind::Delta, "{delta:?}");
    assert!(says_why(&delta), "{:?}", delta.warnings);
    let (_, added, updated, removed, _) = counts(&delta);
    // Dave and Erin arrive; Alice and Engineering change; nothing leaves.
    assert_eq!((added, removed), (2, 0), "{delta:?}");
    assert!(updated >= 2, "{delta:?}");
    let (after_delta, objects) = snapshot(client).await;
    let alice = objects
        .iter()
        .find(|o| o.display_name.starts_with("Alice"))
        .unwrap();
    assert!(alice.dn.starts_with("uid=alice2,"), "{}", alice.dn);
    assert!(
        objects.iter().any(|o| o.display_name == "Erin Early"),
        "moved in: {objects:?}"
    );
    // The next delta reads the last minute's changes again (the cursor's
    // overlap) and finds nothing to write.
    let again = sync_delta(client, &i.id).await;
    assert_succeeded(&again);
    assert_eq!(kind(&again), api::RunKind::Delta, "{again:?}");
    let (_, added, updated, removed, _) = counts(&again);
    assert_eq!((added, updated, removed), (0, 0, 0), "{again:?}");

    // The full sync removes Carol (deleted) and Bob (moved out), and
    // finds nothing else the deltas missed.
    let full = sync(client, &i.id).await;
    assert_succeeded(&full);
    let (_, added, _, removed, _) = counts(&full);
    assert_eq!((added, removed), (0, 2), "{full:?}");
    let (after_full, _) = snapshot(client).await;
    let gone = ["Bob", "Carol"];
    assert_eq!(without(after_full, &gone), without(after_delta, &gone));
    let full = sync(client, &i.id).await;
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
}

#[tokio::test]
async fn generic_ldap_without_syncprov_polls_modify_timestamp() {
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    modify_timestamp_polling(&mut client).await;
    ds.stop().await;
}

#[tokio::test]
async fn generic_ldap_without_syncprov_polls_modify_timestamp_distributed() {
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    modify_timestamp_polling(&mut client).await;
}
