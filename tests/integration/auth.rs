//! End-user sign-in with the AD password, through gRPC against Samba.

use dirsync::cli::Client;
use dirsync_proto::api::{self as pb, AuthResult as R};
use dirsync_tests::{Distributed, Embedded, FIXTURE_PASSWORD, Fixture, create_integration, sync};

async fn sign_in(
    client: &mut Client,
    address: &str,
    password: &str,
) -> Result<pb::AuthenticateResponse, tonic::Status> {
    client
        .auth
        .authenticate(pb::AuthenticateRequest {
            account_id: client.account.clone(),
            address: address.to_owned(),
            password: password.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn result(client: &mut Client, address: &str, password: &str) -> R {
    R::try_from(sign_in(client, address, password).await.unwrap().result).unwrap()
}

#[tokio::test]
async fn users_sign_in_with_their_ad_password() {
    let fx = Fixture::seed();
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut client, &i.id).await.state,
        pb::RunState::Succeeded as i32
    );

    // Off by default: refused with the reason.
    let off = sign_in(&mut client, "alice@example.com", FIXTURE_PASSWORD)
        .await
        .expect_err("profile off");
    assert_eq!(off.code(), tonic::Code::FailedPrecondition);
    assert!(
        off.message().contains("LDAP directory connector"),
        "{off:?}"
    );
    client
        .accounts
        .update_account(pb::UpdateAccountRequest {
            account_id: "acme".into(),
            ldap_sign_in: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();

    let ok = sign_in(&mut client, "alice@example.com", FIXTURE_PASSWORD)
        .await
        .unwrap();
    assert_eq!(ok.result, R::Ok as i32);
    assert!(!ok.object_id.is_empty());
    assert_eq!(
        result(&mut client, "A.Anders@example.com", FIXTURE_PASSWORD).await,
        R::Ok,
        "an alias"
    );
    assert_eq!(
        result(&mut client, "alice@example.com", "wrong").await,
        R::BadCredentials
    );
    assert_eq!(
        result(&mut client, "bob@example.com", FIXTURE_PASSWORD).await,
        R::Disabled
    );
    // Unknown and malicious addresses look like a wrong password.
    assert_eq!(
        result(&mut client, "nobody@example.com", FIXTURE_PASSWORD).await,
        R::BadCredentials
    );
    assert_eq!(
        result(&mut client, "*)(objectClass=*", FIXTURE_PASSWORD).await,
        R::BadCredentials
    );
    // A contact cannot sign in.
    assert_eq!(
        result(&mut client, "vendor@partner.example.net", FIXTURE_PASSWORD).await,
        R::BadCredentials
    );

    // Repeated failures trip the limit before AD's lockout: even the right
    // password is refused without asking AD.
    for _ in 0..5 {
        assert_eq!(
            result(&mut client, "erin@example.com", "guess").await,
            R::BadCredentials
        );
    }
    assert_eq!(
        result(&mut client, "erin@example.com", FIXTURE_PASSWORD).await,
        R::RateLimited
    );
    // Other users are not affected.
    assert_eq!(
        result(&mut client, "zoe@example.com", FIXTURE_PASSWORD).await,
        R::Ok
    );
    stack.stop().await;
}

#[tokio::test]
async fn the_sign_in_limits_hold_across_gateways_and_restarts() {
    let fx = Fixture::seed();
    let mut stack = Distributed::start().await;
    let mut a = stack.client("acme").await;
    let second = stack.add_gateway().await;
    let token = {
        let store = dirsync_store::connect(stack.database()).await.unwrap();
        dirsync::cli::issue_token(&store, "acme", "second", 0)
            .await
            .unwrap()
    };
    let mut b = dirsync_tests::client(&second, "acme", &token).await;
    let i = create_integration(&mut a, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    assert_eq!(
        sync(&mut a, &i.id).await.state,
        pb::RunState::Succeeded as i32
    );
    a.accounts
        .update_account(pb::UpdateAccountRequest {
            account_id: "acme".into(),
            ldap_sign_in: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    // Five failures, spread over the two gateways, trip the address's
    // limit on both.
    for n in 0..5 {
        let client = if n % 2 == 0 { &mut a } else { &mut b };
        assert_eq!(
            result(client, "erin@example.com", "guess").await,
            R::BadCredentials
        );
    }
    assert_eq!(
        result(&mut a, "erin@example.com", FIXTURE_PASSWORD).await,
        R::RateLimited
    );
    assert_eq!(
        result(&mut b, "erin@example.com", FIXTURE_PASSWORD).await,
        R::RateLimited
    );
    // A restarted gateway still knows.
    assert!(stack.terminate("gateway-1", std::time::Duration::from_secs(30)));
    stack.restart("gateway-1");
    dirsync_tests::wait_for_gateway(&second).await;
    let mut b = dirsync_tests::client(&second, "acme", &token).await;
    assert_eq!(
        result(&mut b, "erin@example.com", FIXTURE_PASSWORD).await,
        R::RateLimited
    );
    // Others sign in; a success clears an address's failures.
    assert_eq!(
        result(&mut b, "zoe@example.com", "guess").await,
        R::BadCredentials
    );
    assert_eq!(
        result(&mut a, "zoe@example.com", FIXTURE_PASSWORD).await,
        R::Ok
    );
}
