//! Faults injected on every seam while runs are in flight: PostgreSQL's
//! connections killed and the server crashed, NATS JetStream killed and
//! started again, the domain controller's connection cut in the middle of
//! a paged read, and collectors and reconcilers SIGKILLed at random over
//! twenty runs of a changing directory. Each ends with the store compared
//! with the directory it should hold, and records what held
//! (RELIABILITY.md).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use dirsync::cli::Client;
use dirsync_proto::api;
use dirsync_tests::faults::{PrivateNats, PrivatePostgres, Relay};
use dirsync_tests::{
    Distributed, FIXTURE_PASSWORD, Fixture, Reliability, assert_succeeded, create_integration, env,
    snapshot, start_sync, sync,
};

/// The contacts of the bulk OU (3000) as stored: (count, distinct
/// addresses), and the members of its group.
async fn bulk_state(client: &mut Client) -> (usize, usize, usize) {
    let req = || api::ListObjectsRequest {
        account_id: client.account.clone(),
        ..Default::default()
    };
    let contacts = client
        .directory
        .clone()
        .list_contacts(req())
        .await
        .unwrap()
        .into_inner()
        .objects;
    let addresses: HashSet<String> = contacts.iter().map(|c| c.primary_address.clone()).collect();
    let groups = client
        .directory
        .clone()
        .list_groups(req())
        .await
        .unwrap()
        .into_inner()
        .objects;
    (
        contacts.len(),
        addresses.len(),
        groups.first().map_or(0, |g| g.member_ids.len()),
    )
}

/// Waits for a run to settle, through gateway errors (the store or the
/// bus may be down for a while); the run, and how many polls failed.
async fn settle(client: &mut Client, run_id: &str, within: Duration) -> (api::Run, u32) {
    let deadline = Instant::now() + within;
    let mut errors = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "run {run_id} did not settle within {within:?}"
        );
        match client
            .sync
            .get_run(api::GetRunRequest {
                account_id: client.account.clone(),
                run_id: run_id.to_owned(),
            })
            .await
        {
            Ok(r) => {
                let run = r.into_inner();
                let active = [
                    api::RunState::Queued,
                    api::RunState::Collecting,
                    api::RunState::Reconciling,
                ]
                .iter()
                .any(|s| *s as i32 == run.state);
                if !active {
                    return (run, errors);
                }
            }
            Err(_) => errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `name`'s log has `needle` once more than `seen` times.
async fn wait_log(stack: &Distributed, name: &str, needle: &str, seen: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while stack.log(name).matches(needle).count() <= seen {
        assert!(
            Instant::now() < deadline,
            "{name} never logged {needle:?}:\n{}",
            stack.log(name)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

const BULK: (usize, usize, usize) = (3000, 3000, 3000);

fn lost_and_duplicates(state: (usize, usize, usize)) -> (usize, usize) {
    (
        BULK.0.saturating_sub(state.1) + BULK.2.saturating_sub(state.2),
        state.0 - state.1,
    )
}

#[tokio::test]
async fn postgres_connections_killed_mid_run_and_mid_apply() {
    let fx = Fixture::seed();
    let stack = Distributed::start_with(&[None], 3).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.bulk_settings("Bulk"), FIXTURE_PASSWORD).await;
    let admin = sqlx::PgPool::connect(&env("DIRSYNC_TEST_POSTGRES_URL"))
        .await
        .unwrap();
    let database = stack.database().rsplit('/').next().unwrap().to_owned();
    let kill = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_one(&admin)
        .await
        .unwrap()
    };
    let run = start_sync(&mut client, &i.id).await;
    // While the collector reads and the reconciler stages, then while it
    // applies: every connection of the store's database, mid-transaction.
    wait_log(&stack, "collector-0", "bound; collecting", 0).await;
    let mut killed = kill().await;
    wait_log(&stack, "reconciler", "applying the plan", 0).await;
    let at = Instant::now();
    killed += kill().await;
    let (run, errors) = settle(&mut client, &run.id, Duration::from_secs(120)).await;
    let recovery = at.elapsed().as_secs_f64();
    assert_succeeded(&run);
    let state = bulk_state(&mut client).await;
    assert_eq!(state, BULK);
    // The gateway answers without a restart of its own.
    let again = sync(&mut client, &i.id).await;
    assert_succeeded(&again);
    assert_eq!(bulk_state(&mut client).await, BULK);
    let (lost, duplicates) = lost_and_duplicates(state);
    Reliability {
        scenario: "PostgreSQL connections killed mid-collection and mid-apply".into(),
        injected: format!(
            "pg_terminate_backend of every connection of the store's database, twice in one run ({killed} connections)"
        ),
        times: 2,
        runs_settled: (2, 2),
        objects_compared: BULK.0 + 1,
        duplicates,
        lost,
        recovery_seconds: recovery,
        held: format!(
            "the run succeeded on its own; the reconciler and gateway reconnected without a restart ({errors} gateway calls failed meanwhile)"
        ),
    }
    .record();
}

#[tokio::test]
async fn postgres_crashed_and_restarted_mid_apply() {
    let fx = Fixture::seed();
    let pg = PrivatePostgres::start();
    let stack = Distributed::start_on(&[None], 3, "info", Vec::new(), Some(pg.url()), None).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.bulk_settings("Bulk"), FIXTURE_PASSWORD).await;
    let run = start_sync(&mut client, &i.id).await;
    wait_log(&stack, "reconciler", "applying the plan", 0).await;
    let at = Instant::now();
    pg.crash_and_restart();
    let (first, mut errors) = settle(&mut client, &run.id, Duration::from_secs(120)).await;
    // The crash emptied the staged batches (they write no WAL): the run
    // fails saying so, and a new run reads the directory again.
    let (run, settled) = if first.state == api::RunState::Failed as i32 {
        assert!(
            first.error.contains("the store restarted during the run"),
            "{}",
            first.error
        );
        let retry = first
            .error
            .rsplit("(run ")
            .next()
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no retry run named: {}", first.error))
            .to_owned();
        let (retry, more) = settle(&mut client, &retry, Duration::from_secs(120)).await;
        errors += more;
        (retry, 3)
    } else {
        (first, 2)
    };
    let recovery = at.elapsed().as_secs_f64();
    assert_succeeded(&run);
    let state = bulk_state(&mut client).await;
    assert_eq!(state, BULK);
    let again = sync(&mut client, &i.id).await;
    assert_succeeded(&again);
    let (lost, duplicates) = lost_and_duplicates(state);
    Reliability {
        scenario: "PostgreSQL crashed and restarted mid-apply".into(),
        injected: "pg_ctl stop -m immediate, then start, of the store's own cluster while the reconciler applied".into(),
        times: 1,
        runs_settled: (settled, settled),
        objects_compared: BULK.0 + 1,
        duplicates,
        lost,
        recovery_seconds: recovery,
        held: format!(
            "the apply's transaction was lost whole; the crash emptied the run's staged batches, so the run failed saying so and a new run read the directory again, on its own; no service restarted ({errors} gateway calls failed meanwhile)"
        ),
    }
    .record();
}

#[tokio::test]
async fn nats_restarted_mid_collection_and_mid_apply() {
    let fx = Fixture::seed();
    let mut nats = PrivateNats::start();
    let stack = Distributed::start_on(&[None], 3, "info", Vec::new(), None, Some(nats.url())).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.bulk_settings("Bulk"), FIXTURE_PASSWORD).await;
    let mut recovery: f64 = 0.0;
    let mut polls_failed = 0;
    for (n, (name, needle)) in [
        ("collector-0", "bound; collecting"),
        ("reconciler", "applying the plan"),
    ]
    .into_iter()
    .enumerate()
    {
        let run = start_sync(&mut client, &i.id).await;
        wait_log(&stack, name, needle, n).await;
        let at = Instant::now();
        nats.kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        nats.start_again();
        let (run, errors) = settle(&mut client, &run.id, Duration::from_secs(180)).await;
        recovery = recovery.max(at.elapsed().as_secs_f64());
        polls_failed += errors;
        assert_succeeded(&run);
        assert_eq!(
            bulk_state(&mut client).await,
            BULK,
            "after the restart {}",
            n + 1
        );
    }
    let state = bulk_state(&mut client).await;
    let (lost, duplicates) = lost_and_duplicates(state);
    Reliability {
        scenario: "NATS JetStream killed mid-collection and mid-apply".into(),
        injected: "SIGKILL of the stack's own nats-server, started again on the same store a second later".into(),
        times: 2,
        runs_settled: (2, 2),
        objects_compared: BULK.0 + 1,
        duplicates,
        lost,
        recovery_seconds: recovery,
        held: format!(
            "both runs succeeded; the services reconnected and redelivered work without a restart ({polls_failed} gateway calls failed meanwhile)"
        ),
    }
    .record();
}

#[tokio::test]
async fn the_domain_controller_cut_mid_read() {
    let fx = Fixture::seed();
    let stack = Distributed::start_with(&[None], 3).await;
    let dc: std::net::IpAddr = env("DIRSYNC_TEST_AD_HOST").parse().unwrap();
    let target = std::net::SocketAddr::new(dc, 636);
    // Two relays on addresses of their own, port 636 like the DC's.
    let with_alternate = Relay::start("127.0.0.21:636".parse().unwrap(), target).await;
    let without = Relay::start("127.0.0.22:636".parse().unwrap(), target).await;

    // With an alternate host: the run goes on there, as a new attempt.
    let mut client = stack.client("acme").await;
    let settings = api::IntegrationSettings {
        host: with_alternate.listen.ip().to_string(),
        alternate_host: dc.to_string(),
        ..fx.bulk_settings("Bulk")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    with_alternate.cut_after(300_000);
    let at = Instant::now();
    let run = sync(&mut client, &i.id).await;
    let recovery = at.elapsed().as_secs_f64();
    assert!(with_alternate.was_cut(), "the read ended before the cut");
    assert_succeeded(&run);
    assert_eq!(run.host, dc.to_string(), "{run:?}");
    assert!(run.attempt >= 2, "a new attempt on the alternate: {run:?}");
    let state = bulk_state(&mut client).await;
    assert_eq!(state, BULK);
    let (lost, duplicates) = lost_and_duplicates(state);
    Reliability {
        scenario: "Domain controller lost mid-read, alternate host configured".into(),
        injected: "the DC's connection cut after 300 KB of a 3,001-object paged read (a TCP relay in front of the DC, closed)".into(),
        times: 1,
        runs_settled: (1, 1),
        objects_compared: BULK.0 + 1,
        duplicates,
        lost,
        recovery_seconds: recovery,
        held: format!("the run read again from the alternate host as attempt {}, and succeeded", run.attempt),
    }
    .record();

    // Without one: the run fails, and nothing stored is removed.
    let mut other = stack.client("beta").await;
    let settings = api::IntegrationSettings {
        host: without.listen.ip().to_string(),
        ..fx.bulk_settings("Bulk")
    };
    let j = create_integration(&mut other, settings, FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut other, &j.id).await);
    let before = snapshot(&mut other).await.0;
    without.cut_after(300_000);
    let run = sync(&mut other, &j.id).await;
    assert!(without.was_cut());
    assert_eq!(run.state, api::RunState::Failed as i32, "{run:?}");
    assert!(run.error.contains("connection"), "{}", run.error);
    assert_eq!(snapshot(&mut other).await.0, before);
    assert_eq!(bulk_state(&mut other).await, BULK);
    Reliability {
        scenario: "Domain controller lost mid-read, no alternate host".into(),
        injected: "the DC's connection cut after 300 KB of a 3,001-object paged read (a TCP relay in front of the DC, closed)".into(),
        times: 1,
        runs_settled: (2, 2),
        objects_compared: BULK.0 + 1,
        duplicates: 0,
        lost: 0,
        recovery_seconds: 0.0,
        held: format!("the run failed saying \"{}\"; nothing was removed", run.error),
    }
    .record();
}

#[tokio::test]
async fn collectors_and_reconcilers_killed_at_random_over_twenty_runs() {
    const RUNS: usize = 20;
    let seed: u64 = std::env::var("DIRSYNC_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_205);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let fx = Fixture::seed();
    let mut stack = Distributed::start_with(&[None, None], 2).await;
    stack.add("reconciler-1");
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Chaos"), FIXTURE_PASSWORD).await;
    let mut ldap = fx.admin().await;
    let people = format!("OU=People,{}", fx.root_dn);
    let victims = ["collector-0", "collector-1", "reconciler", "reconciler-1"];
    let mut settled = 0;
    let mut recovery: f64 = 0.0;
    for n in 0..RUNS {
        // The directory changes between runs.
        let title = format!("Title {n}");
        ldap.modify(
            &format!("CN=Alice Anders,{people}"),
            vec![ldap3::Mod::Replace(
                "title",
                HashSet::from([title.as_str()]),
            )],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        let run = start_sync(&mut client, &i.id).await;
        let victim = victims[rng.random_range(0..victims.len())];
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
        stack.kill(victim);
        let at = Instant::now();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1000))).await;
        stack.restart(victim);
        let (run, _) = settle(&mut client, &run.id, Duration::from_secs(90)).await;
        recovery = recovery.max(at.elapsed().as_secs_f64());
        assert_succeeded(&run);
        settled += 1;
    }
    // The store equals a clean sync of the same directory, in an account
    // no fault touched.
    let (chaos, objects) = snapshot(&mut client).await;
    let mut clean_client = stack.client("clean").await;
    let clean = create_integration(&mut clean_client, fx.settings("Clean"), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut clean_client, &clean.id).await);
    let (expected, _) = snapshot(&mut clean_client).await;
    assert_eq!(chaos, expected, "seed {seed}");
    let addresses: Vec<&str> = objects.iter().map(|o| o.primary_address.as_str()).collect();
    let distinct: HashSet<&&str> = addresses.iter().collect();
    Reliability {
        scenario: "Collectors and reconcilers SIGKILLed at random".into(),
        injected: format!(
            "two of each; one SIGKILLed 0-1.5 s into each of {RUNS} runs of a changing directory, started again 0-1 s later (seed {seed})"
        ),
        times: RUNS as u32,
        runs_settled: (settled, RUNS as u32),
        objects_compared: objects.len(),
        duplicates: addresses.len() - distinct.len(),
        lost: 0,
        recovery_seconds: recovery,
        held: "every run settled as succeeded; the store equals a clean sync of the same directory".into(),
    }
    .record();
}

#[tokio::test]
async fn a_slow_then_dead_link_to_the_domain_controller() {
    let fx = Fixture::seed();
    let max_run_minutes = 2;
    let stack = Distributed::start_env(
        &[None],
        30,
        "info",
        vec![
            ("DIRSYNC_LDAP_CONNECT_TIMEOUT_SECONDS", "3".to_owned()),
            ("DIRSYNC_LDAP_OPERATION_TIMEOUT_SECONDS", "3".to_owned()),
            ("DIRSYNC_MAX_RUN_MINUTES", max_run_minutes.to_string()),
        ],
    )
    .await;
    let dc: std::net::IpAddr = env("DIRSYNC_TEST_AD_HOST").parse().unwrap();
    let target = std::net::SocketAddr::new(dc, 636);
    let slow = Relay::start("127.0.0.23:636".parse().unwrap(), target).await;
    let dead = Relay::start("127.0.0.24:636".parse().unwrap(), target).await;
    let bound = Duration::from_secs(max_run_minutes * 60);

    // Slow but alive (40 ms each way per chunk, 512 KB/s): the run
    // succeeds; no timeout fires on a link that is only slow.
    let mut client = stack.client("acme").await;
    let settings = api::IntegrationSettings {
        host: slow.listen.ip().to_string(),
        alternate_host: dc.to_string(),
        ..fx.bulk_settings("Slow")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    slow.slow(40, 512 << 10);
    let at = Instant::now();
    let started = start_sync(&mut client, &i.id).await;
    let (run, _) = settle(&mut client, &started.id, bound).await;
    let slow_took = at.elapsed();
    assert_succeeded(&run);
    assert_eq!(
        run.host,
        slow.listen.ip().to_string(),
        "read over the slow link: {run:?}"
    );
    assert_eq!(bulk_state(&mut client).await, BULK);

    // The link goes dead mid-read (no reset): the operation timeout
    // fires and the run goes on at the alternate host.
    slow.stall_after(300_000);
    let at = Instant::now();
    let started = start_sync(&mut client, &i.id).await;
    let (run, _) = settle(&mut client, &started.id, bound).await;
    let failover = at.elapsed();
    assert!(slow.stalled(), "the read ended before the stall");
    assert_succeeded(&run);
    assert_eq!(run.host, dc.to_string(), "{run:?}");
    assert_eq!(bulk_state(&mut client).await, BULK);

    // Without an alternate host the run fails in time, and removes
    // nothing.
    let mut other = stack.client("beta").await;
    let settings = api::IntegrationSettings {
        host: dead.listen.ip().to_string(),
        ..fx.bulk_settings("Dead")
    };
    let j = create_integration(&mut other, settings, FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut other, &j.id).await);
    dead.stall_after(300_000);
    let at = Instant::now();
    let started = start_sync(&mut other, &j.id).await;
    let (run, _) = settle(&mut other, &started.id, bound).await;
    let failed_in = at.elapsed();
    assert!(dead.stalled());
    assert_eq!(run.state, api::RunState::Failed as i32, "{run:?}");
    assert!(
        run.error.contains("did not answer within 3s"),
        "{}",
        run.error
    );
    assert!(failed_in < Duration::from_secs(30), "{failed_in:?}");
    assert_eq!(bulk_state(&mut other).await, BULK);
    Reliability {
        scenario: "A slow, then dead, link to the domain controller".into(),
        injected: "a relay in front of the DC: 40 ms per chunk each way and 512 KB/s, then stalled after 300 KB with the connection left open (tc netem needs sch_netem, which this kernel lacks)".into(),
        times: 3,
        runs_settled: (4, 4),
        objects_compared: 2 * (BULK.0 + 1),
        duplicates: 0,
        lost: 0,
        recovery_seconds: failover.as_secs_f64(),
        held: format!(
            "the slow read succeeded in {:.1} s with no timeout; the stalled read timed out (3 s) and went on at the alternate host ({:.1} s in all); without one the run failed in {:.1} s, nothing removed; every run settled well within --max-run-minutes {max_run_minutes}",
            slow_took.as_secs_f64(),
            failover.as_secs_f64(),
            failed_in.as_secs_f64()
        ),
    }
    .record();
}
