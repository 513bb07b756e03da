//! The web admin console, against the real gateway, store and Samba AD DC:
//! the admin guide's flow in Debian's headless Chromium (embedded shape,
//! SQLite), and the console's security over HTTP (distributed shape,
//! PostgreSQL and NATS). The browser and HTTP steps are Node.js scripts
//! under `tests/console/`; these tests set the stage and run them.

use dirsync_proto::api;
use dirsync_tests::{
    Distributed, Embedded, FIXTURE_PASSWORD, Fixture, assert_succeeded, create_integration,
    run_console_script, sync,
};

/// An integration of `fx` whose second run is blocked by the deletion
/// guard: the first sync adds the fixture, then an email-domain filter
/// takes its users out of scope with maximum sync deletions 0. Returns
/// (integration, blocked run, removals held).
async fn blocked_run(client: &mut dirsync::cli::Client, fx: &Fixture) -> (String, String, usize) {
    let settings = api::IntegrationSettings {
        maximum_sync_deletions: 0,
        ..fx.settings("Guarded AD")
    };
    let integration = create_integration(client, settings.clone(), FIXTURE_PASSWORD).await;
    assert_succeeded(&sync(client, &integration.id).await);
    client
        .integrations
        .update_integration(api::UpdateIntegrationRequest {
            integration: integration.id.clone(),
            settings: Some(api::IntegrationSettings {
                filter_email_domains: "partner.example.net".into(),
                ..settings
            }),
            ..Default::default()
        })
        .await
        .expect("UpdateIntegration");
    let run = sync(client, &integration.id).await;
    assert_eq!(
        run.state,
        api::RunState::Blocked as i32,
        "the second run was not blocked: {run:?}"
    );
    let held = client
        .sync
        .list_pending_removals(api::ListPendingRemovalsRequest {
            run_id: run.id.clone(),
            ..Default::default()
        })
        .await
        .expect("ListPendingRemovals")
        .into_inner()
        .removals
        .len();
    assert!(held > 0);
    (integration.id, run.id, held)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_guides_flow_runs_in_the_console() {
    let fx = Fixture::seed();
    let guarded = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let (_, blocked, held) = blocked_run(&mut client, &guarded).await;
    let token = stack.token("acme").await;
    let url = stack
        .console
        .clone()
        .expect("the embedded shape serves the console");
    let vars = vec![
        ("CONSOLE_URL", url),
        ("CONSOLE_TOKEN", token),
        ("AD_HOST", fx.host.clone()),
        ("AD_BIND_DN", fx.bind_dn.clone()),
        ("AD_PASSWORD", FIXTURE_PASSWORD.to_owned()),
        ("AD_ROOT_DN", fx.root_dn.clone()),
        ("BLOCKED_RUN_ID", blocked.clone()),
        ("BLOCKED_COUNT", held.to_string()),
    ];
    tokio::task::spawn_blocking(move || run_console_script("flow", &vars))
        .await
        .unwrap();
    // What the browser did is in the store, through the API.
    let run = client
        .sync
        .get_run(api::GetRunRequest {
            run_id: blocked,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_succeeded(&run);
    assert_eq!(run.counts.unwrap_or_default().removed, held as u64);
    let made = client
        .integrations
        .get_integration(api::GetIntegrationRequest {
            integration: "HQ AD".into(),
            ..Default::default()
        })
        .await
        .expect("the wizard's integration")
        .into_inner();
    let settings = made.settings.unwrap_or_default();
    assert_eq!(
        (settings.root_dn.as_str(), settings.encryption_mode),
        (fx.root_dn.as_str(), api::EncryptionMode::Relaxed as i32)
    );
    assert!(settings.include_contacts && made.password_set);
    assert_eq!(settings.description, "Head office domain (London)");
    let account = client
        .accounts
        .get_account(api::GetAccountRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            account.time_zone.as_str(),
            account.schedule.as_str(),
            account.ldap_sign_in
        ),
        ("Europe/London", "07:30,19:00", true)
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_are_scoped_and_guarded() {
    let fx = Fixture::seed();
    let port = dirsync_tests::free_port();
    let stack = Distributed::start_env(
        &[None],
        60,
        "info",
        vec![("DIRSYNC_CONSOLE_LISTEN", format!("127.0.0.1:{port}"))],
    )
    .await;
    let store = dirsync_store::connect(stack.database()).await.unwrap();
    let token_a = dirsync::cli::issue_token(&store, "acme", "console", 0)
        .await
        .unwrap();
    let token_b = dirsync::cli::issue_token(&store, "globex", "console", 0)
        .await
        .unwrap();
    let mut client = dirsync_tests::client(&stack.gateway, "acme", &token_a).await;
    let integration =
        create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    let run = sync(&mut client, &integration.id).await;
    assert_succeeded(&run);
    let alice = client
        .directory
        .lookup_address(api::LookupAddressRequest {
            address: "alice@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let vars = vec![
        ("CONSOLE_URL", format!("http://127.0.0.1:{port}/")),
        ("CONSOLE_TOKEN_A", token_a),
        ("CONSOLE_TOKEN_B", token_b),
        ("INTEGRATION_A", integration.id.clone()),
        ("RUN_A", run.id.clone()),
        ("ADDRESS_A", "alice@example.com".to_owned()),
        ("USER_A", alice.id.clone()),
        ("BIND_PASSWORD", FIXTURE_PASSWORD.to_owned()),
        (
            "DIRSYNC_BIN",
            dirsync_tests::dirsync_binary().display().to_string(),
        ),
        ("DIRSYNC_DATABASE_URL", stack.database().to_owned()),
    ];
    tokio::task::spawn_blocking(move || run_console_script("security", &vars))
        .await
        .unwrap();
    // Nothing B's session tried changed A's integration.
    let still = client
        .integrations
        .list_integrations(api::ListIntegrationsRequest::default())
        .await;
    assert!(
        still.is_err(),
        "A's token was revoked by the script; the gRPC API must refuse it too"
    );
    let fresh = dirsync::cli::issue_token(&store, "acme", "check", 0)
        .await
        .unwrap();
    let mut client = dirsync_tests::client(&stack.gateway, "acme", &fresh).await;
    let list = client
        .integrations
        .list_integrations(api::ListIntegrationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .integrations;
    assert_eq!(list.len(), 1, "an integration of A's was deleted");
    assert!(
        !stack.log("gateway").contains(FIXTURE_PASSWORD),
        "the gateway logged the bind password"
    );
}
