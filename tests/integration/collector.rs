//! Connection settings and directory shapes, against the Samba AD DC.

use dirsync::cli::Client;
use dirsync_proto::api::{self as pb, RunState};
use dirsync_tests::{
    Embedded, FIXTURE_PASSWORD, Fixture, create_integration, expected_fixture, snapshot, sync,
};

async fn update(client: &mut Client, id: &str, settings: pb::IntegrationSettings) {
    client
        .integrations
        .update_integration(pb::UpdateIntegrationRequest {
            account_id: client.account.clone(),
            integration: id.to_owned(),
            settings: Some(settings),
            password: None,
            ..Default::default()
        })
        .await
        .expect("UpdateIntegration");
}

fn failed_with(run: &pb::Run, words: &[&str]) {
    assert_eq!(run.state, RunState::Failed as i32, "{run:?}");
    for w in words {
        assert!(run.error.contains(w), "{w:?} not in {:?}", run.error);
    }
}

#[tokio::test]
async fn alternate_host_serves_when_the_primary_refuses() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        // Nothing listens on 127.0.0.9; the DC also answers on ::1.
        host: "127.0.0.9".into(),
        alternate_host: "::1".into(),
        ..fx.settings("Fixture AD")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(run.host, "::1", "the run records the host that served it");
    assert_eq!(snapshot(&mut client).await.0, expected_fixture());
    stack.stop().await;
}

#[tokio::test]
async fn the_alternate_host_has_a_port_of_its_own_and_the_failover_is_said() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        // The primary on the Global Catalog's port, where nothing listens;
        // the alternate names 636, where the DC answers.
        host: "127.0.0.25".into(),
        port: 3269,
        alternate_host: format!("{}:636", dirsync_tests::env("DIRSYNC_TEST_AD_HOST")),
        ..fx.settings("Fixture AD")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    let alternate = format!("{}:636", dirsync_tests::env("DIRSYNC_TEST_AD_HOST"));
    assert_eq!(
        run.host, alternate,
        "the run names the host and port that served it"
    );
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("127.0.0.25:3269 could not be reached")
                && w.contains(&format!("went on at the alternate host {alternate}"))),
        "{:?}",
        run.warnings
    );
    // Read on 636: members, not the Global Catalog's gap.
    assert_eq!(snapshot(&mut client).await.0, expected_fixture());
    // Test Connection goes the same way, naming the alternate's port.
    let mut stream = client
        .integrations
        .test_connection(pb::TestConnectionRequest {
            account_id: "acme".into(),
            integration: i.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut hosts = Vec::new();
    while let Some(step) = stream.message().await.unwrap() {
        if step.check == pb::TestCheck::Authentication as i32 {
            assert_eq!(step.outcome, pb::TestOutcome::Passed as i32, "{step:?}");
        }
        hosts.push(step.host);
    }
    assert!(hosts.contains(&"127.0.0.25".to_owned()), "{hosts:?}");
    assert!(hosts.contains(&alternate), "{hosts:?}");
    // A port in the primary's host is refused, naming the field.
    let e = client
        .integrations
        .create_integration(pb::CreateIntegrationRequest {
            account_id: "acme".into(),
            settings: Some(pb::IntegrationSettings {
                host: "dc1.corp.example.test:636".into(),
                ..fx.settings("Port in host")
            }),
            password: FIXTURE_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert!(e.message().contains("settings.host"), "{}", e.message());
    stack.stop().await;
}

#[tokio::test]
async fn unreachable_hosts_and_missing_root_dn_fail_with_the_reason() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        host: "127.0.0.9".into(),
        ..fx.settings("Nowhere")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    failed_with(
        &sync(&mut client, &i.id).await,
        &["cannot connect to ldaps://127.0.0.9:636"],
    );

    let settings = pb::IntegrationSettings {
        root_dn: format!("OU=Missing,{}", fx.base),
        ..fx.settings("Missing root")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    failed_with(
        &sync(&mut client, &i.id).await,
        &["Root DN", "OU=Missing", "does not exist"],
    );
    stack.stop().await;
}

#[tokio::test]
async fn plain_ldap_bind_asks_to_enable_encryption() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        encrypt: Some(false),
        encryption_mode: pb::EncryptionMode::Unspecified as i32,
        port: 389,
        allow_insecure_bind: true,
        ..fx.settings("Plain")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    failed_with(&sync(&mut client, &i.id).await, &["enable encryption"]);
    // A stored integration without encryption that does not allow
    // insecure binds (made before the setting existed) binds nothing.
    let rec = {
        let mut rec = stack.store.get_integration("acme", &i.id).await.unwrap();
        rec.settings.allow_insecure_bind = false;
        rec
    };
    stack.store.update_integration(&rec).await.unwrap();
    failed_with(
        &sync(&mut client, &i.id).await,
        &["refuses to send a password in clear", "allow_insecure_bind"],
    );
    assert!(snapshot(&mut client).await.0.users.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn starttls_on_389_syncs() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        port: 389,
        ..fx.settings("StartTLS")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(snapshot(&mut client).await.0, expected_fixture());
    stack.stop().await;
}

#[tokio::test]
async fn strict_mode_refuses_samba_self_signed_certificate() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        encryption_mode: pb::EncryptionMode::Strict as i32,
        ..fx.settings("Strict")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    failed_with(
        &sync(&mut client, &i.id).await,
        &["not issued by a trusted CA"],
    );
    stack.stop().await;
}

#[tokio::test]
async fn global_catalog_run_keeps_member_edges() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        RunState::Succeeded as i32
    );

    // Carol leaves Engineering in AD; a Global Catalog run must not read
    // the GC's view of members as the truth.
    let engineering = format!("CN=Engineering,OU=Groups,{}", fx.root_dn);
    let carol = format!("CN=Carol Chen,OU=People,{}", fx.root_dn);
    let mut ldap = fx.admin().await;
    ldap.modify(
        &engineering,
        vec![ldap3::Mod::Delete("member", [carol.as_str()].into())],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    update(
        &mut client,
        &i.id,
        pb::IntegrationSettings {
            port: 3269,
            ..fx.settings("Fixture AD")
        },
    )
    .await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert!(
        run.warnings.iter().any(|w| w.contains("Global Catalog")),
        "{:?}",
        run.warnings
    );
    assert_eq!(
        snapshot(&mut client).await.0,
        expected_fixture(),
        "member edges untouched"
    );

    // Back on the domain port, members follow AD again.
    update(&mut client, &i.id, fx.settings("Fixture AD")).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    let mut expected = expected_fixture();
    expected.groups[1].2.retain(|m| m != "Carol Chen");
    assert_eq!(snapshot(&mut client).await.0, expected);
    stack.stop().await;
}

/// Strict and Relaxed against the three certificates the test DCs serve.
#[tokio::test]
async fn encryption_modes_against_each_certificate() {
    let ca = std::path::PathBuf::from(dirsync_tests::env("DIRSYNC_TEST_AD_CA_FILE"));
    let stack = Embedded::start_with(|cfg| cfg.ca_bundle = Some(ca)).await;
    let mut client = stack.client("acme").await;
    let strict = |fx: &Fixture, name: &str| pb::IntegrationSettings {
        encryption_mode: pb::EncryptionMode::Strict as i32,
        ..fx.settings(name)
    };

    // A test CA's RSA 2048 certificate naming the host: Strict passes.
    let good = Fixture::seed_on(&dirsync_tests::env("DIRSYNC_TEST_AD_STRICT_HOST"));
    let i = create_integration(&mut client, strict(&good, "Strict 2048"), FIXTURE_PASSWORD).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(snapshot(&mut client).await.0, expected_fixture());

    // The same CA, an RSA 1024 key: Strict refuses it, Relaxed accepts it.
    let weak = Fixture::seed_on(&dirsync_tests::env("DIRSYNC_TEST_AD_WEAK_KEY_HOST"));
    let mut other = stack.client("globex").await;
    let i = create_integration(&mut other, strict(&weak, "Strict 1024"), FIXTURE_PASSWORD).await;
    failed_with(
        &sync(&mut other, &i.id).await,
        &["key length greater than 1024 bits"],
    );
    let i = create_integration(&mut other, weak.settings("Relaxed 1024"), FIXTURE_PASSWORD).await;
    let run = sync(&mut other, &i.id).await;
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(snapshot(&mut other).await.0, expected_fixture());

    // Relaxed accepts the CA-issued 2048 certificate too.
    let mut third = stack.client("initech").await;
    let i = create_integration(&mut third, good.settings("Relaxed 2048"), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut third, &i.id).await.state,
        RunState::Succeeded as i32
    );
    stack.stop().await;

    // Without the test CA in the bundle, Strict does not trust it.
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, strict(&good, "Untrusted"), FIXTURE_PASSWORD).await;
    failed_with(
        &sync(&mut client, &i.id).await,
        &["not issued by a trusted CA"],
    );
    stack.stop().await;
}

/// A group of 3000 members (OU=bulk3000, loaded once per DC by
/// samba-dc.sh) is read complete through ranges of 1000 values.
#[tokio::test]
async fn large_group_is_read_in_ranges_and_complete() {
    let fx = Fixture::seed(); // for the bind account
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let settings = fx.bulk_settings("Bulk");
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    let started = dirsync_tests::start_sync(&mut client, &i.id).await;
    // Watch it: the states move forward only, and objects read so far
    // never exceed the total.
    let mut updates = client
        .sync
        .watch_run(pb::GetRunRequest {
            account_id: "acme".into(),
            run_id: started.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(update) = updates.message().await.unwrap() {
        assert!(
            update.counts.unwrap_or_default().collected <= 3001,
            "{update:?}"
        );
        seen.push(update);
    }
    let states: Vec<i32> = seen.iter().map(|r| r.state).collect();
    assert!(states.windows(2).all(|w| w[0] <= w[1]), "{states:?}");
    let run = seen.pop().unwrap();
    assert_eq!(run.state, RunState::Succeeded as i32, "{}", run.error);
    assert_eq!(run.counts.unwrap_or_default().added, 3001);
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
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].member_ids.len(), 3000);
    stack.stop().await;
}

/// A domain controller that accepts the connection and then says nothing
/// fails the run with a timeout instead of hanging it.
#[tokio::test]
async fn a_hung_domain_controller_fails_the_run_in_time() {
    let fx = Fixture::seed();
    // Accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hung.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let stack = Embedded::start_with(|cfg| {
        cfg.ldap_connect_timeout_seconds = 2;
        cfg.ldap_operation_timeout_seconds = 2;
    })
    .await;
    let mut client = stack.client("acme").await;
    let settings = pb::IntegrationSettings {
        port: u32::from(port),
        ..fx.settings("Hung")
    };
    let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
    let started = std::time::Instant::now();
    failed_with(
        &sync(&mut client, &i.id).await,
        &["did not answer within 2s"],
    );
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    holder.abort();
    stack.stop().await;
}
