//! The CLI, as an admin types it, against a running gateway.

use std::path::Path;

use dirsync_tests::{Embedded, FIXTURE_PASSWORD, Fixture, dirsync_binary, env};

/// Runs the CLI without blocking the runtime the gateway runs on.
async fn dirsync(gateway: &(String, String), args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(dirsync_binary())
        .args(args)
        .env("DIRSYNC_GATEWAY", &gateway.0)
        .env("DIRSYNC_TOKEN", &gateway.1)
        .output()
        .await
        .expect("running dirsync");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn create(gateway: &(String, String), toml: &Path, password_file: &Path) -> (bool, String) {
    let (toml, pw) = (toml.to_str().unwrap(), password_file.to_str().unwrap());
    dirsync(
        gateway,
        &[
            "integration",
            "create",
            "--file",
            toml,
            "--password-file",
            pw,
        ],
    )
    .await
}

#[tokio::test]
async fn cli_creates_syncs_and_lists() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    // The gateway and an API token of account acme.
    let gw = (stack.gateway.clone(), stack.token("acme").await);
    let dir = stack.dir.path();
    let pw = dir.join("bind.pw");
    std::fs::write(&pw, format!("{FIXTURE_PASSWORD}\n")).unwrap();
    let toml = dir.join("integration.toml");
    std::fs::write(
        &toml,
        format!(
            "name = \"Fixture AD\"\nhost = \"{}\"\nport = 636\nencrypt = true\nencryption_mode = \"relaxed\"\n\
             user_dn = \"{}\"\nroot_dn = \"{}\"\nacknowledge_disabled_accounts = true\ninclude_contacts = true\n",
            env("DIRSYNC_TEST_AD_HOST"),
            fx.bind_dn,
            fx.root_dn
        ),
    )
    .unwrap();

    let (ok, out) = create(&gw, &toml, &pw).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Fixture AD") && out.contains("(relaxed)"),
        "{out}"
    );
    assert!(!out.contains(FIXTURE_PASSWORD), "{out}");

    let (ok, out) = dirsync(&gw, &["integration", "list"]).await;
    assert!(ok && out.contains("Fixture AD"), "{out}");

    let (ok, out) = dirsync(&gw, &["sync", "now", "Fixture AD", "--wait"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("succeeded") && out.contains("added     8"),
        "{out}"
    );

    let (ok, out) = dirsync(&gw, &["runs", "Fixture AD"]).await;
    assert!(ok && out.contains("succeeded"), "{out}");

    let (ok, out) = dirsync(&gw, &["users", "list"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("Users (5)"), "{out}");
    assert!(out.contains("bob@example.com [disabled]"), "{out}");
    assert!(
        out.contains("aliases: a.anders@example.com, alice@example.org"),
        "{out}"
    );

    let (ok, out) = dirsync(&gw, &["groups", "list"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("members: Alice Anders, Carol Chen, Smith, Erin"),
        "{out}"
    );

    let (ok, out) = dirsync(&gw, &["lookup", "erin@example.com"]).await;
    assert!(ok && out.contains("Smith, Erin"), "{out}");

    // Every other command an admin needs, through the same binary.
    let (ok, out) = dirsync(&gw, &["runs", "Fixture AD"]).await;
    let run_id = out.split_whitespace().next().unwrap().to_owned();
    let (ok2, shown) = dirsync(&gw, &["run", &run_id]).await;
    assert!(
        ok && ok2 && shown.contains(&run_id) && shown.contains("succeeded"),
        "{shown}"
    );
    let (ok, out) = dirsync(&gw, &["integration", "test", "Fixture AD"]).await;
    assert!(ok && out.contains("✓ authentication"), "{out}");
    let (ok, out) = dirsync(&gw, &["sync", "preview", "Fixture AD"]).await;
    assert!(ok && out.contains("Would change (0)"), "{out}");
    let (ok, out) = dirsync(&gw, &["changes", "--address", "alice@example.com"]).await;
    assert!(
        ok && out.contains("add") && out.contains("Alice Anders"),
        "{out}"
    );
    let (ok, out) = dirsync(
        &gw,
        &[
            "account",
            "set",
            "--time-zone",
            "Europe/London",
            "--ldap-sign-in",
            "true",
        ],
    )
    .await;
    assert!(
        ok && out.contains("Europe/London") && out.contains("sign-in on"),
        "{out}"
    );
    let (ok, out) = dirsync(
        &gw,
        &[
            "sign-in",
            "alice@example.com",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok && out.starts_with("ok"), "{out}");
    let updated = std::fs::read_to_string(&toml).unwrap().replace(
        "name = \"Fixture AD\"",
        "name = \"Fixture AD\"\ndescription = \"renamed by the CLI\"",
    );
    std::fs::write(&toml, updated).unwrap();
    let (ok, out) = dirsync(
        &gw,
        &[
            "integration",
            "update",
            "Fixture AD",
            "--file",
            toml.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = dirsync(&gw, &["sync", "all", "--wait"]).await;
    assert!(
        ok && out.contains("succeeded"),
        "the stored password was kept: {out}"
    );

    // A typo in the settings file is refused, naming the key.
    std::fs::write(&toml, "name = \"x\"\nhots = \"dc1\"\n").unwrap();
    let (ok, out) = create(&gw, &toml, &pw).await;
    assert!(!ok && out.contains("hots"), "{out}");

    // An invalid setting comes back as the API's field error.
    std::fs::write(
        &toml,
        "name = \"Bad\"\nhost = \"dc1.example.test\"\nport = 70000\nuser_dn = \"CN=x,DC=y\"\nroot_dn = \"DC=y\"\n",
    )
    .unwrap();
    let (ok, out) = create(&gw, &toml, &pw).await;
    assert!(!ok && out.contains("settings.port"), "{out}");
    stack.stop().await;
}

#[tokio::test]
async fn health_and_sync_now_twice_returns_one_run() {
    use dirsync_proto::api as pb;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let channel = tonic::transport::Channel::from_shared(stack.gateway.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "dirsync.v1.SyncService",
        "dirsync.v1.IntegrationService",
        "dirsync.v1.DirectoryService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut client = stack.client("acme").await;
    let i =
        dirsync_tests::create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD)
            .await;
    let req = || pb::SyncNowRequest {
        account_id: "acme".into(),
        integration: i.id.clone(),
        ..Default::default()
    };
    let first = client.sync.sync_now(req()).await.unwrap().into_inner();
    let second = client.sync.sync_now(req()).await.unwrap().into_inner();
    assert_eq!(
        first.id, second.id,
        "a Sync now while a run is active returns that run"
    );
    let done = client.wait(&first.id).await.unwrap();
    assert_eq!(done.state, pb::RunState::Succeeded as i32, "{}", done.error);
    stack.stop().await;
}

/// gRPC reflection is served only when asked for.
#[tokio::test]
async fn reflection_behind_a_flag() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    async fn services(gateway: &str) -> Result<Vec<String>, tonic::Status> {
        let channel = tonic::transport::Channel::from_shared(gateway.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        let reply = replies.message().await?.expect("a reply");
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                Ok(list.service.into_iter().map(|s| s.name).collect())
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    let on = Embedded::start_with(|cfg| cfg.grpc_reflection = true).await;
    let names = services(&on.gateway).await.unwrap();
    assert!(
        names.iter().any(|n| n == "dirsync.v1.SyncService"),
        "{names:?}"
    );
    on.stop().await;
    let off = Embedded::start().await;
    let refused = services(&off.gateway).await.expect_err("off by default");
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    off.stop().await;
}
