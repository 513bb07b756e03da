//! End-to-end syncs through the public gRPC API, in both shapes.

use dirsync::cli::Client;
use dirsync_proto::api::{self as pb, RunState};
use dirsync_tests::{
    Distributed, Embedded, FIXTURE_PASSWORD, Fixture, assert_succeeded, counts, create_integration,
    expected_fixture, snapshot, sync,
};

/// Full sync, unchanged resync, then one user changed in AD.
async fn full_unchanged_and_changed(client: &mut Client, fx: &Fixture) {
    let integration = create_integration(client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert!(integration.password_set);

    // 1. Full sync: exactly the fixture.
    let run = sync(client, &integration.id).await;
    assert_succeeded(&run);
    // 6 users, 2 groups, 2 contacts read; 5 users (one has no mail),
    // 2 groups and 1 contact (one has no mail) synced.
    assert_eq!(counts(&run), (10, 8, 0, 0, 0));
    assert_eq!(run.host, dirsync_tests::env("DIRSYNC_TEST_AD_HOST"));
    let (snap, all) = snapshot(client).await;
    assert_eq!(snap, expected_fixture());
    // Escaped and non-ASCII DNs round-trip exactly.
    let dns: Vec<&str> = all.iter().map(|o| o.dn.as_str()).collect();
    assert!(
        dns.contains(&format!(r"CN=Smith\, Erin,OU=People,{}", fx.root_dn).as_str()),
        "{dns:?}"
    );
    assert!(
        dns.contains(&format!("CN=Zoë Ærø,OU=People,{}", fx.root_dn).as_str()),
        "{dns:?}"
    );
    // Manager links and group types.
    let by_name = |n: &str| all.iter().find(|o| o.display_name == n).unwrap().clone();
    assert_eq!(
        by_name("Smith, Erin").manager_id,
        by_name("Alice Anders").id
    );
    assert!(
        by_name("Smith, Erin")
            .manager_dn
            .starts_with("CN=Alice Anders,")
    );
    let eng = by_name("Engineering");
    assert!(eng.security_group);
    assert_eq!(eng.group_scope, pb::GroupScope::Global as i32);
    let all_staff = by_name("All Staff");
    assert!(!all_staff.security_group);
    assert_eq!(all_staff.group_scope, pb::GroupScope::Universal as i32);
    assert!(by_name("Alice Anders").object_sid.starts_with("S-1-5-21-"));
    // Look-up by any address, primary or alias, in any case.
    for address in [
        "alice@example.com",
        "ALICE@example.org",
        "a.anders@example.com",
    ] {
        let found = client
            .directory
            .lookup_address(pb::LookupAddressRequest {
                account_id: client.account.clone(),
                address: address.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.display_name, "Alice Anders", "{address}");
    }
    // The X500 address is not an email address.
    let x500 = client
        .directory
        .lookup_address(pb::LookupAddressRequest {
            account_id: client.account.clone(),
            address: "oscar@example.com".to_owned(),
        })
        .await
        .expect_err("outside the Root DN");
    assert_eq!(x500.code(), tonic::Code::NotFound);

    // 2. Nothing changed in AD: nothing written.
    let run = sync(client, &integration.id).await;
    assert_succeeded(&run);
    assert_eq!(counts(&run), (10, 0, 0, 0, 8));
    assert_eq!(snapshot(client).await.0, expected_fixture());

    // 3. One user renamed and given an alias: exactly that user is updated.
    let alice = format!("CN=Alice Anders,OU=People,{}", fx.root_dn);
    fx.modify(&alice, "displayName", &["Alice Anders-Smith"], false)
        .await;
    fx.modify(
        &alice,
        "proxyAddresses",
        &["smtp:alice.smith@example.com"],
        true,
    )
    .await;
    let run = sync(client, &integration.id).await;
    assert_succeeded(&run);
    assert_eq!(counts(&run), (10, 0, 1, 0, 7));
    let mut expected = expected_fixture();
    expected.users[0].0 = "Alice Anders-Smith".to_owned();
    expected.users[0]
        .2
        .push("alice.smith@example.com".to_owned());
    expected.users[0].2.sort();
    for g in &mut expected.groups {
        for m in &mut g.2 {
            if m == "Alice Anders" {
                *m = "Alice Anders-Smith".to_owned();
            }
        }
    }
    assert_eq!(snapshot(client).await.0, expected);

    // The runs are listed newest first.
    let runs = client
        .sync
        .list_runs(pb::ListRunsRequest {
            account_id: client.account.clone(),
            integration: "Fixture AD".to_owned(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 3);
    assert_eq!(counts(&runs[0]), (10, 0, 1, 0, 7));
}

#[tokio::test]
async fn embedded_sync_full_unchanged_and_changed() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    full_unchanged_and_changed(&mut client, &fx).await;
    stack.stop().await;
}

#[tokio::test]
async fn distributed_sync_full_unchanged_and_changed() {
    let fx = Fixture::seed();
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    full_unchanged_and_changed(&mut client, &fx).await;
}

/// A wrong bind password fails the run with AD's reason; the store keeps
/// what it had.
async fn wrong_password_fails_and_keeps_the_store(client: &mut Client, fx: &Fixture) {
    let integration = create_integration(client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(client, &integration.id).await);
    let before = snapshot(client).await.0;

    client
        .integrations
        .update_integration(pb::UpdateIntegrationRequest {
            account_id: client.account.clone(),
            integration: integration.id.clone(),
            settings: Some(fx.settings("Fixture AD")),
            password: Some("not-the-password".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let run = sync(client, &integration.id).await;
    assert_eq!(run.state, RunState::Failed as i32, "{run:?}");
    assert!(
        run.error.contains("credentials were rejected"),
        "{}",
        run.error
    );
    assert!(run.error.contains("52e"), "{}", run.error);
    assert_eq!(snapshot(client).await.0, before);
}

#[tokio::test]
async fn embedded_wrong_password_fails_the_run() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    wrong_password_fails_and_keeps_the_store(&mut client, &fx).await;
    stack.stop().await;
}

#[tokio::test]
async fn distributed_wrong_password_fails_the_run() {
    let fx = Fixture::seed();
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    wrong_password_fails_and_keeps_the_store(&mut client, &fx).await;
}

/// Two collectors share one partition: ten queued jobs each run once, and
/// when one collector is killed the other finishes every job correctly.
#[tokio::test]
async fn collectors_share_jobs_and_survive_a_kill() {
    let fx = Fixture::seed();
    let mut stack = Distributed::start_with(&[None, None], 3).await;
    let accounts: Vec<String> = (0..10).map(|n| format!("tenant-{n}")).collect();
    let mut runs = Vec::new();
    for account in &accounts {
        let mut client = stack.client(account).await;
        let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
        let run = dirsync_tests::start_sync(&mut client, &i.id).await;
        runs.push((account.clone(), run.id));
    }

    // Kill collector-0 in the middle of a collection.
    let started = std::time::Instant::now();
    let victim = loop {
        let log = stack.log("collector-0");
        if let Some(line) = log.lines().find(|l| l.contains("bound; collecting")) {
            let run = line
                .split("run=")
                .nth(1)
                .and_then(|r| r.split([' ', '}']).next());
            break run.unwrap().to_owned();
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "collector-0 never started a job"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    stack.kill("collector-0");
    let finished_before_kill = stack
        .log("collector-0")
        .lines()
        .any(|l| l.contains(&victim) && l.contains("collection complete"));

    let mut collected_by = std::collections::BTreeMap::new();
    for (account, run_id) in &runs {
        let mut client = stack.client(account).await;
        let run = tokio::time::timeout(std::time::Duration::from_secs(90), client.wait(run_id))
            .await
            .expect("a run did not settle after a collector was killed")
            .unwrap();
        assert_succeeded(&run);
        assert_eq!(counts(&run), (10, 8, 0, 0, 0), "run {run_id}");
        let (snap, _) = snapshot(&mut client).await;
        assert_eq!(snap, expected_fixture(), "{account}");
        *collected_by.entry(run.attempt).or_insert(0) += 1;
    }
    // The job killed mid-collection was redelivered: its result comes from
    // a later attempt, and the dead attempt's batches did not mix in.
    let account = &runs.iter().find(|(_, r)| *r == victim).unwrap().0;
    let mut client = stack.client(account).await;
    let run = client
        .sync
        .get_run(pb::GetRunRequest {
            account_id: account.clone(),
            run_id: victim.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        finished_before_kill || run.attempt >= 2,
        "run {victim} was interrupted but settled on attempt {} ({collected_by:?})",
        run.attempt
    );
    assert!(stack.log("collector-1").contains("collection complete"));
}

/// Jobs go to the collectors of their integration's partition.
#[tokio::test]
async fn jobs_are_routed_to_their_partition() {
    let fx = Fixture::seed();
    let stack = Distributed::start_with(&[Some("east"), Some("west")], 60).await;
    let mut runs = Vec::new();
    for (account, partition) in [("a-east", "east"), ("a-west", "west"), ("a-north", "north")] {
        let mut client = stack.client(account).await;
        let settings = pb::IntegrationSettings {
            partition: partition.to_owned(),
            ..fx.settings("Fixture AD")
        };
        let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
        assert_eq!(i.settings.unwrap().partition, partition);
        let run = client
            .sync
            .sync_now(pb::SyncNowRequest {
                account_id: account.to_owned(),
                integration: i.id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        runs.push((account, run.id));
    }
    for (n, (account, run_id)) in runs.iter().take(2).enumerate() {
        let mut client = stack.client(account).await;
        let run = client.wait(run_id).await.unwrap();
        assert_succeeded(&run);
        let own = stack.log(&format!("collector-{n}"));
        let other = stack.log(&format!("collector-{}", 1 - n));
        assert!(
            own.contains(run_id.as_str()),
            "{account} not collected by collector-{n}"
        );
        assert!(
            !other.contains(run_id.as_str()),
            "{account} collected by the other partition"
        );
    }
    // No collector serves "north": its run waits in the queue.
    let (account, run_id) = &runs[2];
    let mut client = stack.client(account).await;
    let run = client
        .sync
        .get_run(pb::GetRunRequest {
            account_id: account.to_string(),
            run_id: run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.state, RunState::Queued as i32);
}

/// SIGKILL the reconciler while it applies a large run: nothing is half
/// applied, and after a restart the run completes exactly as a clean one.
#[tokio::test]
async fn reconciler_killed_mid_apply_leaves_nothing_half_applied() {
    let fx = Fixture::seed(); // for the bind account
    let mut stack = Distributed::start_with(&[None], 3).await;
    let mut client = stack.client("acme").await;
    let settings = fx.bulk_settings("Bulk");
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    let run = dirsync_tests::start_sync(&mut client, &i.id).await;

    let started = std::time::Instant::now();
    while !stack.log("reconciler").contains("applying the plan") {
        assert!(
            started.elapsed().as_secs() < 90,
            "the reconciler never started applying"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    stack.kill("reconciler");

    let contacts = |client: &mut dirsync::cli::Client| {
        let mut d = client.directory.clone();
        async move {
            d.list_contacts(pb::ListObjectsRequest {
                account_id: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .objects
            .len()
        }
    };
    let after_kill = contacts(&mut client).await;
    let state = client
        .sync
        .get_run(pb::GetRunRequest {
            account_id: "acme".into(),
            run_id: run.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .state;
    assert!(
        (after_kill == 0 && state != RunState::Succeeded as i32)
            || (after_kill == 3000 && state == RunState::Succeeded as i32),
        "half applied: {after_kill} contacts, run state {state}"
    );

    stack.restart("reconciler");
    let run = tokio::time::timeout(std::time::Duration::from_secs(120), client.wait(&run.id))
        .await
        .expect("the run did not complete after the restart")
        .unwrap();
    assert_succeeded(&run);
    assert_eq!(counts(&run), (3001, 3001, 0, 0, 0));
    assert_eq!(contacts(&mut client).await, 3000);
    let groups = client
        .directory
        .list_groups(pb::ListObjectsRequest {
            account_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .objects;
    assert_eq!(groups[0].member_ids.len(), 3000);
}
