//! The integration's policies through the public API: the deletion guard,
//! approval, and the account-wide pause.

use std::time::Duration;

use dirsync::cli::Client;
use dirsync_proto::api::{self as pb, RunState};
use dirsync_proto::bus;
use dirsync_tests::{
    Distributed, Embedded, FIXTURE_PASSWORD, Fixture, create_integration, snapshot, start_sync,
    sync,
};

async fn delete_users(fx: &Fixture, names: &[&str]) {
    let mut ldap = fx.admin().await;
    for name in names {
        let dn = format!("CN={name},OU=People,{}", fx.root_dn);
        ldap.delete(&dn)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("deleting {dn}: {e}"));
    }
}

async fn update(
    client: &mut Client,
    id: &str,
    settings: pb::IntegrationSettings,
    password: Option<&str>,
) {
    client
        .integrations
        .update_integration(pb::UpdateIntegrationRequest {
            account_id: client.account.clone(),
            integration: id.to_owned(),
            settings: Some(settings),
            password: password.map(str::to_owned),
            ..Default::default()
        })
        .await
        .expect("UpdateIntegration");
}

async fn approve(
    client: &mut Client,
    run_id: &str,
    expected: u64,
) -> Result<pb::Run, tonic::Status> {
    client
        .sync
        .approve_removals(pb::ApproveRemovalsRequest {
            account_id: client.account.clone(),
            run_id: run_id.to_owned(),
            expected_count: expected,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Managed users by display name.
async fn managed_users(client: &mut Client) -> Vec<String> {
    let (snap, _) = snapshot(client).await;
    snap.users
        .into_iter()
        .filter(|u| u.4)
        .map(|u| u.0)
        .collect()
}

#[tokio::test]
async fn deletion_guard_blocks_and_approval_removes_exactly_the_held_set() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = |max: i64| pb::IntegrationSettings {
        maximum_sync_deletions: max,
        ..fx.settings("Fixture AD")
    };
    let i = create_integration(&mut client, settings(2), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        RunState::Succeeded as i32
    );

    // Three users leave AD; at most two may leave in one run.
    delete_users(&fx, &["Bob Brown", "Carol Chen", "Zoë Ærø"]).await;
    let blocked = sync(&mut client, &i.id).await;
    assert_eq!(blocked.state, RunState::Blocked as i32, "{blocked:?}");
    let c = blocked.counts.unwrap();
    assert_eq!((c.removed, c.pending), (0, 3));
    assert!(
        blocked.hold_reason.contains("maximum sync deletions (2)"),
        "{}",
        blocked.hold_reason
    );
    // Adds and updates applied (the groups lost members); nobody removed.
    assert!(c.updated >= 2, "{c:?}");
    assert_eq!(managed_users(&mut client).await.len(), 5);

    let pending = client
        .sync
        .list_pending_removals(pb::ListPendingRemovalsRequest {
            account_id: "acme".into(),
            run_id: blocked.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .removals;
    let mut names: Vec<String> = pending
        .iter()
        .map(|p| p.object.clone().unwrap().display_name)
        .collect();
    names.sort();
    assert_eq!(names, ["Bob Brown", "Carol Chen", "Zoë Ærø"]);
    assert!(
        pending
            .iter()
            .all(|p| p.action == pb::RemovalAction::Demote as i32)
    );

    // The approval names the set it reviewed.
    let wrong = approve(&mut client, &blocked.id, 2)
        .await
        .expect_err("count differs");
    assert_eq!(wrong.code(), tonic::Code::FailedPrecondition);
    let approved = approve(&mut client, &blocked.id, 3).await.unwrap();
    assert_eq!(approved.state, RunState::Succeeded as i32);
    assert_eq!(approved.counts.unwrap().removed, 3);
    assert_eq!(
        managed_users(&mut client).await,
        ["Alice Anders", "Smith, Erin"]
    );
    let bob = client
        .directory
        .lookup_address(pb::LookupAddressRequest {
            account_id: "acme".into(),
            address: "bob@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!bob.managed, "a removed user is kept, unmanaged");
    let again = approve(&mut client, &blocked.id, 0)
        .await
        .expect_err("not blocked");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);

    // The guard re-arms: two more leave with a maximum of one.
    update(&mut client, &i.id, settings(1), None).await;
    delete_users(&fx, &["Alice Anders", r"Smith\, Erin"]).await;
    let blocked = sync(&mut client, &i.id).await;
    assert_eq!(blocked.state, RunState::Blocked as i32);
    assert_eq!(managed_users(&mut client).await.len(), 2);

    // Under a higher maximum the next run applies them directly, and the
    // superseded blocked run can no longer be approved.
    update(&mut client, &i.id, settings(10), None).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(run.counts.unwrap().removed, 2);
    assert!(managed_users(&mut client).await.is_empty());
    let stale = approve(&mut client, &blocked.id, 0)
        .await
        .expect_err("superseded");
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert!(
        stale.message().contains("superseded"),
        "{}",
        stale.message()
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_failing_integration_pauses_removals_for_the_account() {
    let fx = Fixture::seed();
    let other = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let a = create_integration(&mut client, fx.settings("Head office"), FIXTURE_PASSWORD).await;
    let b = create_integration(&mut client, other.settings("Resource forest"), "wrong").await;
    assert_eq!(
        sync(&mut client, &a.id).await.state,
        RunState::Succeeded as i32
    );
    assert_eq!(
        sync(&mut client, &b.id).await.state,
        RunState::Failed as i32
    );

    delete_users(&fx, &["Bob Brown"]).await;
    let run = sync(&mut client, &a.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(run.counts.unwrap().removed, 0);
    assert!(
        run.hold_reason.contains("paused") && run.hold_reason.contains("Resource forest (failed)"),
        "{}",
        run.hold_reason
    );
    assert!(
        managed_users(&mut client)
            .await
            .contains(&"Bob Brown".to_owned())
    );

    // Once the other integration syncs again, removals resume.
    update(
        &mut client,
        &b.id,
        other.settings("Resource forest"),
        Some(FIXTURE_PASSWORD),
    )
    .await;
    assert_eq!(
        sync(&mut client, &b.id).await.state,
        RunState::Succeeded as i32
    );
    let run = sync(&mut client, &a.id).await;
    assert_eq!(run.counts.unwrap().removed, 1, "{run:?}");
    assert!(run.hold_reason.is_empty());
    stack.stop().await;
}

/// Exchange resource domains: the same person enabled in domain A
/// (acknowledge disabled on) and disabled by design in domain B
/// (acknowledge disabled off) stays enabled whatever the order of runs, and
/// the address has one owner throughout.
#[tokio::test]
async fn resource_domain_pair_never_flaps() {
    let a = Fixture::seed();
    let b = Fixture::seed();
    let alice_b = format!("CN=Alice Anders,OU=People,{}", b.root_dn);
    b.modify(&alice_b, "userAccountControl", &["514"], false)
        .await;
    let stack = Embedded::start().await;

    for (account, order) in [
        ("order-ab", ["A", "B", "A", "B"]),
        ("order-ba", ["B", "A", "B", "A"]),
    ] {
        let mut client = stack.client(account).await;
        let ia =
            create_integration(&mut client, a.settings("Account domain"), FIXTURE_PASSWORD).await;
        let resource = pb::IntegrationSettings {
            acknowledge_disabled_accounts: false,
            ..b.settings("Resource domain")
        };
        let ib = create_integration(&mut client, resource, FIXTURE_PASSWORD).await;
        let mut owners = Vec::new();
        for (n, which) in order.iter().enumerate() {
            let id = if *which == "A" { &ia.id } else { &ib.id };
            let run = sync(&mut client, id).await;
            assert_eq!(
                run.state,
                RunState::Succeeded as i32,
                "{account} run {n}: {}",
                run.error
            );
            let alice = client
                .directory
                .lookup_address(pb::LookupAddressRequest {
                    account_id: account.into(),
                    address: "alice@example.com".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                !alice.disabled,
                "{account}: Alice disabled after run {n} ({which})"
            );
            owners.push(alice.integration_id);
        }
        // Once both have run, the older integration owns the address, and
        // it stays there.
        assert!(
            owners[1..].iter().all(|o| *o == ia.id),
            "{account}: owners {owners:?}"
        );
    }
    stack.stop().await;
}

async fn changes_of_run(client: &mut Client, run_id: &str) -> Vec<pb::Change> {
    client
        .sync
        .list_changes(pb::ListChangesRequest {
            account_id: client.account.clone(),
            run_id: run_id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
}

/// (operation, object, fields) of a run's changes, sorted.
fn shape(changes: &[pb::Change]) -> Vec<(i32, String, Vec<String>)> {
    let mut v: Vec<_> = changes
        .iter()
        .map(|c| {
            let fields = c
                .fields
                .iter()
                .map(|f| format!("{}={}", f.field, f.new))
                .collect();
            (c.operation, c.object_id.clone(), fields)
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn preview_shows_what_the_next_run_does_and_the_log_explains_it() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;

    // A preview of the first sync changes nothing but logs eight adds.
    let req = || pb::SyncNowRequest {
        account_id: "acme".into(),
        integration: i.id.clone(),
        ..Default::default()
    };
    let preview = client.sync.preview_sync(req()).await.unwrap().into_inner();
    let preview = client.wait(&preview.id).await.unwrap();
    assert_eq!(
        preview.state,
        RunState::Succeeded as i32,
        "{}",
        preview.error
    );
    assert_eq!(preview.trigger, pb::RunTrigger::Preview as i32);
    assert_eq!(preview.counts.unwrap().added, 8);
    assert!(
        snapshot(&mut client).await.0.users.is_empty(),
        "a preview applies nothing"
    );
    let previewed = changes_of_run(&mut client, &preview.id).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(
        shape(&previewed),
        shape(&changes_of_run(&mut client, &run.id).await)
    );

    // A change in AD: rename, disable and delete.
    let alice = format!("CN=Alice Anders,OU=People,{}", fx.root_dn);
    fx.modify(&alice, "displayName", &["Alice A."], false).await;
    let carol = format!("CN=Carol Chen,OU=People,{}", fx.root_dn);
    fx.modify(&carol, "userAccountControl", &["514"], false)
        .await;
    delete_users(&fx, &["Bob Brown"]).await;
    let preview = client.sync.preview_sync(req()).await.unwrap().into_inner();
    let preview = client.wait(&preview.id).await.unwrap();
    let previewed = changes_of_run(&mut client, &preview.id).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    let applied = changes_of_run(&mut client, &run.id).await;
    assert_eq!(
        shape(&previewed),
        shape(&applied),
        "the preview showed exactly what the run did"
    );

    let op = |name: &str| {
        applied
            .iter()
            .find(|c| c.dn.starts_with(&format!("CN={name},")))
            .unwrap_or_else(|| panic!("no change for {name}: {applied:?}"))
            .clone()
    };
    let renamed = op("Alice Anders");
    assert_eq!(renamed.operation, pb::ChangeOperation::Update as i32);
    assert!(
        renamed
            .fields
            .iter()
            .any(|f| f.field == "display_name" && f.old == "Alice Anders" && f.new == "Alice A.")
    );
    assert_eq!(
        op("Carol Chen").operation,
        pb::ChangeOperation::Disable as i32
    );

    // "Why is this address unmanaged?"
    let why = client
        .sync
        .list_changes(pb::ListChangesRequest {
            account_id: "acme".into(),
            address: "bob@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(
        why[0].operation,
        pb::ChangeOperation::Demote as i32,
        "{why:?}"
    );
    assert!(
        why[0].reason.contains("no longer in the directory result"),
        "{}",
        why[0].reason
    );
    assert!(
        why[0].reason.contains("kept unmanaged"),
        "{}",
        why[0].reason
    );
    assert_eq!(
        why.last().unwrap().operation,
        pb::ChangeOperation::Add as i32
    );
    stack.stop().await;
}

/// Each policy, turned on and off through the API, changes the store as
/// specified.
#[tokio::test]
async fn policies_toggled_through_the_api() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let base = || fx.settings("Fixture AD");
    let i = create_integration(&mut client, base(), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        RunState::Succeeded as i32
    );
    let directory = client.directory.clone();
    let lookup = |address: &'static str| {
        let mut c = directory.clone();
        async move {
            c.lookup_address(pb::LookupAddressRequest {
                account_id: "acme".into(),
                address: address.into(),
            })
            .await
            .map(tonic::Response::into_inner)
        }
    };
    assert!(lookup("bob@example.com").await.unwrap().disabled);

    // Acknowledge disabled accounts off: AD's flag is ignored.
    let settings = pb::IntegrationSettings {
        acknowledge_disabled_accounts: false,
        ..base()
    };
    update(&mut client, &i.id, settings.clone(), None).await;
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        RunState::Succeeded as i32
    );
    assert!(!lookup("bob@example.com").await.unwrap().disabled);

    // Include contacts off: the contact leaves (deleted).
    let settings = pb::IntegrationSettings {
        include_contacts: false,
        ..settings
    };
    update(&mut client, &i.id, settings.clone(), None).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.counts.unwrap().removed, 1, "{run:?}");
    let gone = lookup("vendor@partner.example.net")
        .await
        .expect_err("contact deleted");
    assert_eq!(gone.code(), tonic::Code::NotFound);

    // Filter email domains: Carol (example.org) leaves scope and is kept
    // unmanaged; Alice's example.org alias is no longer linked.
    let settings = pb::IntegrationSettings {
        filter_email_domains: "example.com".into(),
        ..settings
    };
    update(&mut client, &i.id, settings.clone(), None).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.counts.unwrap().removed, 1, "{run:?}");
    assert!(!lookup("carol@example.org").await.unwrap().managed);
    assert_eq!(
        lookup("alice@example.org")
            .await
            .expect_err("alias out of scope")
            .code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        lookup("a.anders@example.com").await.unwrap().display_name,
        "Alice Anders"
    );

    // Delete users on: a user deleted in AD is deleted from the store.
    let settings = pb::IntegrationSettings {
        delete_users: true,
        ..settings
    };
    update(&mut client, &i.id, settings, None).await;
    delete_users(&fx, &["Bob Brown"]).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.counts.unwrap().removed, 1, "{run:?}");
    assert_eq!(
        lookup("bob@example.com").await.expect_err("deleted").code(),
        tonic::Code::NotFound
    );
    stack.stop().await;
}

/// Two integrations whose Root DNs overlap: each object stays with the
/// integration that synced it first, whatever the order of runs.
#[tokio::test]
async fn overlapping_root_dns_do_not_take_objects_back_and_forth() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let a = create_integration(&mut client, fx.settings("Sync OU"), FIXTURE_PASSWORD).await;
    let whole = pb::IntegrationSettings {
        root_dn: fx.base.clone(),
        ..fx.settings("Whole OU")
    };
    let b = create_integration(&mut client, whole, FIXTURE_PASSWORD).await;
    let counts = |r: &pb::Run| {
        let c = r.counts.unwrap_or_default();
        (c.added, c.updated, c.removed)
    };
    assert_eq!(counts(&sync(&mut client, &a.id).await), (8, 0, 0));
    let run = sync(&mut client, &b.id).await;
    assert_eq!(
        counts(&run),
        (1, 0, 0),
        "only Oscar, outside A's Root DN: {run:?}"
    );
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("already synced by the integration \"Sync OU\"")),
        "{:?}",
        run.warnings
    );
    for _ in 0..2 {
        assert_eq!(counts(&sync(&mut client, &a.id).await), (0, 0, 0));
        assert_eq!(counts(&sync(&mut client, &b.id).await), (0, 0, 0));
    }
    let owner = |address: &'static str| {
        let mut d = client.directory.clone();
        async move {
            d.lookup_address(pb::LookupAddressRequest {
                account_id: String::new(),
                address: address.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .integration_id
        }
    };
    assert_eq!(owner("alice@example.com").await, a.id);
    assert_eq!(owner("oscar@example.com").await, b.id);
    stack.stop().await;
}

/// Speaks for a collector on the stack's bus: the events of one attempt.
struct FakeCollector {
    bus: dirsync_bus::Bus,
    run: pb::Run,
}

impl FakeCollector {
    /// Starts a run of the integration and speaks for its collector, the
    /// start sent.
    async fn begin(client: &mut Client, bus: &dirsync_bus::Bus, integration: &str) -> Self {
        let collector = FakeCollector {
            bus: bus.clone(),
            run: start_sync(client, integration).await,
        };
        collector.start().await;
        collector
    }

    async fn send(&self, id: &str, event: bus::collector_event::Event) {
        use prost::Message;
        let message = bus::CollectorEvent {
            account_id: self.run.account_id.clone(),
            integration_id: self.run.integration_id.clone(),
            run_id: self.run.id.clone(),
            attempt: 1,
            event: Some(event),
        };
        self.bus
            .publish(
                &dirsync_bus::Topic::Events,
                &format!("{}:1:{id}", self.run.id),
                message.encode_to_vec().into(),
            )
            .await
            .expect("publish");
    }

    async fn start(&self) {
        self.send(
            "start",
            bus::collector_event::Event::Started(bus::CollectionStarted {
                host: "dc.example.com".into(),
                memberships_unavailable: false,
                ..Default::default()
            }),
        )
        .await;
    }

    /// Even batches travel as collectors send them (an LZ4 block), odd
    /// ones as an older collector did (the encoded batch).
    async fn batch(&self, sequence: u32, entries: Vec<bus::DirectoryEntry>) {
        use prost::Message;
        let batch = bus::ObjectBatch { sequence, entries };
        let event = if sequence.is_multiple_of(2) {
            bus::collector_event::Event::BatchLz4(dirsync_proto::lz4::compress(
                &batch.encode_to_vec(),
            ))
        } else {
            bus::collector_event::Event::Batch(batch)
        };
        self.send(&format!("b{sequence}"), event).await;
    }

    async fn end(&self, batches: u32, entries: u64) {
        self.send(
            "end",
            bus::collector_event::Event::End(bus::CollectionEnd {
                batches,
                entries,
                complete: true,
                host: "dc.example.com".into(),
                ..Default::default()
            }),
        )
        .await;
    }
}

async fn user_names(client: &mut Client) -> Vec<String> {
    let (snap, _) = snapshot(client).await;
    snap.users.into_iter().map(|u| u.0).collect()
}

async fn settled(client: &mut Client, run: &pb::Run) -> pb::Run {
    tokio::time::timeout(Duration::from_secs(60), client.wait(&run.id))
        .await
        .expect("the run settles")
        .expect("GetRun")
}

/// An integration whose collector the test speaks for.
fn spoken_for() -> pb::IntegrationSettings {
    pb::IntegrationSettings {
        name: "Spoken for".into(),
        r#type: pb::DirectoryType::ActiveDirectory as i32,
        host: "dc.example.com".into(),
        user_dn: "CN=Sync,DC=example,DC=com".into(),
        root_dn: "DC=example,DC=com".into(),
        maximum_sync_deletions: 10,
        ..Default::default()
    }
}

fn user(n: u8, name: &str, domain: &str) -> bus::DirectoryEntry {
    bus::DirectoryEntry {
        kind: bus::ObjectKind::User as i32,
        object_guid: format!("00000000-0000-4000-8000-0000000000{n:02x}"),
        dn: format!("CN={name},OU=People,DC=example,DC=com"),
        mail: format!("{}@{domain}", name.to_lowercase()),
        display_name: name.to_owned(),
        user_account_control: Some(512),
        ..Default::default()
    }
}

/// The reconciler plans a run while its batches arrive; what it read at
/// the start must not outlive a change before the end. Settings changed
/// during the collection apply to the run, and batches out of order are
/// planned in their order all the same: what did not come in order is
/// read from staging at the end, by the same first pass.
#[tokio::test]
async fn a_run_is_planned_with_what_holds_at_its_end() {
    // No collector: the test sends the collection's events itself.
    let stack = Distributed::start_with(&[], 60).await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        acknowledge_disabled_accounts: true,
        filter_email_domains: "a.example,b.example".into(),
        ..spoken_for()
    };
    let i = create_integration(&mut client, settings.clone(), "unused").await;
    let bus = stack.bus().await;
    let read_again = |stack: &Distributed| {
        stack
            .log("reconciler")
            .matches("the first pass is read again")
            .count()
    };
    // How each run's first pass read its batches, run after run.
    let first_passes = |stack: &Distributed| -> Vec<(u32, u32)> {
        let log = stack.log("reconciler");
        log.split("first pass: ")
            .skip(1)
            .map(|rest| {
                let n = |s: &str| s.trim().parse::<u32>().expect("a count");
                let (arrived, rest) = rest
                    .split_once(" batches read as they arrived, ")
                    .expect("arrived");
                let (staged, _) = rest.split_once(" from staging").expect("staged");
                (n(arrived), n(staged))
            })
            .collect()
    };

    // The domain filter narrows once the collection has begun.
    let collector = FakeCollector::begin(&mut client, &bus, &i.id).await;
    let run = collector.run.clone();
    let mut collecting = false;
    for _ in 0..100 {
        let now = client
            .sync
            .get_run(pb::GetRunRequest {
                account_id: String::new(),
                run_id: run.id.clone(),
            })
            .await
            .expect("GetRun")
            .into_inner();
        collecting = now.state == RunState::Collecting as i32;
        if collecting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(collecting, "the reconciler recorded the start");
    // The reconciler reads the store as it records the start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector
        .batch(
            0,
            vec![user(1, "Alice", "a.example"), user(2, "Bob", "b.example")],
        )
        .await;
    update(
        &mut client,
        &i.id,
        pb::IntegrationSettings {
            filter_email_domains: "a.example".into(),
            ..settings.clone()
        },
        None,
    )
    .await;
    collector.end(1, 2).await;
    let done = settled(&mut client, &run).await;
    assert_eq!(done.state, RunState::Succeeded as i32, "{done:?}");
    assert_eq!(
        user_names(&mut client).await,
        ["Alice"],
        "Bob's domain left the filter"
    );
    assert_eq!(read_again(&stack), 1, "{}", stack.log("reconciler"));

    // Batches out of order.
    let collector = FakeCollector::begin(&mut client, &bus, &i.id).await;
    collector
        .batch(1, vec![user(1, "Alice", "a.example")])
        .await;
    collector
        .batch(0, vec![user(3, "Carol", "a.example")])
        .await;
    collector.end(2, 2).await;
    let done = settled(&mut client, &collector.run).await;
    assert_eq!(done.state, RunState::Succeeded as i32, "{done:?}");
    let c = done.counts.unwrap_or_default();
    assert_eq!((c.collected, c.added, c.unchanged), (2, 1, 1), "{done:?}");
    assert_eq!(user_names(&mut client).await, ["Alice", "Carol"]);
    // Of two batches, as many as came in order were read as they came,
    // the others from staging; none was read twice.
    let passes = first_passes(&stack);
    assert_eq!(passes.len(), 2, "{passes:?}");
    assert_eq!(passes[1].0 + passes[1].1, 2, "{passes:?}");

    // In order and unchanged: planned as the batches came.
    let collector = FakeCollector::begin(&mut client, &bus, &i.id).await;
    collector
        .batch(
            0,
            vec![user(3, "Carol", "a.example"), user(1, "Alice", "a.example")],
        )
        .await;
    collector.end(1, 2).await;
    let done = settled(&mut client, &collector.run).await;
    let c = done.counts.unwrap_or_default();
    assert_eq!(
        (c.added, c.updated, c.removed, c.unchanged),
        (0, 0, 0, 2),
        "{done:?}"
    );
    assert_eq!(read_again(&stack), 1, "{}", stack.log("reconciler"));
    assert_eq!(first_passes(&stack)[2], (1, 0), "read as it came");
}

/// A batch that cannot be read off the bus fails its run with the counts
/// that did not add up, the reason in the reconciler's log, and leaves
/// what the store holds as it was. Applied or failed, the reconciler
/// announces the run settled to its watchers.
#[tokio::test]
async fn a_batch_that_cannot_be_read_fails_its_run_and_keeps_the_store() {
    let stack = Distributed::start_with(&[], 60).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, spoken_for(), "unused").await;
    let bus = stack.bus().await;
    let mut announced = bus.settled_runs().await.expect("watch announcements");
    let mut is_announced = async |run: &pb::Run| {
        tokio::time::timeout(Duration::from_secs(10), announced.wait_for(&run.id))
            .await
            .expect("the reconciler announces the run settled");
    };

    let collector = FakeCollector::begin(&mut client, &bus, &i.id).await;
    collector
        .batch(0, vec![user(1, "Alice", "a.example")])
        .await;
    collector.end(1, 1).await;
    let done = settled(&mut client, &collector.run).await;
    assert_eq!(done.state, RunState::Succeeded as i32, "{done:?}");
    is_announced(&done).await;

    // A block that says it holds 64 bytes and holds none.
    let collector = FakeCollector::begin(&mut client, &bus, &i.id).await;
    collector
        .send(
            "b0",
            bus::collector_event::Event::BatchLz4(vec![64, 0, 0, 0, 0xff]),
        )
        .await;
    collector.end(1, 1).await;
    let done = settled(&mut client, &collector.run).await;
    assert_eq!(done.state, RunState::Failed as i32, "{done:?}");
    is_announced(&done).await;
    assert!(
        done.error
            .contains("reported 1 batches (1 objects) but only 0 batches (0 objects) arrived"),
        "{done:?}"
    );
    assert!(
        stack
            .log("reconciler")
            .contains("dropping an object batch that cannot be decompressed"),
        "{}",
        stack.log("reconciler")
    );
    assert_eq!(user_names(&mut client).await, ["Alice"]);
}
