//! Returning users (soft match): a user deleted in AD is kept unmanaged;
//! re-created by an admin as a new AD object with the same primary address,
//! the kept account is adopted, its id, history and group memberships
//! kept, through a full sync and through a delta. Against the Samba AD DC.

use std::collections::HashSet;

use dirsync::cli::Client;
use dirsync_proto::api;
use dirsync_tests::{
    Embedded, FIXTURE_PASSWORD, Fixture, Reliability, assert_succeeded, counts, create_integration,
    snapshot, sync, sync_delta,
};

/// `"Dirsync-User-1!"` as AD takes a password: quoted, UTF-16LE.
fn unicode_pwd() -> Vec<u8> {
    format!("\"{FIXTURE_PASSWORD}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Creates Carol Chen again: a new AD object (a new objectGUID), her
/// address, in Engineering.
async fn recreate_carol(fx: &Fixture, ldap: &mut ldap3::Ldap, n: u32) {
    let dn = format!("CN=Carol Chen,OU=People,{}", fx.root_dn);
    let sam = format!("{}carol{n}", &fx.ou[1..]);
    let text = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
    let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
        (b"objectClass".to_vec(), text("user")),
        (b"sAMAccountName".to_vec(), text(&sam)),
        (b"givenName".to_vec(), text("Carol")),
        (b"sn".to_vec(), text("Chen")),
        (b"displayName".to_vec(), text("Carol Chen")),
        (b"mail".to_vec(), text("carol@example.org")),
        (b"unicodePwd".to_vec(), HashSet::from([unicode_pwd()])),
        (b"userAccountControl".to_vec(), text("512")),
    ];
    ldap.add(&dn, attrs)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("re-creating {dn}: {e}"));
    ldap.modify(
        &format!("CN=Engineering,OU=Groups,{}", fx.root_dn),
        vec![ldap3::Mod::Add("member", HashSet::from([dn.as_str()]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
}

async fn delete_carol(fx: &Fixture, ldap: &mut ldap3::Ldap) {
    ldap.delete(&format!("CN=Carol Chen,OU=People,{}", fx.root_dn))
        .await
        .unwrap()
        .success()
        .unwrap();
}

/// Carol's stored account(s), and Engineering's member ids.
async fn carol(client: &mut Client) -> (Vec<api::DirectoryObject>, Vec<String>) {
    let (_, objects) = snapshot(client).await;
    let carols = objects
        .iter()
        .filter(|o| o.display_name == "Carol Chen")
        .cloned()
        .collect();
    let engineering = objects
        .iter()
        .find(|o| o.display_name == "Engineering")
        .map(|g| g.member_ids.clone())
        .unwrap_or_default();
    (carols, engineering)
}

async fn changes_of(client: &mut Client, id: &str) -> Vec<api::Change> {
    client
        .sync
        .list_changes(api::ListChangesRequest {
            account_id: client.account.clone(),
            object_id: id.to_owned(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
}

#[tokio::test]
async fn a_returning_user_gets_her_kept_account_back() {
    let fx = Fixture::seed();
    let ds = Embedded::start().await;
    let mut client = ds.client("acme").await;
    let settings = api::IntegrationSettings {
        user_dn: dirsync_tests::env("DIRSYNC_TEST_AD_ADMIN_DN"),
        delta_interval_minutes: Some(0),
        ..fx.settings("Returning")
    };
    let i = create_integration(
        &mut client,
        settings,
        &dirsync_tests::env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
    )
    .await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let (before, _) = snapshot(&mut client).await;
    let (carols, engineering) = carol(&mut client).await;
    let id = carols[0].id.clone();
    assert!(engineering.contains(&id));
    let mut ldap = fx.admin().await;

    // Through a full sync: deleted, kept unmanaged, then re-created.
    delete_carol(&fx, &mut ldap).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(counts(&run).3, 1, "{run:?}");
    let (carols, engineering) = carol(&mut client).await;
    assert!(!carols[0].managed && !engineering.contains(&id));
    recreate_carol(&fx, &mut ldap, 2).await;
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert!(
        run.warnings.iter().any(|w| w.contains("a returning user")),
        "{:?}",
        run.warnings
    );
    let (_, added, _, _, _) = counts(&run);
    assert_eq!(added, 0, "no second account: {run:?}");
    let (carols, engineering) = carol(&mut client).await;
    assert_eq!(carols.len(), 1, "{carols:?}");
    assert_eq!(carols[0].id, id, "her id is kept");
    assert!(carols[0].managed);
    assert!(engineering.contains(&id), "her group lists her again");
    assert_eq!(snapshot(&mut client).await.0, before);
    let log = changes_of(&mut client, &id).await;
    assert!(
        log.iter()
            .any(|c| c.operation == api::ChangeOperation::Restore as i32
                && c.reason.contains("adopts")),
        "{log:?}"
    );
    // A sync after it changes nothing.
    let again = sync(&mut client, &i.id).await;
    let (_, added, updated, removed, _) = counts(&again);
    assert_eq!((added, updated, removed), (0, 0, 0), "{again:?}");

    // Through deltas: deleted (a tombstone of her second object), kept;
    // re-created a third time, adopted again, the same id.
    assert_eq!(
        sync_delta(&mut client, &i.id).await.kind,
        api::RunKind::Delta as i32
    );
    delete_carol(&fx, &mut ldap).await;
    let run = sync_delta(&mut client, &i.id).await;
    assert_eq!(run.kind, api::RunKind::Delta as i32, "{run:?}");
    assert_eq!(counts(&run).3, 1, "{run:?}");
    assert!(!carol(&mut client).await.0[0].managed);
    recreate_carol(&fx, &mut ldap, 3).await;
    let run = sync_delta(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(run.kind, api::RunKind::Delta as i32, "{run:?}");
    assert!(
        run.warnings.iter().any(|w| w.contains("a returning user")),
        "{:?}",
        run.warnings
    );
    let (carols, engineering) = carol(&mut client).await;
    assert_eq!(carols.len(), 1, "{carols:?}");
    assert_eq!(carols[0].id, id);
    assert!(carols[0].managed && engineering.contains(&id));
    // The full sync after the deltas agrees.
    let full = sync(&mut client, &i.id).await;
    let (_, added, updated, removed, _) = counts(&full);
    assert_eq!((added, updated, removed), (0, 0, 0), "{full:?}");
    assert_eq!(snapshot(&mut client).await.0, before);
    Reliability {
        scenario: "A deleted user re-created in AD (soft match)".into(),
        injected: "the user deleted in AD, then re-created as a new AD object with her address, twice: through a full sync and through deltas".into(),
        times: 2,
        runs_settled: (7, 7),
        objects_compared: before.users.len() + before.groups.len() + before.contacts.len(),
        duplicates: 0,
        lost: 0,
        recovery_seconds: 0.0,
        held: "her kept account was adopted each time: the same id, managed again, back in her group, the adoption in the change log; no second account".into(),
    }
    .record();
    ds.stop().await;
}
