//! A malicious or broken directory (tests/src/hostile.rs): oversized
//! values and messages, deep nesting, a million member values, text that
//! is not UTF-8, duplicate attributes, a page cut short, a control that
//! cannot be read. Each ends in a clear run error or a warning naming the
//! entry, memory stays bounded, and nothing stored is lost. Distributed
//! shape: the collector is a process of its own, its memory measured.

use std::time::Instant;

use dirsync_proto::api;
use dirsync_tests::hostile::{Behaviour, HOSTILE_ROOT, HostileServer};
use dirsync_tests::{
    Distributed, Reliability, assert_succeeded, counts, create_integration, snapshot, sync,
};

fn settings(port: u16) -> api::IntegrationSettings {
    api::IntegrationSettings {
        name: "Hostile directory".into(),
        r#type: api::DirectoryType::Ldap as i32,
        host: "127.0.0.1".into(),
        port: u32::from(port),
        encrypt: Some(false),
        allow_insecure_bind: true,
        user_dn: "cn=dirsync,dc=hostile,dc=test".into(),
        root_dn: HOSTILE_ROOT.into(),
        maximum_sync_deletions: 10,
        delta_interval_minutes: Some(0),
        ..Default::default()
    }
}

fn failed(run: &api::Run) -> bool {
    run.state == api::RunState::Failed as i32
}

#[tokio::test]
async fn a_hostile_directory_fails_runs_clearly_and_loses_nothing() {
    let server = HostileServer::start(Behaviour::Good).await;
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, settings(server.port), "hostile").await;
    let first = sync(&mut client, &i.id).await;
    assert_succeeded(&first);
    assert_eq!(counts(&first).1, 4, "{first:?}");
    let (good, _) = snapshot(&mut client).await;

    // Runs that fail, each saying why; the store as it was.
    for (behaviour, why) in [
        (Behaviour::TruncatedPage, "connection"),
        (
            Behaviour::OversizedMessage,
            "more than the 268435456 accepted",
        ),
        (Behaviour::DeepNesting, "nests deeper than 32 levels"),
        (
            Behaviour::BadPagedControl,
            "paged results control cannot be read",
        ),
    ] {
        server.set(behaviour);
        let started = Instant::now();
        let run = sync(&mut client, &i.id).await;
        assert!(failed(&run), "{behaviour:?}: {run:?}");
        assert!(run.error.contains(why), "{behaviour:?}: {}", run.error);
        assert_eq!(snapshot(&mut client).await.0, good, "{behaviour:?}");
        Reliability {
            scenario: format!("Hostile directory: {}", describe(behaviour)),
            injected: "a loopback LDAP server answering the sync's search so".into(),
            times: 1,
            runs_settled: (1, 1),
            objects_compared: 4,
            held: format!(
                "the run failed in {:.1} s saying \"{}\"; the store unchanged",
                started.elapsed().as_secs_f64(),
                run.error
            ),
            ..Default::default()
        }
        .record();
    }

    // Entries that cannot be read are skipped, named in a warning; the
    // run removes nothing and changes nothing else.
    for (behaviour, why) in [
        (Behaviour::InvalidUtf8, "not UTF-8"),
        (
            Behaviour::OversizedValue,
            "more than the 65536 dirsync reads",
        ),
    ] {
        server.set(behaviour);
        let run = sync(&mut client, &i.id).await;
        assert_succeeded(&run);
        assert!(
            run.warnings.iter().any(|w| w.contains(why)),
            "{behaviour:?}: {:?}",
            run.warnings
        );
        let (_, added, updated, removed, _) = counts(&run);
        assert_eq!(
            (added, updated, removed),
            (0, 0, 0),
            "{behaviour:?}: {run:?}"
        );
        assert_eq!(snapshot(&mut client).await.0, good, "{behaviour:?}");
        Reliability {
            scenario: format!("Hostile directory: {}", describe(behaviour)),
            injected: "a loopback LDAP server answering the sync's search so".into(),
            times: 1,
            runs_settled: (1, 1),
            objects_compared: 4,
            held: "the entry was skipped with a warning naming it; nothing removed or changed, its group kept its members".into(),
            ..Default::default()
        }
        .record();
    }
    // An attribute sent twice: the first is read, the sync is stable.
    server.set(Behaviour::DuplicateAttributes);
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(snapshot(&mut client).await.0, good);
    Reliability {
        scenario: format!(
            "Hostile directory: {}",
            describe(Behaviour::DuplicateAttributes)
        ),
        injected: "a loopback LDAP server answering the sync's search so".into(),
        times: 1,
        runs_settled: (1, 1),
        objects_compared: 4,
        held: "the first occurrence was read; the run succeeded, nothing changed".into(),
        ..Default::default()
    }
    .record();

    // A million member values (DNs of no entry): read in bounded memory,
    // the group keeps its three members.
    server.set(Behaviour::ManyMembers(1_000_000));
    let started = Instant::now();
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(snapshot(&mut client).await.0, good);
    let (collector, reconciler) = (stack.peak_rss("collector-0"), stack.peak_rss("reconciler"));
    Reliability {
        scenario: format!("Hostile directory: {}", describe(Behaviour::ManyMembers(1_000_000))),
        injected: "a loopback LDAP server answering the sync's search so".into(),
        times: 1,
        runs_settled: (1, 1),
        objects_compared: 4,
        held: format!(
            "the run succeeded in {:.1} s; peak RSS: collector {} MB, reconciler {} MB; the group kept its three members",
            started.elapsed().as_secs_f64(),
            collector >> 20,
            reconciler >> 20
        ),
        ..Default::default()
    }
    .record();
    assert!(collector < 1 << 30, "collector peak {collector}");
    assert!(reconciler < 1 << 30, "reconciler peak {reconciler}");
    server.set(Behaviour::Good);
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(snapshot(&mut client).await.0, good);
}

fn describe(b: Behaviour) -> String {
    match b {
        Behaviour::Good => "none".into(),
        Behaviour::TruncatedPage => "a page cut off in the middle of an entry".into(),
        Behaviour::InvalidUtf8 => "a DN and a display name that are not UTF-8".into(),
        Behaviour::DuplicateAttributes => "an attribute sent three times (mail, mail, MAIL)".into(),
        Behaviour::OversizedValue => "a 1 MiB display name".into(),
        Behaviour::OversizedMessage => "a message declaring 300 MB".into(),
        Behaviour::DeepNesting => "a message of 20,000 nested SEQUENCEs".into(),
        Behaviour::ManyMembers(n) => format!("a group of {n} member values"),
        Behaviour::BadPagedControl => "an unreadable paged results control".into(),
    }
}
