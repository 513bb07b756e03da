//! Test Connection through gRPC against the Samba DCs.

use dirsync::cli::Client;
use dirsync_proto::api::{self as pb, TestCheck as C, TestOutcome as O};
use dirsync_tests::{Embedded, FIXTURE_PASSWORD, Fixture, create_integration, env};

type Seen = Vec<(C, O, String, String, String)>;

async fn test(client: &mut Client, settings: pb::IntegrationSettings, password: &str) -> Seen {
    let mut stream = client
        .integrations
        .test_connection(pb::TestConnectionRequest {
            account_id: client.account.clone(),
            integration: String::new(),
            settings: Some(settings),
            password: Some(password.to_owned()),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(s) = stream.message().await.unwrap() {
        seen.push((
            C::try_from(s.check).unwrap(),
            O::try_from(s.outcome).unwrap(),
            s.host,
            s.detail,
            s.hint,
        ));
    }
    seen
}

fn outcomes(seen: &Seen) -> Vec<(C, O)> {
    seen.iter().map(|s| (s.0, s.1)).collect()
}

fn step(seen: &Seen, check: C) -> (O, String, String, String) {
    let s = seen
        .iter()
        .rev()
        .find(|s| s.0 == check)
        .unwrap_or_else(|| panic!("{check:?} missing: {seen:?}"));
    (s.1, s.2.clone(), s.3.clone(), s.4.clone())
}

#[tokio::test]
async fn test_connection_steps_and_hints() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let good = || fx.settings("Fixture AD");

    // Everything right (unsaved settings): five passes, sample addresses;
    // the fixture's reader lacks replication rights: deltas without
    // deletions, and the right to grant.
    let seen = test(&mut client, good(), FIXTURE_PASSWORD).await;
    assert_eq!(
        outcomes(&seen),
        [
            (C::Hostname, O::Passed),
            (C::Connectivity, O::Passed),
            (C::Certificate, O::Passed),
            (C::Authentication, O::Passed),
            (C::SampleAddresses, O::Passed),
            (C::DeltaSync, O::Warning),
        ],
        "{seen:?}"
    );
    let (_, _, detail, hint) = step(&seen, C::DeltaSync);
    assert!(detail.contains("object security"), "{detail}");
    assert!(hint.contains("Replicating Directory Changes"), "{hint}");
    // The domain administrator holds the right.
    let admin = pb::IntegrationSettings {
        user_dn: env("DIRSYNC_TEST_AD_ADMIN_DN"),
        ..good()
    };
    let seen = test(&mut client, admin, &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD")).await;
    let (outcome, _, detail, _) = step(&seen, C::DeltaSync);
    assert_eq!(outcome, O::Passed, "{seen:?}");
    assert!(detail.contains("DirSync reads every change"), "{detail}");
    assert!(
        step(&seen, C::Certificate).2.contains("Relaxed"),
        "{seen:?}"
    );

    // A host that does not resolve.
    let seen = test(
        &mut client,
        pb::IntegrationSettings {
            host: "dc.nonexistent.invalid".into(),
            ..good()
        },
        FIXTURE_PASSWORD,
    )
    .await;
    assert_eq!(step(&seen, C::Hostname).0, O::Failed);
    assert!(!step(&seen, C::Hostname).3.is_empty(), "a hint");
    assert_eq!(step(&seen, C::Authentication).0, O::Skipped);

    // A closed port on the primary: the checks go on with the alternate.
    let seen = test(
        &mut client,
        pb::IntegrationSettings {
            host: "127.0.0.9".into(),
            alternate_host: "::1".into(),
            ..good()
        },
        FIXTURE_PASSWORD,
    )
    .await;
    assert_eq!(seen[1].0, C::Connectivity);
    assert_eq!((seen[1].1, seen[1].2.as_str()), (O::Failed, "127.0.0.9"));
    assert!(
        seen[1].3.contains("continuing with the alternate host"),
        "{seen:?}"
    );
    let (outcome, host, _, _) = step(&seen, C::SampleAddresses);
    assert_eq!((outcome, host.as_str()), (O::Passed, "::1"));

    // Strict against Samba's self-signed certificate.
    let strict = pb::IntegrationSettings {
        encryption_mode: pb::EncryptionMode::Strict as i32,
        ..good()
    };
    let seen = test(&mut client, strict, FIXTURE_PASSWORD).await;
    let (outcome, _, detail, hint) = step(&seen, C::Certificate);
    assert_eq!(outcome, O::Failed);
    assert!(detail.contains("not issued by a trusted CA"), "{detail}");
    assert!(hint.contains("Relaxed"), "{hint}");

    // A wrong password.
    let seen = test(&mut client, good(), "not-the-password").await;
    let (outcome, _, detail, hint) = step(&seen, C::Authentication);
    assert_eq!(outcome, O::Failed);
    assert!(detail.contains("credentials were rejected"), "{detail}");
    assert!(hint.contains("password"), "{hint}");

    // A Root DN that does not exist.
    let seen = test(
        &mut client,
        pb::IntegrationSettings {
            root_dn: format!("OU=Missing,{}", fx.base),
            ..good()
        },
        FIXTURE_PASSWORD,
    )
    .await;
    let (outcome, _, detail, _) = step(&seen, C::SampleAddresses);
    assert_eq!(outcome, O::Failed);
    assert!(detail.contains("Root DN not found"), "{detail}");

    // Plain LDAP on 389: refused unless insecure binds are allowed, the
    // field named; allowed, the DC refuses the bind and the hint says to
    // encrypt.
    let plain = pb::IntegrationSettings {
        encrypt: Some(false),
        encryption_mode: 0,
        port: 389,
        ..good()
    };
    let refused = client
        .integrations
        .test_connection(pb::TestConnectionRequest {
            account_id: client.account.clone(),
            integration: String::new(),
            settings: Some(plain.clone()),
            password: Some(FIXTURE_PASSWORD.to_owned()),
        })
        .await
        .expect_err("insecure binds not allowed");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("settings.encrypt")
            && refused.message().contains("allow_insecure_bind"),
        "{}",
        refused.message()
    );
    let plain = pb::IntegrationSettings {
        allow_insecure_bind: true,
        ..plain
    };
    let seen = test(&mut client, plain, FIXTURE_PASSWORD).await;
    assert_eq!(step(&seen, C::Certificate).0, O::Warning);
    let (outcome, _, _, hint) = step(&seen, C::Authentication);
    assert_eq!(outcome, O::Failed);
    assert!(hint.contains("enable encryption"), "{hint}");

    // Global Catalog: a warning that members do not sync.
    let seen = test(
        &mut client,
        pb::IntegrationSettings {
            port: 3269,
            ..good()
        },
        FIXTURE_PASSWORD,
    )
    .await;
    let (outcome, _, detail, _) = step(&seen, C::SampleAddresses);
    assert_eq!(outcome, O::Warning);
    assert!(detail.contains("Global Catalog"), "{detail}");

    // A saved integration, with its stored password.
    let saved = create_integration(&mut client, good(), FIXTURE_PASSWORD).await;
    let mut stream = client
        .integrations
        .test_connection(pb::TestConnectionRequest {
            account_id: "acme".into(),
            integration: saved.id,
            settings: None,
            password: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(s) = stream.message().await.unwrap() {
        all.push(s);
    }
    let last = all.last().unwrap().clone();
    assert_eq!(last.check, C::DeltaSync as i32, "{last:?}");
    let samples = all
        .iter()
        .find(|s| s.check == C::SampleAddresses as i32)
        .unwrap();
    assert_eq!(samples.outcome, O::Passed as i32);
    assert!(
        samples.samples.iter().any(|s| s.ends_with("@example.com")),
        "{samples:?}"
    );
    stack.stop().await;
}
