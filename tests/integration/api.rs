//! Request validation and the write-only password, through gRPC.

use dirsync_proto::api as pb;
use dirsync_tests::{Embedded, FIXTURE_PASSWORD, Fixture, create_integration};

async fn create_err(
    client: &mut dirsync::cli::Client,
    settings: pb::IntegrationSettings,
) -> tonic::Status {
    client
        .integrations
        .create_integration(pb::CreateIntegrationRequest {
            account_id: client.account.clone(),
            settings: Some(settings),
            password: FIXTURE_PASSWORD.to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("invalid settings accepted")
}

#[tokio::test]
async fn malformed_requests_name_the_field() {
    let fx = Fixture {
        ou: "unused".into(),
        base: "OU=unused,DC=corp,DC=example,DC=test".into(),
        root_dn: "OU=Sync,OU=unused,DC=corp,DC=example,DC=test".into(),
        bind_dn: "CN=Sync Reader,OU=unused,DC=corp,DC=example,DC=test".into(),
        host: "127.0.0.1".into(),
    };
    let base = || pb::IntegrationSettings {
        host: "dc1.corp.example.test".into(),
        ..fx.settings("Bad")
    };
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;

    let cases = [
        (
            pb::IntegrationSettings {
                host: "".into(),
                ..base()
            },
            "settings.host",
        ),
        (
            pb::IntegrationSettings {
                port: 70000,
                ..base()
            },
            "settings.port",
        ),
        (
            pb::IntegrationSettings {
                root_dn: "not a dn".into(),
                ..base()
            },
            "settings.root_dn",
        ),
        (
            pb::IntegrationSettings {
                user_dn: "Administrator".into(),
                ..base()
            },
            "settings.user_dn",
        ),
        (
            pb::IntegrationSettings {
                filter_email_domains: "a.com, b.com".into(),
                ..base()
            },
            "settings.filter_email_domains",
        ),
        (
            pb::IntegrationSettings {
                maximum_sync_deletions: -5,
                ..base()
            },
            "settings.maximum_sync_deletions",
        ),
        (
            pb::IntegrationSettings {
                name: "".into(),
                ..base()
            },
            "settings.name",
        ),
    ];
    for (settings, field) in cases {
        let status = create_err(&mut client, settings).await;
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(
            status.message().contains(field),
            "{field} not named in {:?}",
            status.message()
        );
    }

    // A missing password and a bad account id are named too.
    let status = client
        .integrations
        .create_integration(pb::CreateIntegrationRequest {
            account_id: client.account.clone(),
            settings: Some(base()),
            password: String::new(),
            ..Default::default()
        })
        .await
        .expect_err("no password");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("password"), "{status:?}");
    let status = client
        .integrations
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: "Not An Account".into(),
        })
        .await
        .expect_err("bad account");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().starts_with("account_id"), "{status:?}");

    // Nothing invalid was stored.
    let list = client
        .integrations
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.integrations.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn integration_crud_keeps_the_password_write_only() {
    let fx = Fixture {
        ou: "unused".into(),
        base: "OU=unused,DC=corp,DC=example,DC=test".into(),
        root_dn: "OU=Sync,OU=unused,DC=corp,DC=example,DC=test".into(),
        bind_dn: "CN=Sync Reader,OU=unused,DC=corp,DC=example,DC=test".into(),
        host: "127.0.0.1".into(),
    };
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let created = create_integration(&mut client, fx.settings("HQ"), "S3ntinel-Pa55").await;
    assert!(format!("{created:?}").find("S3ntinel").is_none());

    // Same name twice: ALREADY_EXISTS.
    let dup = client
        .integrations
        .create_integration(pb::CreateIntegrationRequest {
            account_id: "acme".into(),
            settings: Some(fx.settings("HQ")),
            password: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("duplicate name");
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);

    // Update without a password keeps it; by name works as well as by id.
    let mut settings = fx.settings("HQ");
    settings.description = "changed".into();
    settings.filter_email_domains = "example.com,example.org".into();
    let updated = client
        .integrations
        .update_integration(pb::UpdateIntegrationRequest {
            account_id: "acme".into(),
            integration: "HQ".into(),
            settings: Some(settings),
            password: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(updated.password_set);
    let got = client
        .integrations
        .get_integration(pb::GetIntegrationRequest {
            account_id: "acme".into(),
            integration: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let s = got.settings.unwrap();
    assert_eq!(s.description, "changed");
    assert_eq!(s.filter_email_domains, "example.com,example.org");
    assert_eq!(s.port, 636);

    // The sealed password is not in the database file in clear.
    let db = std::fs::read(stack.dir.path().join("dirsync.db")).unwrap();
    let wal = std::fs::read(stack.dir.path().join("dirsync.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(8).any(|w| w == b"S3ntinel"),
            "password stored in clear"
        );
    }

    // Another account does not see it: naming it is refused, and its own
    // token finds nothing.
    let other = client
        .integrations
        .get_integration(pb::GetIntegrationRequest {
            account_id: "globex".into(),
            integration: created.id.clone(),
        })
        .await
        .expect_err("other account");
    assert_eq!(other.code(), tonic::Code::PermissionDenied);
    let mut globex = stack.client("globex").await;
    let other = globex
        .integrations
        .get_integration(pb::GetIntegrationRequest {
            account_id: String::new(),
            integration: created.id.clone(),
        })
        .await
        .expect_err("other account");
    assert_eq!(other.code(), tonic::Code::NotFound);

    client
        .integrations
        .delete_integration(pb::DeleteIntegrationRequest {
            account_id: "acme".into(),
            integration: "HQ".into(),
        })
        .await
        .unwrap();
    let gone = client
        .integrations
        .get_integration(pb::GetIntegrationRequest {
            account_id: "acme".into(),
            integration: created.id,
        })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    stack.stop().await;
}

#[tokio::test]
async fn sync_all_account_schedule_and_integration_status() {
    let fx = dirsync_tests::Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;

    let bad = client
        .accounts
        .update_account(pb::UpdateAccountRequest {
            account_id: "acme".into(),
            time_zone: "Mars/Olympus".into(),
            schedule: String::new(),
            ldap_sign_in: None,
        })
        .await
        .expect_err("unknown zone");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("time_zone"), "{bad:?}");
    let account = client
        .accounts
        .update_account(pb::UpdateAccountRequest {
            account_id: "acme".into(),
            time_zone: "Europe/London".into(),
            schedule: "18:00,06:00".into(),
            ldap_sign_in: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (account.time_zone.as_str(), account.schedule.as_str()),
        ("Europe/London", "06:00,18:00")
    );

    let on = create_integration(&mut client, fx.settings("On"), FIXTURE_PASSWORD).await;
    let off = pb::IntegrationSettings {
        enabled: Some(false),
        ..fx.settings("Off")
    };
    create_integration(&mut client, off, FIXTURE_PASSWORD).await;

    let runs = client
        .sync
        .sync_all(pb::SyncAllRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1, "disabled integrations are not synced");
    assert_eq!(runs[0].integration_id, on.id);
    assert_eq!(runs[0].trigger, pb::RunTrigger::SyncAll as i32);
    let done = client.wait(&runs[0].id).await.unwrap();
    assert_eq!(done.state, pb::RunState::Succeeded as i32, "{}", done.error);

    let list = client
        .integrations
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .integrations;
    let status = |name: &str| {
        list.iter()
            .find(|i| i.settings.as_ref().unwrap().name == name)
            .unwrap()
            .status
            .clone()
            .unwrap()
    };
    let st = status("On");
    assert_eq!(st.last_run.unwrap().id, runs[0].id);
    assert!(st.last_success_at.is_some());
    let next = st.next_run_at.expect("scheduled");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        next.seconds > now && next.seconds <= now + 13 * 3600,
        "next run within 12 h: {next:?}"
    );
    assert!(!st.destructive_changes_paused);
    let st = status("Off");
    assert!(st.last_run.is_none() && st.next_run_at.is_none());
    stack.stop().await;
}

#[tokio::test]
async fn a_wrong_master_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("keep.db").display());
    let key_a = dirsync_tests::master_key_file(dir.path());
    let stack = {
        let (db, key_a) = (db.clone(), key_a.clone());
        Embedded::start_with(move |cfg| {
            cfg.database_url = db;
            cfg.master_key_file = key_a;
        })
        .await
    };
    let mut client = stack.client("acme").await;
    let fx = Fixture {
        ou: "unused".into(),
        base: "OU=unused,DC=corp,DC=example,DC=test".into(),
        root_dn: "OU=Sync,OU=unused,DC=corp,DC=example,DC=test".into(),
        bind_dn: "CN=Sync Reader,OU=unused,DC=corp,DC=example,DC=test".into(),
        host: "127.0.0.1".into(),
    };
    create_integration(&mut client, fx.settings("HQ"), "S3ntinel-Pa55").await;
    stack.stop().await;

    let key_b = dir.path().join("other.key");
    std::fs::write(&key_b, dirsync_core::MasterKey::generate_hex()).unwrap();
    let cfg = dirsync::serve::ServeConfig {
        master_key_file: key_b,
        ..dirsync::serve::ServeConfig::embedded(db.clone(), key_a.clone())
    };
    let err = dirsync::serve::Deps::open(&cfg)
        .await
        .err()
        .expect("wrong key refused");
    assert!(
        format!("{err:#}").contains("which none of the keys loaded is"),
        "{err:#}"
    );
    let missing = dirsync::serve::ServeConfig {
        master_key_file: dir.path().join("missing.key"),
        ..cfg
    };
    let err = dirsync::serve::Deps::open(&missing)
        .await
        .err()
        .expect("missing key refused");
    assert!(format!("{err:#}").contains("missing.key"), "{err:#}");
    // With the right key it starts.
    let ok = dirsync::serve::ServeConfig {
        master_key_file: key_a,
        ..missing
    };
    assert!(dirsync::serve::Deps::open(&ok).await.is_ok());
}

#[tokio::test]
async fn every_rpc_needs_a_token_of_its_account() {
    let stack = Embedded::start().await;
    let channel = tonic::transport::Channel::from_shared(stack.gateway.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // No token.
    let mut bare =
        dirsync_proto::api::integration_service_client::IntegrationServiceClient::new(channel);
    let none = bare
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: "acme".into(),
        })
        .await
        .expect_err("no token");
    assert_eq!(none.code(), tonic::Code::Unauthenticated);
    // A made-up token.
    let forged = dirsync_tests::client(
        &stack.gateway,
        "acme",
        &format!("dst_{}_{}", "0".repeat(16), "0".repeat(64)),
    )
    .await;
    let mut forged = forged;
    let status = forged
        .integrations
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: String::new(),
        })
        .await
        .expect_err("forged");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    // A revoked token.
    let token = stack.token("acme").await;
    let mut client = dirsync_tests::client(&stack.gateway, "acme", &token).await;
    client
        .integrations
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: String::new(),
        })
        .await
        .unwrap();
    let id = dirsync_core::token::parse(&token).unwrap().0.to_owned();
    stack.store.revoke_token("acme", &id, 1).await.unwrap();
    let revoked = client
        .integrations
        .list_integrations(pb::ListIntegrationsRequest {
            account_id: String::new(),
        })
        .await
        .expect_err("revoked");
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
    // The store keeps only a hash of the secret.
    let secret = dirsync_core::token::parse(&token).unwrap().1.to_owned();
    let stored = stack.store.list_tokens("acme").await.unwrap();
    assert!(
        stored
            .iter()
            .all(|t| t.secret_hash != secret && !t.secret_hash.contains(&secret))
    );
    stack.stop().await;
}

/// The bind password and end users' passwords appear nowhere: not in any
/// response, not in a dump of the database, not in the logs of every
/// process at TRACE level.
#[tokio::test]
async fn passwords_never_leave_in_clear() {
    let fx = Fixture::seed();
    let stack = dirsync_tests::Distributed::start_logging(&[None], 60, "trace").await;
    let mut client = stack.client("acme").await;
    let sentinel = FIXTURE_PASSWORD; // the real bind password, so that syncs bind
    let created = create_integration(&mut client, fx.settings("Fixture AD"), sentinel).await;
    let run = dirsync_tests::sync(&mut client, &created.id).await;
    assert_eq!(run.state, pb::RunState::Succeeded as i32, "{}", run.error);
    let mut seen = format!("{created:?}{run:?}");
    let got = client
        .integrations
        .get_integration(pb::GetIntegrationRequest {
            account_id: String::new(),
            integration: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    seen.push_str(&format!("{got:?}"));
    let mut steps = client
        .integrations
        .test_connection(pb::TestConnectionRequest {
            account_id: String::new(),
            integration: created.id.clone(),
            settings: None,
            password: None,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(step) = steps.message().await.unwrap() {
        seen.push_str(&format!("{step:?}"));
    }
    client
        .accounts
        .update_account(pb::UpdateAccountRequest {
            ldap_sign_in: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let signed_in = client
        .auth
        .authenticate(pb::AuthenticateRequest {
            account_id: String::new(),
            address: "alice@example.com".into(),
            password: sentinel.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed_in.result, pb::AuthResult::Ok as i32);
    seen.push_str(&format!("{signed_in:?}"));
    assert!(!seen.contains(sentinel), "a response carries the password");

    let dump = std::process::Command::new("pg_dump")
        .arg(stack.database())
        .output()
        .expect("pg_dump (Debian package postgresql-client)");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("Fixture AD"),
        "the dump holds the integration"
    );
    assert!(
        !dump.contains(sentinel),
        "the database holds the password in clear"
    );

    let logs = stack.logs();
    assert!(logs.contains("TRACE"), "the processes logged at TRACE");
    assert!(!logs.contains(sentinel), "a log carries the password");
}
