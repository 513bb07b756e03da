//! One store suite, run against PostgreSQL and SQLite.

use dirsync_core::plan::{self, Source};
use dirsync_core::{
    DirectoryObject, IntegrationSettings, ObjectKind, RunCounts, RunState, SealedSecret, ShortHash,
    Trigger,
};
use dirsync_proto::{api, bus};
use dirsync_store::{
    AccountRecord, ApplyOutcome, IntegrationRecord, ObjectQuery, RunRecord, SessionRecord,
    SignInLimits, StagedBatch, Store, StoreError, StoredObject, TokenRecord,
};

async fn connected(url: &str) -> Store {
    dirsync_store::connect(url).await.unwrap()
}

async fn postgres() -> Store {
    connected(&dirsync_tests::postgres_database().await).await
}

/// Each test twice, on a new PostgreSQL database and on a new SQLite file:
/// `$arg` makes the test's argument from the database's `$url` (a store
/// connected to it, or the URL itself for tests that set the database up
/// at an earlier version).
macro_rules! on_both {
    ($postgres:ident, $sqlite:ident, |$url:ident| $arg:expr, [$($name:ident),* $(,)?]) => {
        mod $postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let $url = dirsync_tests::postgres_database().await;
                    super::$name($arg).await;
                }
            )*
        }
        mod $sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let $url = format!("sqlite://{}", dir.path().join("s.db").display());
                    super::$name($arg).await;
                }
            )*
        }
    };
}

on_both!(
    on_postgres,
    on_sqlite,
    |url| super::connected(&url).await,
    [
        integrations_round_trip,
        runs_and_staging_are_idempotent,
        apply_settles_once_and_demotes,
        an_address_goes_to_the_next_claim_when_its_owner_drops_it,
        a_first_sync_gives_a_shared_address_to_its_best_claim,
        a_deleted_integrations_objects_are_taken_over_by_the_next,
        a_deleted_objects_addresses_go_to_the_next_claim,
        entry_digests_and_the_plan_context_are_kept,
        text_is_stored_as_the_directory_gave_it,
        objects_are_searched_and_paged_by_name,
        console_sessions_end_on_sign_out,
        accounts_tokens_and_sign_ins_round_trip,
        deltas_read_links_keep_cursors_and_count_removals,
        a_run_ends_when_its_apply_settles,
        a_kept_user_is_adopted_by_a_returning_one,
    ]
);

on_both!(
    urls_on_postgres,
    urls_on_sqlite,
    |url| url,
    [
        owners_and_conflicts_survive_the_move_onto_claims,
        managers_stored_before_their_index_are_found_by_it,
        a_large_first_sync_leaves_planner_statistics,
    ]
);

fn settings(name: &str) -> IntegrationSettings {
    dirsync_convert::settings_from_api(&api::IntegrationSettings {
        name: name.into(),
        host: "dc1.corp.example.test".into(),
        user_dn: "CN=r,DC=corp,DC=example,DC=test".into(),
        root_dn: "DC=corp,DC=example,DC=test".into(),
        acknowledge_disabled_accounts: true,
        ..Default::default()
    })
    .unwrap()
}

fn integration(id: &str, name: &str) -> IntegrationRecord {
    IntegrationRecord {
        id: id.into(),
        account_id: "acme".into(),
        settings: settings(name),
        password: Some(SealedSecret {
            key_id: "k1".into(),
            nonce: vec![1; 12],
            ciphertext: vec![2; 20],
        }),
        created_at: 1_000,
        updated_at: 1_000,
    }
}

async fn integrations_round_trip(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    store.ensure_account("acme", 2).await.unwrap();
    store
        .create_integration(&integration("i1", "HQ"))
        .await
        .unwrap();
    let dup = store.create_integration(&integration("i2", "HQ")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let by_name = store.get_integration("acme", "HQ").await.unwrap();
    let by_id = store.get_integration("acme", "i1").await.unwrap();
    assert_eq!(by_name.id, "i1");
    assert_eq!(by_id.settings, settings("HQ"));
    assert_eq!(by_id.password.as_ref().unwrap().ciphertext, vec![2; 20]);
    assert!(matches!(
        store.get_integration("globex", "i1").await,
        Err(StoreError::NotFound(_))
    ));

    let mut rec = by_id;
    rec.settings.description = "changed".into();
    rec.password = None;
    rec.updated_at = 2_000;
    store.update_integration(&rec).await.unwrap();
    let got = store.get_integration("acme", "i1").await.unwrap();
    assert_eq!(got.settings.description, "changed");
    assert!(got.password.is_none());
    assert_eq!(store.list_integrations("acme").await.unwrap().len(), 1);

    store.delete_integration("acme", "i1", 5_000).await.unwrap();
    assert!(matches!(
        store.delete_integration("acme", "i1", 5_000).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.list_integrations("acme").await.unwrap().is_empty());
}

async fn runs_and_staging_are_idempotent(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    store
        .create_integration(&integration("i1", "HQ"))
        .await
        .unwrap();
    let run = RunRecord::new(
        "r1".into(),
        "acme".into(),
        "i1".into(),
        Trigger::SyncNow,
        10,
    );
    store.create_run(&run).await.unwrap();
    assert_eq!(
        store.active_run("acme", "i1").await.unwrap().map(|r| r.id),
        Some("r1".into())
    );
    let second = RunRecord::new(
        "r1b".into(),
        "acme".into(),
        "i1".into(),
        Trigger::SyncNow,
        10,
    );
    assert!(
        matches!(
            store.create_run(&second).await,
            Err(StoreError::Conflict(_))
        ),
        "one active run per integration"
    );

    assert!(store.run_started("r1", 1, "dc1", 11).await.unwrap());
    assert!(store.run_started("r1", 2, "dc2", 12).await.unwrap());
    assert!(
        !store.run_started("r1", 1, "dc1", 13).await.unwrap(),
        "stale attempt"
    );
    let got = store.get_run("acme", "r1").await.unwrap();
    assert_eq!(
        (got.state, got.attempt, got.host.as_str()),
        (RunState::Collecting, 2, "dc2")
    );
    assert_eq!(got.started_at, Some(11));

    store
        .stage_batch("r1", 2, 0, 3, b"abc", false)
        .await
        .unwrap();
    store
        .stage_batch("r1", 2, 0, 3, b"abc", false)
        .await
        .unwrap();
    store.stage_batch("r1", 2, 1, 2, b"de", true).await.unwrap();
    store
        .stage_batch("r1", 1, 0, 9, b"old", true)
        .await
        .unwrap();
    assert_eq!(store.staged_totals("r1", 2).await.unwrap(), (2, 5));
    let staged = |sequence, payload: &[u8], lz4| StagedBatch {
        sequence,
        payload: payload.to_vec(),
        lz4,
    };
    assert_eq!(
        store.staged_batches("r1", 2, 0, 10).await.unwrap(),
        vec![staged(0, b"abc", false), staged(1, b"de", true)]
    );
    assert_eq!(
        store.staged_batches("r1", 2, 1, 10).await.unwrap(),
        vec![staged(1, b"de", true)]
    );
    assert_eq!(
        store.staged_batches("r1", 2, 0, 1).await.unwrap(),
        vec![staged(0, b"abc", false)]
    );

    assert!(store.fail_run("r1", 2, "bind refused", 20).await.unwrap());
    assert!(!store.fail_run("r1", 2, "again", 21).await.unwrap());
    let got = store.get_run("acme", "r1").await.unwrap();
    assert_eq!(
        (got.state, got.error.as_str(), got.finished_at),
        (RunState::Failed, "bind refused", Some(20))
    );
    assert_eq!(store.staged_totals("r1", 2).await.unwrap(), (0, 0));
    assert!(store.active_run("acme", "i1").await.unwrap().is_none());
    store.create_run(&second).await.unwrap();
    assert!(matches!(
        store.get_run("globex", "r1").await,
        Err(StoreError::NotFound(_))
    ));
}

/// A sync-now run of account "acme" on its first attempt.
fn started_run(id: &str, integration: &str, created_at: i64) -> RunRecord {
    RunRecord {
        attempt: 1,
        ..RunRecord::new(
            id.into(),
            "acme".into(),
            integration.into(),
            Trigger::SyncNow,
            created_at,
        )
    }
}

/// Runs a sync of `objects` by integration `rec` as run `run_id` at `at`,
/// planned against what the store holds; its counts and warnings.
async fn sync(
    store: &Store,
    rec: &IntegrationRecord,
    run_id: &str,
    at: i64,
    objects: Vec<DirectoryObject>,
) -> (RunCounts, Vec<String>) {
    let run = started_run(run_id, &rec.id, at);
    store.create_run(&run).await.unwrap();
    let current = store.current_objects("acme", &rec.id, true).await.unwrap();
    let collected = objects.len() as u64;
    let p = plan::plan(&rec.settings, &Source::complete(), &current, objects);
    match store.apply(&run, &p, collected, at).await.unwrap() {
        ApplyOutcome::Applied { counts, warnings } => (counts, warnings),
        ApplyOutcome::AlreadySettled => panic!("run {run_id} not applied"),
    }
}

/// Each object's stored entry digest, by DN.
async fn entry_digests(store: &Store, integration: &str) -> Vec<Option<ShortHash>> {
    let current = store
        .current_objects("acme", integration, false)
        .await
        .unwrap();
    let mut digests: Vec<_> = current
        .objects
        .iter()
        .map(|c| (c.anchor, c.entry_digest))
        .collect();
    digests.sort_by_key(|(anchor, _)| *anchor);
    digests.into_iter().map(|(_, d)| d).collect()
}

async fn entry_digests_and_the_plan_context_are_kept(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "HQ");
    store.create_integration(&rec).await.unwrap();
    let digest = |n: u8| Some(ShortHash([n; 16]));
    let collected = |digests: [Option<ShortHash>; 3]| {
        vec![
            user(1, "u1@example.com", "one@example.com"),
            user(2, "u2@example.com", "two@example.com"),
            group(&[1, 2]),
        ]
        .into_iter()
        .zip(digests)
        .collect::<Vec<_>>()
    };
    let apply = async |run_id: &str, at: i64, entries| {
        let run = started_run(run_id, "i1", at);
        store.create_run(&run).await.unwrap();
        let current = store.current_objects("acme", "i1", true).await.unwrap();
        let p = plan::plan_entries(&rec.settings, &Source::complete(), &current, entries);
        match store.apply(&run, &p, 3, at).await.unwrap() {
            ApplyOutcome::Applied { counts, .. } => (p, counts),
            ApplyOutcome::AlreadySettled => panic!("run {run_id} not applied"),
        }
    };
    let (first, counts) = apply("r1", 10, collected([digest(1), digest(2), digest(3)])).await;
    assert_eq!(counts.added, 3);
    assert!(first.entry_context.is_some());
    let current = store.current_objects("acme", "i1", false).await.unwrap();
    assert_eq!(current.entry_context, first.entry_context);
    assert_eq!(
        entry_digests(&store, "i1").await,
        [digest(1), digest(2), digest(3)]
    );

    // Entries that changed in what their records do not depend on: the
    // records stay, the digests are brought up to date.
    let (second, counts) = apply("r2", 20, collected([digest(1), digest(9), None])).await;
    assert_eq!((counts.updated, counts.unchanged), (0, 3));
    assert_eq!(second.entry_context, first.entry_context);
    assert_eq!(
        entry_digests(&store, "i1").await,
        [digest(1), digest(9), None]
    );

    // Recognised, left out of the second pass: unchanged, nothing written.
    let (third, counts) = apply("r3", 30, collected([digest(1), digest(9), None])).await;
    assert_eq!((counts.updated, counts.unchanged), (0, 3));
    assert!(third.entry_digests.is_empty());

    // A preview keeps neither digests nor the context it planned under.
    let mut preview = RunRecord::new(
        "r4".into(),
        "acme".into(),
        "i1".into(),
        Trigger::Preview,
        40,
    );
    preview.attempt = 1;
    store.create_run(&preview).await.unwrap();
    let current = store.current_objects("acme", "i1", true).await.unwrap();
    let mut settings = rec.settings.clone();
    settings.include_contacts = !settings.include_contacts;
    let p = plan::plan_entries(
        &settings,
        &Source::complete(),
        &current,
        collected([digest(4), digest(5), digest(6)]),
    );
    assert_ne!(p.entry_context, first.entry_context);
    assert_eq!(p.entry_digests.len(), 3);
    store.apply(&preview, &p, 3, 40).await.unwrap();
    let current = store.current_objects("acme", "i1", false).await.unwrap();
    assert_eq!(current.entry_context, first.entry_context);
    assert_eq!(
        entry_digests(&store, "i1").await,
        [digest(1), digest(9), None]
    );
}

/// The object that owns `address` in account "acme".
async fn owner(store: &Store, address: &str) -> StoredObject {
    store.lookup_address("acme", address).await.unwrap()
}

fn user(n: u8, mail: &str, alias: &str) -> DirectoryObject {
    dirsync_convert::object_of(bus::DirectoryEntry {
        kind: bus::ObjectKind::User as i32,
        object_guid: format!("00000000-0000-0000-0000-0000000000{n:02x}"),
        dn: format!("CN=User {n},OU=People,DC=corp,DC=example,DC=test"),
        display_name: format!("User {n}"),
        mail: mail.into(),
        proxy_addresses: vec![format!("SMTP:{mail}"), format!("smtp:{alias}")],
        user_account_control: Some(512),
        ..Default::default()
    })
    .unwrap()
}

fn group(members: &[u8]) -> DirectoryObject {
    dirsync_convert::object_of(bus::DirectoryEntry {
        kind: bus::ObjectKind::Group as i32,
        object_guid: "00000000-0000-0000-0000-0000000000ff".into(),
        dn: "CN=Team,DC=corp,DC=example,DC=test".into(),
        display_name: "Team".into(),
        member_dns: members
            .iter()
            .map(|n| format!("CN=User {n},OU=People,DC=corp,DC=example,DC=test"))
            .collect(),
        ..Default::default()
    })
    .unwrap()
}

async fn apply_settles_once_and_demotes(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "HQ");
    store.create_integration(&rec).await.unwrap();

    let run1 = RunRecord::new(
        "r1".into(),
        "acme".into(),
        "i1".into(),
        Trigger::SyncNow,
        10,
    );
    store.create_run(&run1).await.unwrap();
    let objects = vec![
        user(1, "u1@example.com", "one@example.com"),
        user(2, "u2@example.com", "two@example.com"),
        group(&[1, 2]),
    ];
    let current = store.current_objects("acme", "i1", true).await.unwrap();
    let p = plan::plan(&rec.settings, &Source::complete(), &current, objects);
    let mut run1 = run1;
    run1.attempt = 1;
    let outcome = store.apply(&run1, &p, 3, 20).await.unwrap();
    assert!(matches!(outcome, ApplyOutcome::Applied { counts, .. } if counts.added == 3));
    assert_eq!(
        store.apply(&run1, &p, 3, 21).await.unwrap(),
        ApplyOutcome::AlreadySettled
    );
    let run = store.get_run("acme", "r1").await.unwrap();
    assert_eq!(
        (run.state, run.counts.added, run.counts.collected),
        (RunState::Succeeded, 3, 3)
    );

    let users = store
        .list_objects("acme", &ObjectQuery::all(ObjectKind::User))
        .await
        .unwrap();
    assert_eq!(users.len(), 2);
    let groups = store
        .list_objects("acme", &ObjectQuery::all(ObjectKind::Group))
        .await
        .unwrap();
    assert_eq!(groups[0].record.members.len(), 2);
    assert_eq!(
        store
            .lookup_address("acme", "TWO@example.com")
            .await
            .unwrap()
            .record
            .attributes
            .display_name,
        "User 2"
    );
    assert!(matches!(
        store.lookup_address("globex", "two@example.com").await,
        Err(StoreError::NotFound(_))
    ));

    // User 2 leaves AD, and user 1 takes over its alias in the same run.
    let run2 = started_run("r2", "i1", 30);
    store.create_run(&run2).await.unwrap();
    let current = store.current_objects("acme", "i1", true).await.unwrap();
    let objects = vec![user(1, "u1@example.com", "two@example.com"), group(&[1])];
    let p = plan::plan(&rec.settings, &Source::complete(), &current, objects);
    assert_eq!((p.updates.len(), p.removals.len()), (2, 1));
    let outcome = store.apply(&run2, &p, 2, 40).await.unwrap();
    let ApplyOutcome::Applied { warnings, .. } = outcome else {
        panic!("not applied")
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        store
            .lookup_address("acme", "two@example.com")
            .await
            .unwrap()
            .record
            .attributes
            .display_name,
        "User 1"
    );
    let demoted = store
        .lookup_address("acme", "u2@example.com")
        .await
        .unwrap();
    assert!(!demoted.managed, "a user gone from AD is kept, unmanaged");
    let current = store.current_objects("acme", "i1", true).await.unwrap();
    assert_eq!(current.objects.iter().filter(|c| c.managed).count(), 2);
}

/// Account "acme" with integrations i1 (created first) and i2.
async fn two_integrations(store: &Store) -> (IntegrationRecord, IntegrationRecord) {
    store.ensure_account("acme", 1).await.unwrap();
    let older = integration("i1", "Account domain");
    let newer = IntegrationRecord {
        created_at: 2_000,
        ..integration("i2", "Resource domain")
    };
    store.create_integration(&older).await.unwrap();
    store.create_integration(&newer).await.unwrap();
    (older, newer)
}

async fn an_address_goes_to_the_next_claim_when_its_owner_drops_it(store: Store) {
    let (older, newer) = two_integrations(&store).await;
    let owner = |address: &'static str| {
        let store = store.clone();
        async move { owner(&store, address).await.integration_id }
    };
    // The newer integration claims x@ first; the older one then takes it.
    sync(
        &store,
        &newer,
        "r1",
        10,
        vec![user(2, "x@example.com", "b@example.com")],
    )
    .await;
    assert_eq!(owner("x@example.com").await, "i2");
    let (_, warnings) = sync(
        &store,
        &older,
        "r2",
        20,
        vec![user(1, "x@example.com", "a@example.com")],
    )
    .await;
    assert_eq!(owner("x@example.com").await, "i1");
    assert!(
        warnings.iter().any(|w| w.contains("taken over")),
        "{warnings:?}"
    );
    // A run of the newer integration, its object unchanged, does not take
    // it back, and says so.
    let (_, warnings) = sync(
        &store,
        &newer,
        "r3",
        30,
        vec![user(2, "x@example.com", "b@example.com")],
    )
    .await;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("x@example.com") && w.contains("takes precedence")),
        "the conflict is reported on the losing integration's runs too: {warnings:?}"
    );
    assert_eq!(owner("x@example.com").await, "i1");
    // The owner drops x@: the remaining claim owns it at once.
    sync(
        &store,
        &older,
        "r4",
        40,
        vec![user(1, "y@example.com", "a@example.com")],
    )
    .await;
    assert_eq!(owner("x@example.com").await, "i2");
    assert_eq!(owner("y@example.com").await, "i1");
}

/// On an account's first sync no address is owned yet, and every address
/// is worked out from all the run's claims at once: a primary address wins
/// over an alias whichever object is written first.
async fn a_first_sync_gives_a_shared_address_to_its_best_claim(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "Account domain");
    store.create_integration(&rec).await.unwrap();
    // User 1 carries shared@ as an alias, user 3 as its primary address.
    let objects = vec![
        user(1, "one@example.com", "shared@example.com"),
        user(3, "shared@example.com", "three@example.com"),
    ];
    let (_, warnings) = sync(&store, &rec, "r1", 10, objects).await;
    let owner = |address: &'static str| {
        let store = store.clone();
        async move { owner(&store, address).await.record.attributes.display_name }
    };
    assert_eq!(owner("shared@example.com").await, "User 3");
    assert_eq!(owner("one@example.com").await, "User 1");
    assert_eq!(owner("three@example.com").await, "User 3");
    assert!(
        warnings.iter().any(|w| w.contains("CN=User 1,")
            && w.contains("shared@example.com")
            && w.contains("takes precedence")),
        "the losing claim is reported: {warnings:?}"
    );
}

/// A deleted integration's objects stay, unmanaged, under its id; an
/// integration that syncs them later takes them over with their claims
/// and member edges.
async fn a_deleted_integrations_objects_are_taken_over_by_the_next(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let objects = || vec![user(1, "one@example.com", "alias@example.com"), group(&[1])];
    let first = integration("i1", "Old domain");
    store.create_integration(&first).await.unwrap();
    sync(&store, &first, "r1", 10, objects()).await;
    store.delete_integration("acme", "i1", 30).await.unwrap();
    let left = owner(&store, "one@example.com").await;
    assert_eq!((left.integration_id.as_str(), left.managed), ("i1", false));

    let next = integration("i2", "New domain");
    store.create_integration(&next).await.unwrap();
    let (counts, warnings) = sync(&store, &next, "r2", 40, objects()).await;
    assert_eq!(counts.added, 2, "i2 held none of them, and takes both over");
    assert!(warnings.is_empty(), "{warnings:?}");
    for address in ["one@example.com", "alias@example.com"] {
        let owner = owner(&store, address).await;
        assert_eq!(
            (owner.integration_id.as_str(), owner.managed),
            ("i2", true),
            "{address}"
        );
    }
    let now = store.current_objects("acme", "i2", true).await.unwrap();
    assert_eq!(now.objects.len(), 2);
    assert!(now.objects.iter().all(|o| o.managed));
}

/// Runs `sql` on the database at `url`, outside the store.
async fn execute(url: &str, sql: String) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

/// A store written before migration 14 (each address's owner in a table
/// of its own) keeps, once migrated, every owner and standing conflict,
/// and later runs resolve from them.
async fn owners_and_conflicts_survive_the_move_onto_claims(url: String) {
    dirsync_store::migrate_to(&url, 13).await.unwrap();
    // Users 1 and 2 of integration i1; x@ is user 1's primary address and
    // user 2's alias, so user 1 owns it and it is contested.
    let users = [
        user(1, "x@example.com", "a@example.com"),
        user(2, "y@example.com", "x@example.com"),
    ];
    let mut sql = String::new();
    for u in &users {
        let (record, insert) = user_row(u, None);
        let anchor = u.anchor.to_string();
        sql += &insert;
        for (address, is_primary) in record.addresses() {
            let rank = plan::claim_rank(is_primary, false, 1_000, "i1");
            sql += &format!(
                "INSERT INTO address_claims (account_id, address, anchor, is_primary, claim_rank) \
                 VALUES ('acme', '{address}', '{anchor}', {is_primary}, '{rank}');\n"
            );
            let owns = address.to_string() != "x@example.com" || is_primary;
            if owns {
                let contested = address.to_string() == "x@example.com";
                sql += &format!(
                    "INSERT INTO addresses (account_id, address, anchor, is_primary, origin, claim_rank, contested) \
                     VALUES ('acme', '{address}', '{anchor}', {is_primary}, 'directory', '{rank}', {contested});\n"
                );
            }
        }
    }
    execute(&url, sql).await;

    let store = dirsync_store::connect(&url).await.unwrap();
    let owner = |address: &'static str| {
        let store = store.clone();
        async move { owner(&store, address).await.record.attributes.display_name }
    };
    for (address, expected) in [
        ("x@example.com", "User 1"),
        ("a@example.com", "User 1"),
        ("y@example.com", "User 2"),
    ] {
        assert_eq!(owner(address).await, expected, "{address}");
    }
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "Account domain");
    store.create_integration(&rec).await.unwrap();
    // The conflict stands, and is reported.
    let (_, warnings) = sync(&store, &rec, "r1", 10, users.to_vec()).await;
    assert!(
        warnings.iter().any(|w| w.contains("CN=User 2,")
            && w.contains("x@example.com")
            && w.contains("takes precedence")),
        "{warnings:?}"
    );
    assert_eq!(owner("x@example.com").await, "User 1");
    // User 1 drops x@: user 2's claim owns it at once.
    let (_, warnings) = sync(
        &store,
        &rec,
        "r2",
        20,
        vec![user(1, "z@example.com", "a@example.com"), users[1].clone()],
    )
    .await;
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(owner("x@example.com").await, "User 2");
    assert_eq!(owner("z@example.com").await, "User 1");
}

/// Two integrations of one account applying at once take turns: the
/// second begins only once the first has committed, and so resolves its
/// claims against the first's (one owner per address, the best claim).
#[tokio::test]
async fn an_accounts_applies_take_turns_on_postgres() {
    let store = postgres().await;
    let (older, newer) = two_integrations(&store).await;
    let first = started_run("r1", "i1", 10);
    let second = started_run("r2", "i2", 10);
    store.create_run(&first).await.unwrap();
    store.create_run(&second).await.unwrap();
    let planned = |rec: &IntegrationRecord, objects| {
        plan::plan(
            &rec.settings,
            &Source::complete(),
            &Default::default(),
            objects,
        )
    };
    let first_plan = planned(&older, vec![user(1, "x@example.com", "a@example.com")]);
    let second_plan = planned(&newer, vec![user(2, "x@example.com", "b@example.com")]);

    let mut apply = store.begin_apply(&first, 20).await.unwrap().unwrap();
    apply.upserts(&first_plan.adds, &[]).await.unwrap();
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.apply(&second, &second_plan, 1, 21).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the second apply began while the first was open"
    );
    apply
        .finish(&first_plan, 1, &dirsync_core::FixedClock::new(20))
        .await
        .unwrap();
    let ApplyOutcome::Applied { warnings, .. } = waiting.await.unwrap().unwrap() else {
        panic!("the second run was not applied");
    };
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("x@example.com") && w.contains("takes precedence")),
        "{warnings:?}"
    );
    assert_eq!(owner(&store, "x@example.com").await.integration_id, "i1");
}

/// A contact gone from the directory is deleted with its claims (found
/// from its stored record): the address it owned goes to the next claim.
async fn a_deleted_objects_addresses_go_to_the_next_claim(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let mut rec = integration("i1", "Account domain");
    rec.settings.include_contacts = true;
    store.create_integration(&rec).await.unwrap();
    let contact = dirsync_convert::object_of(bus::DirectoryEntry {
        kind: bus::ObjectKind::Contact as i32,
        object_guid: "00000000-0000-0000-0000-0000000000c1".into(),
        dn: "CN=Supplier,OU=Contacts,DC=corp,DC=example,DC=test".into(),
        display_name: "Supplier".into(),
        mail: "shared@example.com".into(),
        ..Default::default()
    })
    .unwrap();
    let user = user(1, "one@example.com", "shared@example.com");
    sync(&store, &rec, "r1", 10, vec![user.clone(), contact]).await;
    let owner = |address: &'static str| {
        let store = store.clone();
        async move { owner(&store, address).await.record.attributes.display_name }
    };
    assert_eq!(owner("shared@example.com").await, "Supplier");
    let (counts, _) = sync(&store, &rec, "r2", 20, vec![user]).await;
    assert_eq!(counts.removed, 1);
    assert_eq!(owner("shared@example.com").await, "User 1");
    assert_eq!(owner("one@example.com").await, "User 1");
}

/// Values holding what a bulk write's encoding could mistake for its own
/// (tabs, newlines, backslashes, a COPY text NULL marker, quotes, non-ASCII)
/// come back as they went in: in the record, in the columns a listing
/// orders by, and in the change log.
async fn text_is_stored_as_the_directory_gave_it(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "HQ");
    store.create_integration(&rec).await.unwrap();
    let dn = r"CN=Zoë O\, Brien \\N\5C,OU=People,DC=corp,DC=example,DC=test";
    let name = "Zoë \"Z\" O'Brien\tone\ntwo\r\\N \\ {\"k\": \"\\u00e9\"} ✓";
    let odd = dirsync_convert::object_of(bus::DirectoryEntry {
        kind: bus::ObjectKind::User as i32,
        object_guid: "00000000-0000-0000-0000-0000000000ee".into(),
        dn: dn.into(),
        display_name: name.into(),
        title: "\\N".into(),
        department: String::new(),
        mail: "zoe@example.com".into(),
        user_account_control: Some(512),
        ..Default::default()
    })
    .unwrap();
    let expected = odd.dn.to_string();
    let (counts, warnings) = sync(&store, &rec, "r1", 10, vec![odd]).await;
    assert_eq!((counts.added, warnings), (1, Vec::<String>::new()));

    let users = store
        .list_objects("acme", &ObjectQuery::all(ObjectKind::User))
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    let stored = &users[0].record;
    assert_eq!(stored.dn, expected);
    assert_eq!(stored.attributes.display_name, name);
    assert_eq!(stored.attributes.title, "\\N");
    assert_eq!(stored.attributes.department, "");
    let by_address = owner(&store, "zoe@example.com").await;
    assert_eq!(by_address.record, *stored);
    let changes = store
        .list_changes("acme", Some("r1"), None, 10)
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].change.dn, expected);
}

/// The console's directory pages: search (case-insensitive, LIKE's
/// wildcards taken literally), pages by display name, and a set of ids.
async fn objects_are_searched_and_paged_by_name(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "Head office");
    store.create_integration(&rec).await.unwrap();
    let objects: Vec<DirectoryObject> = (1..=5)
        .map(|n| {
            user(
                n,
                &format!("u{n}@example.com"),
                &format!("a{n}@example.com"),
            )
        })
        .chain([user(6, "per%cent_6@example.com", "six@example.com")])
        .collect();
    let (counts, _) = sync(&store, &rec, "r1", 10, objects).await;
    assert_eq!(counts.added, 6);

    let names = |objects: &[StoredObject]| -> Vec<String> {
        objects
            .iter()
            .map(|o| o.record.attributes.display_name.clone())
            .collect()
    };
    let mut query = ObjectQuery::all(ObjectKind::User);
    query.limit = Some(4);
    let page = store.list_objects("acme", &query).await.unwrap();
    assert_eq!(names(&page), ["User 1", "User 2", "User 3", "User 4"]);
    let last = &page[3].record;
    query.after = Some((
        last.attributes.display_name.clone(),
        last.anchor.to_string(),
    ));
    let rest = store.list_objects("acme", &query).await.unwrap();
    assert_eq!(names(&rest), ["User 5", "User 6"]);

    let search = |text: &str| {
        let mut q = ObjectQuery::all(ObjectKind::User);
        q.search = text.to_owned();
        q
    };
    let found = store.list_objects("acme", &search("USER 3")).await.unwrap();
    assert_eq!(names(&found), ["User 3"]);
    let found = store
        .list_objects("acme", &search("U4@EXAMPLE"))
        .await
        .unwrap();
    assert_eq!(names(&found), ["User 4"]);
    let found = store.list_objects("acme", &search("cent_")).await.unwrap();
    assert_eq!(names(&found), ["User 6"], "the wildcard is a literal _");
    let found = store.list_objects("acme", &search("u_@")).await.unwrap();
    assert!(
        found.is_empty(),
        "_ matched a character: {:?}",
        names(&found)
    );
    let found = store
        .list_objects("acme", &search("ou=people"))
        .await
        .unwrap();
    assert_eq!(found.len(), 6, "a text with = is looked for in DNs");
    let found = store.list_objects("acme", &search("people")).await.unwrap();
    assert!(found.is_empty(), "DNs are searched only for a text with =");

    let mut by_id = ObjectQuery::all(ObjectKind::User);
    by_id.anchors = vec![page[1].record.anchor.to_string(), "no-such-id".into()];
    let found = store.list_objects("acme", &by_id).await.unwrap();
    assert_eq!(names(&found), ["User 2"]);
    let other = store
        .list_objects("other", &ObjectQuery::all(ObjectKind::User))
        .await
        .unwrap();
    assert!(other.is_empty(), "objects are listed per account");
}

async fn console_sessions_end_on_sign_out(store: Store) {
    let session = SessionRecord {
        id: "s1".into(),
        secret_hash: "h".repeat(64),
        account_id: "acme".into(),
        token_id: "t1".into(),
        created_at: 10,
        expires_at: 1_000,
        ended_at: None,
    };
    store.create_session(&session).await.unwrap();
    assert_eq!(store.session("s1").await.unwrap(), Some(session.clone()));
    assert_eq!(store.session("s2").await.unwrap(), None);
    store.end_session("s1", 20).await.unwrap();
    store.end_session("s1", 30).await.unwrap();
    let ended = store.session("s1").await.unwrap().unwrap();
    assert_eq!(ended.ended_at, Some(20), "the first sign-out counts");
    assert!(
        store.create_session(&session).await.is_err(),
        "a session id is never reused"
    );
}

/// Accounts, API tokens and sign-in events, each value kind (text,
/// integers, booleans, NULLs) read back as written.
async fn accounts_tokens_and_sign_ins_round_trip(store: Store) {
    assert!(matches!(
        store.get_account("acme").await,
        Err(StoreError::NotFound(_))
    ));
    store.ensure_account("acme", 5).await.unwrap();
    let account = AccountRecord {
        id: "acme".into(),
        time_zone: "Europe/London".into(),
        schedule: "08:00,13:00".into(),
        ldap_sign_in: true,
    };
    store.update_account(&account, 6).await.unwrap();
    store.ensure_account("acme", 7).await.unwrap();
    assert_eq!(store.get_account("acme").await.unwrap(), account);

    let token = |id: &str, at| TokenRecord {
        id: id.into(),
        account_id: "acme".into(),
        name: format!("token {id}"),
        secret_hash: "s".repeat(64),
        created_at: at,
        revoked_at: None,
    };
    store.create_token(&token("t2", 20)).await.unwrap();
    store.create_token(&token("t1", 10)).await.unwrap();
    assert!(
        store.create_token(&token("t1", 30)).await.is_err(),
        "a token id is never reused"
    );
    store.revoke_token("acme", "t1", 40).await.unwrap();
    store.revoke_token("acme", "t1", 50).await.unwrap();
    assert!(matches!(
        store.revoke_token("other", "t2", 40).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = store.list_tokens("acme").await.unwrap();
    assert_eq!(
        listed,
        [
            TokenRecord {
                revoked_at: Some(40),
                ..token("t1", 10)
            },
            token("t2", 20)
        ],
        "oldest first; the first revocation counts"
    );
    assert_eq!(store.token("t2").await.unwrap(), Some(token("t2", 20)));
    assert_eq!(store.token("t3").await.unwrap(), None);

    let limits = SignInLimits {
        address_failures: 2,
        address_window_ms: 1_000,
        account_attempts: 3,
        account_window_ms: 1_000,
    };
    let limits = &limits;
    let admit = |address: &'static str, at| {
        let store = store.clone();
        async move {
            store
                .admit_sign_in("acme", address, at, limits)
                .await
                .unwrap()
        }
    };
    assert!(admit("a@x", 100).await);
    store.sign_in_failed("acme", "a@x", 100).await.unwrap();
    assert!(admit("a@x", 110).await);
    store.sign_in_failed("acme", "a@x", 110).await.unwrap();
    assert!(!admit("a@x", 120).await, "two failures of the address");
    assert!(admit("b@x", 120).await, "the account's third attempt");
    assert!(!admit("c@x", 130).await, "the account's fourth attempt");
    assert!(admit("c@x", 1_200).await, "the window moved on");
    store.sign_in_failed("acme", "a@x", 1_200).await.unwrap();
    store.sign_in_failed("acme", "a@x", 1_201).await.unwrap();
    assert!(!admit("a@x", 1_202).await, "two failures again");
    store.sign_in_succeeded("acme", "a@x").await.unwrap();
    assert!(admit("a@x", 1_203).await, "a success forgets the failures");
}

/// A run of `kind` applied with `plan`, storing `cursor` (a full run's
/// replaces the others).
async fn apply_with_cursor(
    store: &Store,
    run: &RunRecord,
    plan: &plan::Plan,
    cursor: &dirsync_store::CursorRecord,
) {
    store.create_run(run).await.unwrap();
    let mut apply = store
        .begin_apply(run, run.created_at)
        .await
        .unwrap()
        .unwrap();
    apply.upserts(&plan.adds, &plan.updates).await.unwrap();
    apply
        .set_cursor(cursor, run.kind == dirsync_core::RunKind::Full)
        .await
        .unwrap();
    apply
        .finish(plan, 0, &dirsync_core::FixedClock::new(run.created_at))
        .await
        .unwrap();
}

async fn deltas_read_links_keep_cursors_and_count_removals(store: Store) {
    use dirsync_core::RunKind;
    use dirsync_core::delta::DeltaChange;
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "HQ");
    store.create_integration(&rec).await.unwrap();
    let mut managed = user(2, "u2@example.com", "two@example.com");
    managed.attributes.manager_dn = "CN=User 1,OU=People,DC=corp,DC=example,DC=test".into();
    let full = plan::plan(
        &rec.settings,
        &Source::complete(),
        &Default::default(),
        vec![
            user(1, "u1@example.com", "one@example.com"),
            managed,
            user(3, "u3@example.com", "three@example.com"),
            group(&[1, 3]),
        ],
    );
    let cursor = |server: &str, value: &[u8], run: &str, at: i64| dirsync_store::CursorRecord {
        source: "dirsync".into(),
        server: server.into(),
        value: value.to_vec(),
        run_id: run.into(),
        updated_at: at,
    };
    let run = |id: &str, kind: RunKind, at: i64| RunRecord {
        kind,
        ..started_run(id, "i1", at)
    };
    apply_with_cursor(
        &store,
        &run("f1", RunKind::Full, 10),
        &full,
        &cursor("dc1", b"one", "f1", 10),
    )
    .await;
    let cursors = store.cursors("acme", "i1").await.unwrap();
    assert_eq!(cursors, vec![cursor("dc1", b"one", "f1", 10)]);
    assert_eq!(
        store.get_run("acme", "f1").await.unwrap().kind,
        RunKind::Full
    );

    // What a delta about user 1 reads: user 1, the group it is in, and the
    // user it manages; not user 3.
    let anchor = |n: u8| full.adds[usize::from(n) - 1].record.anchor;
    let stored = store
        .delta_stored("acme", "i1", &[anchor(1)])
        .await
        .unwrap();
    let mut read: Vec<_> = stored.keys().copied().collect();
    read.sort();
    let mut expected = vec![anchor(1), anchor(2), anchor(4)];
    expected.sort();
    assert_eq!(read, expected);
    assert_eq!(stored[&anchor(4)].record.members.len(), 2);

    // Deltas: user 1 deleted; the guard's count grows; cursors per DC.
    let delta = dirsync_core::delta::plan_delta(
        &rec.settings,
        &stored,
        vec![DeltaChange::Deleted(anchor(1))],
    );
    assert_eq!(delta.removals.len(), 1);
    apply_with_cursor(
        &store,
        &run("d1", RunKind::Delta, 20),
        &delta,
        &cursor("dc1", b"two", "d1", 20),
    )
    .await;
    apply_with_cursor(
        &store,
        &run("d2", RunKind::Delta, 30),
        &plan::Plan::default(),
        &cursor("dc2", b"other", "d2", 30),
    )
    .await;
    assert_eq!(
        store.delta_removals_since_full("acme", "i1").await.unwrap(),
        1
    );
    let mut servers: Vec<_> = store
        .cursors("acme", "i1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.server, c.value))
        .collect();
    servers.sort();
    assert_eq!(
        servers,
        vec![
            ("dc1".into(), b"two".to_vec()),
            ("dc2".into(), b"other".to_vec())
        ]
    );
    let after = store
        .delta_stored("acme", "i1", &[anchor(2)])
        .await
        .unwrap();
    assert_eq!(
        after[&anchor(2)].record.manager,
        None,
        "the manager left with the delta"
    );
    assert_eq!(
        store.get_run("acme", "d1").await.unwrap().kind,
        RunKind::Delta
    );

    // A full run starts the count again and replaces every cursor; a
    // change of what is read drops them.
    apply_with_cursor(
        &store,
        &run("f2", RunKind::Full, 40),
        &plan::Plan::default(),
        &cursor("dc2", b"three", "f2", 40),
    )
    .await;
    assert_eq!(
        store.delta_removals_since_full("acme", "i1").await.unwrap(),
        0
    );
    assert_eq!(store.cursors("acme", "i1").await.unwrap().len(), 1);
    let mut renamed = rec.clone();
    renamed.settings.name = "HQ 2".into();
    renamed.settings.delta_interval_minutes = 10;
    store.update_integration(&renamed).await.unwrap();
    assert_eq!(
        store.cursors("acme", "i1").await.unwrap().len(),
        1,
        "a rename reads the same"
    );
    let mut rescoped = renamed.clone();
    rescoped.settings.include_contacts = !rescoped.settings.include_contacts;
    store.update_integration(&rescoped).await.unwrap();
    assert!(store.cursors("acme", "i1").await.unwrap().is_empty());
}

/// User `u` of integration i1 (managed by `manager`) as its record and
/// the INSERT of its row written straight into a store of an earlier
/// version (the columns every version since has).
fn user_row(
    u: &DirectoryObject,
    manager: Option<dirsync_core::ObjectGuid>,
) -> (dirsync_core::ObjectRecord, String) {
    let record = dirsync_core::ObjectRecord {
        anchor: u.anchor,
        kind: u.kind,
        dn: u.dn.to_string(),
        attributes: u.attributes.clone(),
        primary_address: u.primary_address.clone(),
        aliases: u.aliases.clone(),
        disabled: false,
        members: Vec::new(),
        group_type: None,
        manager,
    };
    let insert = format!(
        "INSERT INTO objects (account_id, anchor, integration_id, kind, dn, display_name, \
         primary_address, disabled, managed, record, content_hash, updated_at) VALUES \
         ('acme', '{}', 'i1', 'user', '{}', '{}', '{}', FALSE, TRUE, '{}', '{}', 5);\n",
        u.anchor,
        u.dn,
        u.attributes.display_name,
        u.primary_address.as_ref().unwrap(),
        serde_json::to_string(&record).unwrap().replace('\'', "''"),
        record.content_hash(),
    );
    (record, insert)
}

/// A store of version 20 (managers only inside the records) finds, once
/// migrated, the objects a manager manages by the index of managers.
async fn managers_stored_before_their_index_are_found_by_it(url: String) {
    dirsync_store::migrate_to(&url, 20).await.unwrap();
    let boss = user(1, "boss@example.com", "b@example.com");
    let report = user(2, "report@example.com", "r@example.com");
    let mut sql = String::new();
    for (u, manager) in [(&boss, None), (&report, Some(boss.anchor))] {
        sql += &user_row(u, manager).1;
    }
    execute(&url, sql).await;
    let store = dirsync_store::connect(&url).await.unwrap();
    let stored = store
        .delta_stored("acme", "i1", &[boss.anchor])
        .await
        .unwrap();
    assert!(stored.contains_key(&report.anchor), "{:?}", stored.keys());
    assert_eq!(stored[&report.anchor].record.manager, Some(boss.anchor));
}

/// A run's end is when its apply settled, by the clock `finish` is given,
/// not when the reconciler began it: a long apply is in the run's time.
async fn a_run_ends_when_its_apply_settles(store: Store) {
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "HQ");
    store.create_integration(&rec).await.unwrap();
    let run = started_run("r1", "i1", 10);
    store.create_run(&run).await.unwrap();
    let plan = plan::plan(
        &rec.settings,
        &Source::complete(),
        &Default::default(),
        vec![user(1, "u1@example.com", "one@example.com")],
    );
    let clock = dirsync_core::FixedClock::new(20);
    let mut apply = store.begin_apply(&run, 20).await.unwrap().unwrap();
    apply.upserts(&plan.adds, &plan.updates).await.unwrap();
    // The writes took 35 s.
    clock.advance(35_000);
    apply.finish(&plan, 1, &clock).await.unwrap();
    let settled = store.get_run("acme", "r1").await.unwrap();
    assert_eq!(settled.finished_at, Some(35_020));
}

/// A first sync past ANALYZE_AFTER objects leaves statistics, SQLite's
/// too: without them SQLite walks an index of the whole account for a
/// delta's few anchors.
async fn a_large_first_sync_leaves_planner_statistics(url: String) {
    let store = dirsync_store::connect(&url).await.unwrap();
    store.ensure_account("acme", 1).await.unwrap();
    let rec = integration("i1", "HQ");
    store.create_integration(&rec).await.unwrap();
    let users: Vec<DirectoryObject> = (0..6000u32)
        .map(|n| {
            dirsync_convert::object_of(bus::DirectoryEntry {
                kind: bus::ObjectKind::User as i32,
                object_guid: format!("00000000-0000-0000-0000-{n:012x}"),
                dn: format!("CN=User {n},OU=People,DC=corp,DC=example,DC=test"),
                display_name: format!("User {n}"),
                mail: format!("u{n}@example.com"),
                user_account_control: Some(512),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    sync(&store, &rec, "r1", 10, users).await;
    let analyzed: i64 = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'objects'")
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stats WHERE tablename = 'objects' AND attname = 'anchor'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(analyzed > 0, "no statistics on objects");
}

async fn a_kept_user_is_adopted_by_a_returning_one(store: Store) {
    let (first, second) = two_integrations(&store).await;
    let run1 = started_run("r1", "i1", 10);
    store.create_run(&run1).await.unwrap();
    let current = store.current_objects("acme", "i1", true).await.unwrap();
    let p = plan::plan(
        &first.settings,
        &Source::complete(),
        &current,
        vec![
            user(1, "u1@example.com", "one@example.com"),
            user(2, "u2@example.com", "two@example.com"),
        ],
    );
    store.apply(&run1, &p, 2, 20).await.unwrap();
    // User 2 leaves: kept unmanaged.
    let run2 = started_run("r2", "i1", 30);
    store.create_run(&run2).await.unwrap();
    let current = store.current_objects("acme", "i1", true).await.unwrap();
    let p = plan::plan(
        &first.settings,
        &Source::complete(),
        &current,
        vec![user(1, "u1@example.com", "one@example.com")],
    );
    store.apply(&run2, &p, 1, 40).await.unwrap();
    let kept = owner(&store, "u2@example.com").await;
    assert!(!kept.managed);
    let anchor = kept.record.anchor;

    // The account's unmanaged users, by primary address; the managed one
    // is not among them.
    let returning = store.returning_users("acme").await.unwrap();
    assert_eq!(returning.len(), 1);
    let address = dirsync_core::EmailAddress::parse("u2@example.com").unwrap();
    assert_eq!(returning.get(&address), Some(&anchor));
    assert!(store.anchor_aliases("acme").await.unwrap().is_empty());

    // The second integration's new object adopts it.
    let run3 = started_run("r3", &second.id, 50);
    store.create_run(&run3).await.unwrap();
    let new_guid: dirsync_core::ObjectGuid =
        "00000000-0000-0000-0000-000000000042".parse().unwrap();
    let adoption = dirsync_core::returning::Adoption {
        directory_anchor: new_guid,
        anchor,
        address,
    };
    store
        .adopt(&run3, std::slice::from_ref(&adoption), 60)
        .await
        .unwrap();
    // Again, as a redelivered run would: the same.
    store
        .adopt(&run3, std::slice::from_ref(&adoption), 61)
        .await
        .unwrap();
    let aliases = store.anchor_aliases("acme").await.unwrap();
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases.get(&new_guid), Some(&anchor));
    let moved = store
        .current_objects("acme", &second.id, true)
        .await
        .unwrap();
    assert!(
        moved
            .objects
            .iter()
            .any(|o| o.anchor == anchor && !o.managed)
    );
    let log = store
        .list_changes("acme", Some("r3"), None, 100)
        .await
        .unwrap();
    assert!(
        log.iter().any(|c| c.change.anchor == anchor
            && c.change.operation == dirsync_core::change::Operation::Restore),
        "{log:?}"
    );
    // A managed account is never adopted.
    let managed = owner(&store, "u1@example.com").await.record.anchor;
    store
        .adopt(
            &run3,
            &[dirsync_core::returning::Adoption {
                directory_anchor: "00000000-0000-0000-0000-000000000043".parse().unwrap(),
                anchor: managed,
                address: dirsync_core::EmailAddress::parse("u1@example.com").unwrap(),
            }],
            62,
        )
        .await
        .unwrap();
    assert_eq!(store.anchor_aliases("acme").await.unwrap().len(), 1);
}
