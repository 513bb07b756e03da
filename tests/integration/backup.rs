//! Backup and restore as the README describes them: a PostgreSQL store
//! dumped with pg_dump and restored into a fresh database, an SQLite
//! store copied online with sqlite3's .backup; dirsync started on the
//! restored store (with the same master key) finds the directory as it
//! was and resyncs with no change.

use std::process::Command;

use dirsync_tests::{
    Distributed, Embedded, FIXTURE_PASSWORD, Fixture, Reliability, assert_succeeded, counts,
    create_integration, postgres_database, snapshot, sync,
};

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_postgres_dump_restored_into_a_fresh_database_resyncs_with_no_change() {
    let fx = Fixture::seed();
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let (before, objects) = snapshot(&mut client).await;

    // The store and the master key: what a backup holds.
    let keep = tempfile::tempdir().unwrap();
    let key = keep.path().join("master.key");
    std::fs::copy(stack.dir.path().join("master.key"), &key).unwrap();
    let dump = keep.path().join("dirsync.dump");
    run(Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(stack.database()));
    drop(stack);

    let restored = postgres_database().await;
    run(Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&restored)
        .arg(&dump));
    let stack = Distributed::start_on(
        &[None],
        60,
        "info",
        vec![("DIRSYNC_MASTER_KEY_FILE", key.display().to_string())],
        Some(restored),
        None,
    )
    .await;
    let mut client = stack.client("acme").await;
    assert_eq!(snapshot(&mut client).await.0, before);
    let again = sync(&mut client, &i.id).await;
    assert_succeeded(&again);
    let (_, added, updated, removed, _) = counts(&again);
    assert_eq!((added, updated, removed), (0, 0, 0), "{again:?}");
    let runs = client
        .sync
        .list_runs(dirsync_proto::api::ListRunsRequest {
            account_id: "acme".into(),
            integration: i.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 2, "the history is restored with the store");
    Reliability {
        scenario: "Backup and restore: PostgreSQL".into(),
        injected: "pg_dump --format=custom of a synced store, pg_restore into a fresh database, the services started on it with the same master key".into(),
        times: 1,
        runs_settled: (2, 2),
        objects_compared: objects.len(),
        held: "the restored store equals the one dumped, history included; the resync changed nothing".into(),
        ..Default::default()
    }
    .record();
}

#[tokio::test]
async fn an_sqlite_backup_taken_online_restores_and_resyncs_with_no_change() {
    let fx = Fixture::seed();
    let mut ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let (before, objects) = snapshot(&mut client).await;
    // While dirsync runs.
    let db = ds.dir.path().join("dirsync.db");
    let backup = ds.dir.path().join("backup.db");
    run(Command::new("sqlite3")
        .arg(&db)
        .arg(format!(".backup '{}'", backup.display())));
    // Lost: the store is replaced by the backup.
    ds.halt().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&backup, &db).unwrap();
    ds.reopen(|_| {}).await.unwrap();
    let mut client = ds.client("acme").await;
    assert_eq!(snapshot(&mut client).await.0, before);
    let again = sync(&mut client, &i.id).await;
    assert_succeeded(&again);
    let (_, added, updated, removed, _) = counts(&again);
    assert_eq!((added, updated, removed), (0, 0, 0), "{again:?}");
    Reliability {
        scenario: "Backup and restore: SQLite".into(),
        injected: "sqlite3 .backup while dirsync ran, the store replaced by the copy, dirsync started again".into(),
        times: 1,
        runs_settled: (2, 2),
        objects_compared: objects.len(),
        held: "the restored store equals the one copied; the resync changed nothing".into(),
        ..Default::default()
    }
    .record();
    ds.stop().await;
}
