//! Probes and shutdown of a role process, as Kubernetes sees them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use dirsync_tests::{dirsync_binary, env, master_key_file, postgres_database, tag};

async fn status(port: u16, service: &str) -> Option<i32> {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn every_role_serves_probes_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = master_key_file(dir.path());
    let database = postgres_database().await;
    for role in ["reconciler", "scheduler", "collector", "gateway"] {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (health, listen) = (free(), free());
        let mut child = Command::new(dirsync_binary())
            .arg("serve")
            .env("DIRSYNC_ROLES", role)
            .env("DIRSYNC_LISTEN", format!("127.0.0.1:{listen}"))
            .env("DIRSYNC_HEALTH_LISTEN", format!("127.0.0.1:{health}"))
            .env("DIRSYNC_DATABASE_URL", &database)
            .env("DIRSYNC_NATS_URL", env("DIRSYNC_TEST_NATS_URL"))
            .env("DIRSYNC_SUBJECT_PREFIX", format!("t_{}", tag()))
            .env("DIRSYNC_MASTER_KEY_FILE", &key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();

        let started = Instant::now();
        while status(health, "readiness").await != Some(ServingStatus::Serving as i32) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{role} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            status(health, "liveness").await,
            Some(ServingStatus::Serving as i32)
        );

        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{role} did not stop within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(exit.success(), "{role} exited with {exit}");
    }
}

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    socket.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    body
}

#[tokio::test]
async fn metrics_count_what_runs_did() {
    use dirsync_proto::api as pb;
    use dirsync_tests::{Embedded, FIXTURE_PASSWORD, Fixture, create_integration, sync};

    let fx = Fixture::seed();
    let port = dirsync_tests::free_port();
    let stack =
        Embedded::start_with(|cfg| cfg.metrics_listen = Some(format!("127.0.0.1:{port}"))).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        pb::RunState::Succeeded as i32
    );
    // Unchanged: every synced entry is recognised by its digest.
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        pb::RunState::Succeeded as i32
    );
    client
        .integrations
        .update_integration(pb::UpdateIntegrationRequest {
            account_id: String::new(),
            integration: i.id.clone(),
            settings: Some(fx.settings("Fixture AD")),
            password: Some("wrong".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        pb::RunState::Failed as i32
    );

    let text = scrape(port).await;
    let id = &i.id;
    for line in [
        format!(
            r#"dirsync_objects_synced_total{{integration="{id}",kind="user",operation="add"}} 5"#
        ),
        format!(
            r#"dirsync_objects_synced_total{{integration="{id}",kind="group",operation="add"}} 2"#
        ),
        format!(
            r#"dirsync_objects_synced_total{{integration="{id}",kind="contact",operation="add"}} 1"#
        ),
        format!(
            r#"dirsync_runs_total{{integration="{id}",outcome="succeeded",run_kind="full"}} 2"#
        ),
        format!(r#"dirsync_entries_recognised_total{{integration="{id}"}} 8"#),
        format!(r#"dirsync_runs_total{{integration="{id}",outcome="failed",run_kind="full"}} 1"#),
        r#"dirsync_ldap_errors_total{code="bind_invalid_credentials"} 1"#.to_owned(),
    ] {
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    assert!(
        text.contains(&format!(
            r#"dirsync_last_success_timestamp_seconds{{integration="{id}"}}"#
        )),
        "{text}"
    );
    assert!(
        text.contains("dirsync_run_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(FIXTURE_PASSWORD) && !text.contains("wrong"));
    stack.stop().await;
}

/// SIGTERM to each role in the middle of a sync: it exits 0 within 30 s,
/// and once restarted the run completes with the store matching AD.
#[tokio::test]
async fn sigterm_during_a_sync_loses_nothing() {
    use dirsync_proto::api as pb;
    use dirsync_tests::{Distributed, FIXTURE_PASSWORD, Fixture, create_integration};

    let fx = Fixture::seed();
    for role in ["collector-0", "reconciler", "scheduler", "gateway"] {
        let mut stack = Distributed::start_with(&[None], 3).await;
        let mut client = stack.client("acme").await;
        let settings = fx.bulk_settings("Bulk");
        let i = create_integration(&mut client, settings, FIXTURE_PASSWORD).await;
        let run = dirsync_tests::start_sync(&mut client, &i.id).await;
        // Wait for the run to be under way, then stop the role.
        let started = Instant::now();
        loop {
            let state = client
                .sync
                .get_run(pb::GetRunRequest {
                    account_id: String::new(),
                    run_id: run.id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .state;
            if state >= pb::RunState::Collecting as i32 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the run never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            stack.terminate(role, Duration::from_secs(30)),
            "{role} exited with an error"
        );
        stack.restart(role);
        if role == "gateway" {
            dirsync_tests::wait_for_gateway(&stack.gateway).await;
        }
        let mut client = stack.client("acme").await;
        let done = tokio::time::timeout(Duration::from_secs(120), client.wait(&run.id))
            .await
            .unwrap_or_else(|_| panic!("after {role} was stopped the run never completed"))
            .unwrap();
        assert_eq!(
            done.state,
            pb::RunState::Succeeded as i32,
            "{role}: {}",
            done.error
        );
        assert_eq!(done.counts.unwrap().added, 3001, "{role}");
        let contacts = client
            .directory
            .list_contacts(pb::ListObjectsRequest {
                account_id: String::new(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .objects;
        assert_eq!(contacts.len(), 3000, "{role}");
    }
}
