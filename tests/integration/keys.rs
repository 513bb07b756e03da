//! Master key rotation: `dirsync key rotate` re-seals every stored bind
//! password under a new key while dirsync runs, can run again after an
//! interruption, and the old key is retired only once nothing sealed
//! under it remains. In both shapes (PostgreSQL with the services as
//! processes, SQLite with every role in one).

use std::path::{Path, PathBuf};

use dirsync::cli::Client;
use dirsync_proto::api;
use dirsync_tests::{
    Distributed, Embedded, FIXTURE_PASSWORD, Fixture, assert_succeeded, create_integration,
    dirsync_binary, sync,
};

/// Runs `dirsync key ARGS` against the store at `database`; (success,
/// output).
async fn key(
    database: &str,
    master: &Path,
    previous: Option<&Path>,
    args: &[&str],
) -> (bool, String) {
    let mut command = tokio::process::Command::new(dirsync_binary());
    command
        .arg("key")
        .args(args)
        .env("DIRSYNC_DATABASE_URL", database)
        .env("DIRSYNC_MASTER_KEY_FILE", master)
        .env_remove("DIRSYNC_PREVIOUS_MASTER_KEY_FILES");
    if let Some(p) = previous {
        command.env("DIRSYNC_PREVIOUS_MASTER_KEY_FILES", p);
    }
    let out = command.output().await.expect("running dirsync key");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A new key file from `dirsync key generate`.
async fn generate(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = tokio::process::Command::new(dirsync_binary())
        .args(["key", "generate"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    path
}

fn key_id(path: &Path) -> String {
    dirsync_core::MasterKey::from_file(path)
        .unwrap()
        .id()
        .to_owned()
}

/// Test Connection on the saved settings binds with the stored password.
async fn stored_password_binds(client: &mut Client, integration: &str) {
    let mut stream = client
        .integrations
        .test_connection(api::TestConnectionRequest {
            account_id: client.account.clone(),
            integration: integration.to_owned(),
            ..Default::default()
        })
        .await
        .expect("TestConnection")
        .into_inner();
    let mut bound = false;
    while let Some(step) = stream.message().await.unwrap() {
        if step.check == api::TestCheck::Authentication as i32 {
            assert_eq!(step.outcome, api::TestOutcome::Passed as i32, "{step:?}");
            bound = true;
        }
    }
    assert!(bound, "no authentication step");
}

#[tokio::test]
async fn key_rotation_reseals_every_password_while_the_services_run() {
    let fx = Fixture::seed();
    let mut stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    let old = stack.dir.path().join("master.key");
    let first = create_integration(&mut client, fx.settings("First"), FIXTURE_PASSWORD).await;
    let edited = create_integration(&mut client, fx.settings("Edited"), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut client, &first.id).await);

    // Every process loads the new key as current, the old as previous.
    let new = generate(stack.dir.path(), "new.key").await;
    stack
        .reconfigure(&[
            ("DIRSYNC_MASTER_KEY_FILE", Some(new.display().to_string())),
            (
                "DIRSYNC_PREVIOUS_MASTER_KEY_FILES",
                Some(old.display().to_string()),
            ),
        ])
        .await;
    let mut client = stack.client("acme").await;
    // The old seals still open; a new password is sealed under the new
    // key, and an edit that keeps its password writes it back under it.
    assert_succeeded(&sync(&mut client, &first.id).await);
    let later = create_integration(&mut client, fx.settings("Later"), FIXTURE_PASSWORD).await;
    let mut settings = fx.settings("Edited");
    settings.description = "the password kept".into();
    client
        .integrations
        .update_integration(api::UpdateIntegrationRequest {
            account_id: "acme".into(),
            integration: edited.id.clone(),
            settings: Some(settings),
            ..Default::default()
        })
        .await
        .expect("UpdateIntegration");
    let (ok, status) = key(stack.database(), &new, Some(&old), &["status"]).await;
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!(
            "key {} (previous): seals 1 bind passwords; still in use",
            key_id(&old)
        )) && status.contains(&format!("key {} (current): seals 2", key_id(&new))),
        "{status}"
    );

    let (ok, out) = key(stack.database(), &new, Some(&old), &["rotate"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("re-sealed 1 bind passwords"), "{out}");
    assert!(
        out.contains(&format!(
            "key {} (previous): seals 0 bind passwords; nothing sealed under it remains: it can be retired",
            key_id(&old)
        )),
        "{out}"
    );
    // Again, as after an interruption: nothing is left to do.
    let (ok, out) = key(stack.database(), &new, Some(&old), &["rotate"]).await;
    assert!(ok && out.contains("re-sealed 0 bind passwords"), "{out}");
    let pool = sqlx::PgPool::connect(stack.database()).await.unwrap();
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT password_key_id, password_ciphertext FROM integrations")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 3);
    for (id, ciphertext) in &rows {
        assert_eq!(*id, key_id(&new));
        assert!(!String::from_utf8_lossy(ciphertext).contains(FIXTURE_PASSWORD));
    }

    // The old key retired: every password opens with the new one alone.
    stack
        .reconfigure(&[("DIRSYNC_PREVIOUS_MASTER_KEY_FILES", None)])
        .await;
    let mut client = stack.client("acme").await;
    for i in [&first, &edited, &later] {
        stored_password_binds(&mut client, &i.id).await;
    }
    assert_succeeded(&sync(&mut client, &first.id).await);
    // A process given only the old key refuses to start, naming the key
    // it lacks.
    let out = tokio::process::Command::new(dirsync_binary())
        .args(["serve", "--roles", "gateway", "--listen", "127.0.0.1:0"])
        .envs(stack.env().iter().map(|(k, v)| (*k, v.as_str())))
        .env("DIRSYNC_MASTER_KEY_FILE", &old)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&key_id(&new)) && text.contains("--previous-master-key-file"),
        "{text}"
    );
}

#[tokio::test]
async fn key_rotation_of_the_embedded_store() {
    let fx = Fixture::seed();
    let mut ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let dir = ds.dir.path().to_owned();
    let old = dir.join("master.key");
    let new = generate(&dir, "new.key").await;
    let database = format!("sqlite://{}", dir.join("dirsync.db").display());

    // Starting with the new key alone is refused while the old one seals
    // something.
    let refused = ds
        .reopen(|cfg| cfg.master_key_file = new.clone())
        .await
        .expect_err("refused");
    assert!(refused.contains(&key_id(&old)), "{refused}");
    // Without the old key the rotation says which key it lacks and
    // changes nothing.
    let (ok, out) = key(&database, &new, None, &["rotate"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&key_id(&old)) && out.contains("could not be re-sealed"),
        "{out}"
    );
    let (ok, out) = key(&database, &new, Some(&old), &["rotate"]).await;
    assert!(ok && out.contains("re-sealed 1 bind passwords"), "{out}");
    let (ok, status) = key(&database, &new, None, &["status"]).await;
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!(
            "key {} (current): seals 1 bind passwords",
            key_id(&new)
        )),
        "{status}"
    );
    ds.reopen(|cfg| cfg.master_key_file = new.clone())
        .await
        .expect("starts with the new key alone");
    let mut client = ds.client("acme").await;
    stored_password_binds(&mut client, &i.id).await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    ds.stop().await;
}
