//! The scheduler against PostgreSQL and NATS JetStream, on a controlled
//! clock: slots in three time zones, replicas, catch-up and stuck runs.

use std::sync::Arc;
use std::time::Duration;

use dirsync_bus::{Bus, Topic};
use dirsync_core::{FixedClock, RunState, Trigger, UnixMillis};
use dirsync_proto::api;
use dirsync_scheduler::{Scheduler, Timing};
use dirsync_store::{AccountRecord, IntegrationRecord, Store};
use dirsync_tests::{env, postgres_database, tag};

fn ms(rfc3339: &str) -> UnixMillis {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

async fn integration(
    store: &Store,
    account: &str,
    time_zone: &str,
    created_at: UnixMillis,
) -> String {
    store
        .update_account(
            &AccountRecord {
                id: account.to_owned(),
                time_zone: time_zone.to_owned(),
                schedule: "08:00,13:00,23:00".to_owned(),
                ldap_sign_in: false,
            },
            created_at,
        )
        .await
        .unwrap();
    let id = format!("i-{account}");
    store
        .create_integration(&IntegrationRecord {
            id: id.clone(),
            account_id: account.to_owned(),
            settings: dirsync_convert::settings_from_api(&api::IntegrationSettings {
                name: "HQ".into(),
                host: "dc1.corp.example.test".into(),
                user_dn: "CN=r,DC=corp,DC=example,DC=test".into(),
                root_dn: "DC=corp,DC=example,DC=test".into(),
                ..Default::default()
            })
            .unwrap(),
            password: None,
            created_at,
            updated_at: created_at,
        })
        .await
        .unwrap();
    id
}

struct Setup {
    database: String,
    prefix: String,
    clock: FixedClock,
}

impl Setup {
    async fn new(start: UnixMillis) -> Self {
        Self {
            database: postgres_database().await,
            prefix: format!("t_{}", tag()),
            clock: FixedClock::new(start),
        }
    }

    /// A replica: its own store pool and bus connection.
    async fn scheduler(&self) -> Scheduler {
        Scheduler {
            store: dirsync_store::connect(&self.database).await.unwrap(),
            bus: self.bus().await,
            clock: Arc::new(self.clock.clone()),
            timing: Timing {
                tick: Duration::from_secs(30),
                catch_up_horizon: Duration::from_secs(6 * 3600),
                // No collector runs here: runs fail as stuck after an hour,
                // which frees the integration for its next slot.
                max_run_duration: Duration::from_secs(3600),
                delta_interval: None,
            },
        }
    }

    async fn bus(&self) -> Bus {
        Bus::nats(
            &env("DIRSYNC_TEST_NATS_URL"),
            &self.prefix,
            Duration::from_secs(60),
            None,
        )
        .await
        .unwrap()
    }

    /// Jobs waiting on the bus.
    async fn drain_jobs(&self) -> usize {
        let bus = self.bus().await;
        let mut sub = bus
            .subscribe(&Topic::Jobs { partition: None })
            .await
            .unwrap();
        let mut n = 0;
        while let Ok(Ok(Some(d))) =
            tokio::time::timeout(Duration::from_millis(500), sub.next()).await
        {
            d.ack().await.unwrap();
            n += 1;
        }
        n
    }
}

#[tokio::test]
async fn three_replicas_over_a_day_start_three_runs_per_integration() {
    // 2026-07-01 00:00 in Kolkata (UTC+5:30) to 2026-07-02 00:00 in New
    // York (UTC-4): a full local day in each zone.
    let start = ms("2026-06-30T18:00:00Z");
    let end = ms("2026-07-02T06:00:00Z");
    let setup = Setup::new(start).await;
    let replicas = [
        setup.scheduler().await,
        setup.scheduler().await,
        setup.scheduler().await,
    ];
    let store = &replicas[0].store;
    let created = start - 86_400_000;
    let zones = [
        ("london", "Europe/London"),
        ("newyork", "America/New_York"),
        ("kolkata", "Asia/Kolkata"),
    ];
    for (account, tz) in zones {
        integration(store, account, tz, created).await;
    }

    let mut now = start;
    while now <= end {
        setup.clock.set(now);
        let (a, b, c) = tokio::join!(replicas[0].tick(), replicas[1].tick(), replicas[2].tick());
        for r in [a, b, c] {
            r.unwrap();
        }
        now += 5 * 60_000;
    }

    for (account, tz) in zones {
        let runs = store
            .list_runs(account, &format!("i-{account}"), 100)
            .await
            .unwrap();
        let mut slots: Vec<String> = runs
            .iter()
            .filter(|r| r.trigger == Trigger::Schedule)
            .filter_map(|r| r.slot.clone())
            .filter(|s| s.starts_with("2026-07-01"))
            .collect();
        slots.sort();
        assert_eq!(
            slots,
            ["2026-07-01T08:00", "2026-07-01T13:00", "2026-07-01T23:00"],
            "{tz}"
        );
        // Each run started within a tick of its slot's local time.
        let schedule = dirsync_core::schedule::Schedule::parse(tz, "08:00,13:00,23:00").unwrap();
        for r in runs.iter().filter(|r| {
            r.slot
                .as_deref()
                .is_some_and(|s| s.starts_with("2026-07-01"))
        }) {
            let due = schedule
                .slots_between(start - 86_400_000, end)
                .into_iter()
                .find(|s| Some(&s.id) == r.slot.as_ref())
                .unwrap()
                .due;
            assert!(
                (0..5 * 60_000).contains(&(r.created_at - due)),
                "{tz} {:?}",
                r.slot
            );
            // Nothing collected them: they failed as stuck, with the reason.
            assert_eq!(r.state, RunState::Failed);
            assert!(r.error.contains("maximum run duration"), "{}", r.error);
        }
    }
    // One job per run on the bus, however many replicas ticked.
    let total_runs: usize = {
        let mut n = 0;
        for (account, _) in zones {
            n += store
                .list_runs(account, &format!("i-{account}"), 100)
                .await
                .unwrap()
                .len();
        }
        n
    };
    assert_eq!(setup.drain_jobs().await, total_runs);
}

#[tokio::test]
async fn after_downtime_one_catch_up_run() {
    let setup = Setup::new(ms("2026-07-01T07:00:00Z")).await;
    let scheduler = setup.scheduler().await;
    let id = integration(&scheduler.store, "acme", "UTC", ms("2026-06-01T00:00:00Z")).await;
    // 07:00: the latest slot (23:00 yesterday) is older than the horizon.
    assert!(scheduler.tick().await.unwrap().started.is_empty());
    // Down from 07:00 to 14:00, across the 08:00 and 13:00 slots.
    setup.clock.set(ms("2026-07-01T14:00:00Z"));
    let report = scheduler.tick().await.unwrap();
    assert_eq!(
        report.started,
        [(id.clone(), "2026-07-01T13:00".to_owned())]
    );
    assert!(scheduler.tick().await.unwrap().started.is_empty());
    // Far past the horizon nothing is replayed.
    setup.clock.set(ms("2026-07-01T22:00:00Z"));
    let report = scheduler.tick().await.unwrap();
    assert!(report.started.is_empty(), "{report:?}");
    assert_eq!(
        scheduler
            .store
            .list_runs("acme", &id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Settles `run` as the reconciler would, storing `cursor` with it; with
/// `blocked`, its removals held by the deletion guard.
async fn settle_with_cursor(
    store: &Store,
    run: &dirsync_store::RunRecord,
    blocked: bool,
    now: UnixMillis,
) {
    let mut apply = store.begin_apply(run, now).await.unwrap().unwrap();
    apply
        .set_cursor(
            &dirsync_store::CursorRecord {
                source: "dirsync".into(),
                server: "5f1c0c8e-0000-4000-8000-000000000001".into(),
                value: b"MSDS-cookie".to_vec(),
                run_id: run.id.clone(),
                updated_at: now,
            },
            run.kind == dirsync_core::RunKind::Full,
        )
        .await
        .unwrap();
    let plan = dirsync_core::plan::Plan {
        hold: blocked.then_some(dirsync_core::plan::Hold::Guard {
            limit: 0,
            accounts: 1,
        }),
        ..Default::default()
    };
    apply
        .finish(&plan, 0, &dirsync_core::FixedClock::new(now))
        .await
        .unwrap();
}

/// The kinds of the jobs waiting on the bus, and their cursors.
async fn drain_job_kinds(setup: &Setup) -> Vec<(i32, usize)> {
    use prost::Message;
    let bus = setup.bus().await;
    let mut sub = bus
        .subscribe(&Topic::Jobs { partition: None })
        .await
        .unwrap();
    let mut jobs = Vec::new();
    while let Ok(Ok(Some(d))) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        let job = dirsync_proto::bus::SyncJob::decode(d.payload.clone()).unwrap();
        jobs.push((job.kind, job.cursors.len()));
        d.ack().await.unwrap();
    }
    jobs
}

#[tokio::test]
async fn deltas_run_between_slots_one_at_a_time_and_not_while_blocked() {
    // 09:00 in London: the 08:00 slot is past, 13:00 is four hours away.
    let start = ms("2026-07-01T08:00:00Z");
    let setup = Setup::new(start).await;
    let (a, b) = (setup.scheduler().await, setup.scheduler().await);
    let id = integration(&a.store, "deltas", "Europe/London", start - 86_400_000).await;
    // The 08:00 slot's run: a full sync, which stores a cursor.
    let report = a.tick().await.unwrap();
    assert_eq!(report.started.len(), 1);
    assert!(report.deltas.is_empty(), "no delta without a run settled");
    let full = a.store.active_run("deltas", &id).await.unwrap().unwrap();
    assert_eq!(full.kind, dirsync_core::RunKind::Full);
    settle_with_cursor(&a.store, &full, false, start + 60_000).await;

    // Within the interval (5 minutes after it settled): nothing.
    setup.clock.set(start + 60_000 + 4 * 60_000);
    assert!(a.tick().await.unwrap().deltas.is_empty());
    // Past it: one delta, however many replicas tick.
    setup.clock.set(start + 60_000 + 5 * 60_000);
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let deltas = ra.unwrap().deltas.len() + rb.unwrap().deltas.len();
    assert_eq!(deltas, 1);
    let delta = a.store.active_run("deltas", &id).await.unwrap().unwrap();
    assert_eq!(delta.kind, dirsync_core::RunKind::Delta);
    // While it runs, no other.
    setup.clock.set(start + 20 * 60_000);
    assert!(a.tick().await.unwrap().deltas.is_empty());
    // Blocked by the deletion guard: no delta until an admin acts.
    settle_with_cursor(&a.store, &delta, true, start + 20 * 60_000).await;
    setup.clock.set(start + 60 * 60_000);
    assert!(a.tick().await.unwrap().deltas.is_empty());

    let jobs = drain_job_kinds(&setup).await;
    assert_eq!(
        jobs,
        vec![
            (dirsync_proto::bus::JobKind::Full as i32, 0),
            (dirsync_proto::bus::JobKind::Delta as i32, 1)
        ]
    );
}

#[tokio::test]
async fn a_deployment_wide_delta_interval_and_the_cursor_age_on_the_job() {
    let start = ms("2026-07-01T08:00:00Z");
    let setup = Setup::new(start).await;
    let mut a = setup.scheduler().await;
    a.timing.delta_interval = Some(Duration::from_secs(10));
    let id = integration(&a.store, "fast", "Europe/London", start - 86_400_000).await;
    a.tick().await.unwrap();
    let full = a.store.active_run("fast", &id).await.unwrap().unwrap();
    settle_with_cursor(&a.store, &full, false, start + 60_000).await;
    // Ten seconds after it settled, not five minutes.
    setup.clock.set(start + 60_000 + 9_000);
    assert!(a.tick().await.unwrap().deltas.is_empty());
    setup.clock.set(start + 60_000 + 10_000);
    assert_eq!(a.tick().await.unwrap().deltas.len(), 1);
    // The job says how long ago the cursor was applied.
    use prost::Message;
    let mut sub = setup
        .bus()
        .await
        .subscribe(&Topic::Jobs { partition: None })
        .await
        .unwrap();
    let mut ages = Vec::new();
    while let Ok(Ok(Some(d))) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        let job = dirsync_proto::bus::SyncJob::decode(d.payload.clone()).unwrap();
        ages.extend(job.cursors.iter().map(|c| c.age_seconds));
        d.ack().await.unwrap();
    }
    assert_eq!(ages, vec![10]);
}

#[tokio::test]
async fn no_deltas_when_off_or_without_a_cursor() {
    let start = ms("2026-07-01T08:00:00Z");
    let setup = Setup::new(start).await;
    let s = setup.scheduler().await;
    let id = integration(&s.store, "nodelta", "Europe/London", start - 86_400_000).await;
    s.tick().await.unwrap();
    let full = s.store.active_run("nodelta", &id).await.unwrap().unwrap();
    // Settled without a cursor (DirSync refused): no deltas.
    let apply = s.store.begin_apply(&full, start).await.unwrap().unwrap();
    apply
        .finish(
            &dirsync_core::plan::Plan::default(),
            0,
            &dirsync_core::FixedClock::new(start),
        )
        .await
        .unwrap();
    setup.clock.set(start + 30 * 60_000);
    assert!(s.tick().await.unwrap().deltas.is_empty());
    // With a cursor but deltas off: none either.
    let mut rec = s.store.get_integration("nodelta", &id).await.unwrap();
    rec.settings.delta_interval_minutes = 0;
    s.store.update_integration(&rec).await.unwrap();
    let run = dirsync_store::RunRecord::new(
        "r-nodelta-2".into(),
        "nodelta".into(),
        id.clone(),
        Trigger::SyncNow,
        start + 30 * 60_000,
    );
    s.store.create_run(&run).await.unwrap();
    settle_with_cursor(&s.store, &run, false, start + 31 * 60_000).await;
    setup.clock.set(start + 60 * 60_000);
    assert!(s.tick().await.unwrap().deltas.is_empty());
}

/// Ticks every five minutes from `from` to `to`, each run settling as soon
/// as it starts (as a quick sync would), the scheduler replaced by a new
/// one (a restart) at `restart_at`; the slots started.
async fn tick_through(
    setup: &Setup,
    account: &str,
    id: &str,
    (from, to): (UnixMillis, UnixMillis),
    restart_at: UnixMillis,
) -> Vec<String> {
    let mut scheduler = setup.scheduler().await;
    let mut restarted = false;
    let mut slots = Vec::new();
    let mut now = from;
    while now <= to {
        if !restarted && now >= restart_at {
            scheduler = setup.scheduler().await;
            restarted = true;
        }
        setup.clock.set(now);
        let report = scheduler.tick().await.unwrap();
        slots.extend(report.started.into_iter().map(|(_, slot)| slot));
        if let Some(run) = scheduler.store.active_run(account, id).await.unwrap() {
            scheduler
                .store
                .fail_run(&run.id, 0, "settled by the test", now)
                .await
                .unwrap();
        }
        now += 5 * 60_000;
    }
    slots
}

#[tokio::test]
async fn a_scheduler_restarted_across_dst_and_clock_jumps_emits_each_slot_once() {
    let setup = Setup::new(ms("2026-03-01T00:00:00Z")).await;
    let store = setup.scheduler().await.store;
    store
        .update_account(
            &AccountRecord {
                id: "dst".into(),
                time_zone: "Europe/London".into(),
                schedule: "01:30,08:00".into(),
                ldap_sign_in: false,
            },
            ms("2026-03-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let id = integration(&store, "dst", "Europe/London", ms("2026-03-01T00:00:00Z")).await;
    let mut rec = store.get_integration("dst", &id).await.unwrap();
    rec.settings.delta_interval_minutes = 0;
    rec.settings.schedule = Some("01:30,08:00".into());
    store.update_integration(&rec).await.unwrap();

    // Spring forward (29 March, 01:00 GMT → 02:00 BST): 01:30 does not
    // exist and runs once, at 02:00 BST; restarted inside the gap.
    let spring = tick_through(
        &setup,
        "dst",
        &id,
        (ms("2026-03-28T22:00:00Z"), ms("2026-03-29T09:00:00Z")),
        ms("2026-03-29T00:55:00Z"),
    )
    .await;
    assert_eq!(spring, ["2026-03-29T01:30", "2026-03-29T08:00"]);
    // Fall back (25 October, 02:00 BST → 01:00 GMT): 01:30 happens twice
    // and runs once; restarted between its two occurrences.
    let autumn = tick_through(
        &setup,
        "dst",
        &id,
        (ms("2026-10-24T22:00:00Z"), ms("2026-10-25T09:00:00Z")),
        ms("2026-10-25T01:00:00Z"),
    )
    .await;
    assert_eq!(autumn, ["2026-10-25T01:30", "2026-10-25T08:00"]);

    // Wall-clock jumps: forward five hours past the 08:00 slot (one
    // catch-up run), back two (NTP correcting it; restarted meanwhile):
    // the slot is not run again; forward again: the next day's slots.
    let forward = tick_through(
        &setup,
        "dst",
        &id,
        (ms("2026-11-01T06:55:00Z"), ms("2026-11-01T06:55:00Z")),
        i64::MAX,
    )
    .await;
    // (The night's 01:30, caught up within the horizon.)
    assert_eq!(forward, ["2026-11-01T01:30"]);
    let jumped = tick_through(
        &setup,
        "dst",
        &id,
        (ms("2026-11-01T12:00:00Z"), ms("2026-11-01T12:10:00Z")),
        i64::MAX,
    )
    .await;
    assert_eq!(jumped, ["2026-11-01T08:00"]);
    let back = tick_through(
        &setup,
        "dst",
        &id,
        (ms("2026-11-01T07:55:00Z"), ms("2026-11-01T09:00:00Z")),
        ms("2026-11-01T08:00:00Z"),
    )
    .await;
    assert!(back.is_empty(), "{back:?}");
    let next_day = tick_through(
        &setup,
        "dst",
        &id,
        (ms("2026-11-02T01:00:00Z"), ms("2026-11-02T09:00:00Z")),
        i64::MAX,
    )
    .await;
    assert_eq!(next_day, ["2026-11-02T01:30", "2026-11-02T08:00"]);

    let runs = store.list_runs("dst", &id, 100).await.unwrap();
    let slots: Vec<String> = runs.iter().filter_map(|r| r.slot.clone()).collect();
    let distinct: std::collections::HashSet<&String> = slots.iter().collect();
    assert_eq!(slots.len(), 8);
    assert_eq!(distinct.len(), slots.len(), "a slot ran twice: {slots:?}");
    // One job per run on the bus.
    assert_eq!(setup.drain_jobs().await, runs.len());
    dirsync_tests::Reliability {
        scenario: "Scheduler restarted across DST changes and wall-clock jumps".into(),
        injected: "a controlled clock through spring forward and fall back (Europe/London, slots 01:30 and 08:00), a restart inside each; the clock jumped 5 h forward, 4 h back (a restart), and forward again".into(),
        times: 4,
        runs_settled: (runs.len() as u32, runs.len() as u32),
        objects_compared: slots.len(),
        duplicates: slots.len() - distinct.len(),
        lost: 0,
        recovery_seconds: 0.0,
        held: "each slot emitted once: the skipped 01:30 at 02:00 BST, the repeated 01:30 at its first occurrence, one catch-up run after the forward jump, none again after the backward one".into(),
    }
    .record();
}
