//! The generic LDAP directory type against a real OpenLDAP server: entries
//! anchored on entryUUID, read through the integration's mapping.

use std::collections::HashSet;

use dirsync::cli::Client;
use dirsync_proto::api::{self as pb, AuthResult, TestCheck as C, TestOutcome as O};
use dirsync_tests::{
    Distributed, Embedded, FIXTURE_PASSWORD, LdapFixture, Snapshot, assert_succeeded, counts,
    create_integration, snapshot, sync,
};

fn expected() -> Snapshot {
    let s = |x: &str| x.to_owned();
    Snapshot {
        users: vec![
            (
                s("Alice Anders"),
                s("alice@example.com"),
                vec![s("a.anders@example.com")],
                false,
                true,
            ),
            (s("Bob Brown"), s("bob@example.com"), vec![], true, true),
            (s("Carol Chen"), s("carol@example.org"), vec![], false, true),
        ],
        groups: vec![
            (
                s("all staff"),
                s(""),
                vec![s("Bob Brown"), s("engineering")],
            ),
            (
                s("engineering"),
                s("engineering@example.com"),
                vec![s("Alice Anders"), s("Carol Chen")],
            ),
        ],
        contacts: vec![],
    }
}

/// Sorted like the listing's order may not be: by display name.
async fn sorted_snapshot(client: &mut Client) -> (Snapshot, Vec<pb::DirectoryObject>) {
    let (mut snap, all) = snapshot(client).await;
    snap.users.sort();
    snap.groups.sort();
    snap.contacts.sort();
    (snap, all)
}

/// Through NATS and PostgreSQL, separate processes: Test Connection, a full
/// sync with the default inetOrgPerson/groupOfNames mapping, and the
/// settings as they are returned.
#[tokio::test]
async fn ldap_directory_syncs_through_the_services() {
    let fx = LdapFixture::seed().await;
    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;

    let mut steps = client
        .integrations
        .test_connection(pb::TestConnectionRequest {
            account_id: client.account.clone(),
            integration: String::new(),
            settings: Some(fx.settings("OpenLDAP")),
            password: Some(LdapFixture::password()),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(s) = steps.message().await.unwrap() {
        seen.push(s);
    }
    let outcome = |c: C| {
        seen.iter()
            .rev()
            .find(|s| s.check == c as i32)
            .map(|s| (O::try_from(s.outcome).unwrap(), s.samples.clone()))
            .unwrap_or_else(|| panic!("{c:?} missing: {seen:?}"))
    };
    assert_eq!(outcome(C::Authentication).0, O::Passed, "{seen:?}");
    assert_eq!(outcome(C::Certificate).0, O::Warning, "plain LDAP warns");
    let (sample_outcome, samples) = outcome(C::SampleAddresses);
    assert_eq!(sample_outcome, O::Passed, "{seen:?}");
    assert!(
        samples.contains(&"alice@example.com".to_owned()),
        "{samples:?}"
    );

    let i = create_integration(
        &mut client,
        fx.settings("OpenLDAP"),
        &LdapFixture::password(),
    )
    .await;
    let s = i.settings.clone().unwrap();
    assert_eq!(s.r#type, pb::DirectoryType::Ldap as i32);
    let schema = s.ldap_schema.expect("the mapping in use is returned");
    assert_eq!(schema.user_class, "inetOrgPerson");
    assert_eq!(schema.group_class, "groupOfNames");
    assert_eq!(
        schema.disabled_attribute.as_deref(),
        Some("pwdAccountLockedTime")
    );
    assert_eq!(
        schema.attributes.get("aliases").map(String::as_str),
        Some("mailAlternateAddress")
    );

    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(counts(&run), (5, 5, 0, 0, 0), "the printer is not read");
    let (snap, all) = sorted_snapshot(&mut client).await;
    assert_eq!(snap, expected());
    let by_name = |n: &str| all.iter().find(|o| o.display_name == n).unwrap().clone();
    let alice = by_name("Alice Anders");
    assert_eq!(alice.title, "Engineer");
    assert_eq!(alice.department, "R&D");
    assert_eq!(alice.sam_account_name, "alice");
    assert_eq!(
        by_name("Carol Chen").manager_id,
        alice.id,
        "manager resolved"
    );
    assert_eq!(alice.dn, format!("uid=alice,{}", fx.people()));

    // Unchanged: nothing written.
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(counts(&run), (5, 0, 0, 0, 5));

    // A member leaves scope (her mail removed) while her group's entry
    // stays byte for byte as stored: the group is planned again all the
    // same, for what its member DNs resolve to changed.
    let mut ldap = fx.admin().await;
    ldap.modify(
        &format!("uid=carol,{}", fx.people()),
        vec![ldap3::Mod::Delete("mail", HashSet::new())],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(counts(&run), (5, 0, 1, 1, 3), "{run:?}");
    let (snap, _) = sorted_snapshot(&mut client).await;
    let engineering = snap.groups.iter().find(|g| g.0 == "engineering").unwrap();
    assert_eq!(engineering.2, ["Alice Anders"], "{snap:?}");
}

/// Renames keep the object (entryUUID), changes land, a deleted user is
/// demoted, a custom mapping is honoured, bad mappings are refused by name,
/// and users sign in with their LDAP password.
#[tokio::test]
async fn ldap_renames_changes_mapping_and_sign_in() {
    let fx = LdapFixture::seed().await;
    let stack = Embedded::start().await;
    let mut client = stack.client("acme").await;

    // Bad mappings: every problem named, nothing stored.
    let mut bad = fx.settings("Bad mapping");
    bad.ldap_schema = Some(pb::LdapSchema {
        user_class: "inet OrgPerson".into(),
        disabled_attribute: Some("no such;attr".into()),
        attributes: [("favourite_colour".to_owned(), "x".to_owned())].into(),
        ..Default::default()
    });
    let err = client
        .integrations
        .create_integration(pb::CreateIntegrationRequest {
            account_id: client.account.clone(),
            settings: Some(bad),
            password: LdapFixture::password(),
            ..Default::default()
        })
        .await
        .expect_err("an invalid mapping");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    for field in [
        "settings.ldap_schema.user_class",
        "settings.ldap_schema.disabled_attribute",
        "favourite_colour",
    ] {
        assert!(err.message().contains(field), "{field} in {err:?}");
    }
    let mut ad_with_schema = fx.settings("AD with a mapping");
    ad_with_schema.r#type = pb::DirectoryType::ActiveDirectory as i32;
    ad_with_schema.ldap_schema = Some(pb::LdapSchema::default());
    let err = client
        .integrations
        .create_integration(pb::CreateIntegrationRequest {
            account_id: client.account.clone(),
            settings: Some(ad_with_schema),
            password: LdapFixture::password(),
            ..Default::default()
        })
        .await
        .expect_err("a mapping for AD");
    assert!(err.message().contains("settings.ldap_schema"), "{err:?}");

    let i = create_integration(
        &mut client,
        fx.settings("OpenLDAP"),
        &LdapFixture::password(),
    )
    .await;
    assert_succeeded(&sync(&mut client, &i.id).await);
    let (_, before) = sorted_snapshot(&mut client).await;
    let id_of = |all: &[pb::DirectoryObject], n: &str| {
        all.iter()
            .find(|o| o.display_name == n)
            .map(|o| o.id.clone())
    };

    // Carol is renamed and moved, Alice's mail changes, Bob is deleted.
    let mut ldap = fx.admin().await;
    let people = fx.people();
    ldap.modifydn(
        &format!("uid=carol,{people}"),
        "uid=carol.chen",
        true,
        Some(&fx.base),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    ldap.modify(
        &format!("uid=alice,{people}"),
        vec![ldap3::Mod::Replace(
            "mail",
            HashSet::from(["alice@example.net"]),
        )],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    ldap.delete(&format!("uid=bob,{people}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    // Alice (mail), Carol (DN), engineering (Carol's DN is a member value
    // that slapd does not rewrite, so the membership drops), all staff
    // (Bob's membership); Bob removed.
    let (snap, after) = sorted_snapshot(&mut client).await;
    assert_eq!(
        id_of(&after, "Carol Chen"),
        id_of(&before, "Carol Chen"),
        "the rename kept the object"
    );
    let carol = after
        .iter()
        .find(|o| o.display_name == "Carol Chen")
        .unwrap();
    assert_eq!(carol.dn, format!("uid=carol.chen,{}", fx.base));
    assert_eq!(snap.users[0].1, "alice@example.net");
    let bob = snap.users.iter().find(|u| u.0 == "Bob Brown").unwrap();
    assert!(!bob.4, "a deleted user is demoted, not deleted: {bob:?}");
    assert_eq!(run.counts.unwrap().removed, 1, "{run:?}");

    // A custom mapping: telephone numbers come from `mobile`, and nobody is
    // disabled.
    ldap.modify(
        &format!("uid=alice,{people}"),
        vec![ldap3::Mod::Add("mobile", HashSet::from(["+1 555 0100"]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let mut custom = fx.settings("OpenLDAP");
    custom.ldap_schema = Some(pb::LdapSchema {
        disabled_attribute: Some(String::new()),
        attributes: [("telephone_number".to_owned(), "mobile".to_owned())].into(),
        ..Default::default()
    });
    client
        .integrations
        .update_integration(pb::UpdateIntegrationRequest {
            account_id: client.account.clone(),
            integration: i.id.clone(),
            settings: Some(custom),
            password: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_succeeded(&sync(&mut client, &i.id).await);
    let (_, all) = sorted_snapshot(&mut client).await;
    let alice = all
        .iter()
        .find(|o| o.display_name == "Alice Anders")
        .unwrap();
    assert_eq!(alice.telephone_number, "+1 555 0100");

    // Sign-in with the LDAP password.
    client
        .accounts
        .update_account(pb::UpdateAccountRequest {
            account_id: "acme".into(),
            ldap_sign_in: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut sign_in = async |address: &str, password: &str| {
        let r = client
            .auth
            .authenticate(pb::AuthenticateRequest {
                account_id: "acme".into(),
                address: address.into(),
                password: password.into(),
            })
            .await
            .unwrap()
            .into_inner();
        AuthResult::try_from(r.result).unwrap()
    };
    assert_eq!(
        sign_in("alice@example.net", FIXTURE_PASSWORD).await,
        AuthResult::Ok
    );
    assert_eq!(
        sign_in("a.anders@example.com", FIXTURE_PASSWORD).await,
        AuthResult::Ok
    );
    assert_eq!(
        sign_in("alice@example.net", "wrong").await,
        AuthResult::BadCredentials
    );
    assert_eq!(
        sign_in("carol@example.org", FIXTURE_PASSWORD).await,
        AuthResult::Ok
    );
}

/// A group too large for one bus message (6000 members, ~330 KB of DNs)
/// crosses NATS in parts and arrives whole.
#[tokio::test]
async fn ldap_large_group_crosses_the_bus_in_parts() {
    const USERS: usize = 6000;
    let fx = LdapFixture::seed().await;
    let ldap = fx.admin().await;
    let people = fx.people();
    let dns: Vec<String> = (0..USERS)
        .map(|i| format!("uid=member{i:05},{people}"))
        .collect();
    // Added 200 at a time over one connection (ldap3 multiplexes).
    for chunk in dns.chunks(200) {
        let mut adds = tokio::task::JoinSet::new();
        for dn in chunk {
            let mut ldap = ldap.clone();
            let dn = dn.clone();
            let uid = dn[4..dn.find(',').unwrap()].to_owned();
            adds.spawn(async move {
                let attrs = vec![
                    ("objectClass", HashSet::from(["inetOrgPerson"])),
                    ("uid", HashSet::from([uid.as_str()])),
                    ("cn", HashSet::from([uid.as_str()])),
                    ("sn", HashSet::from(["Member"])),
                ];
                let mail = format!("{uid}@bulk.example.com");
                let mut attrs: Vec<(&str, HashSet<&str>)> = attrs;
                attrs.push(("mail", HashSet::from([mail.as_str()])));
                ldap.add(&dn, attrs).await.unwrap().success().unwrap();
            });
        }
        while let Some(r) = adds.join_next().await {
            r.unwrap();
        }
    }
    let mut ldap = ldap;
    let group = format!("cn=everyone,ou=groups,{}", fx.base);
    let members: HashSet<&str> = dns.iter().map(String::as_str).collect();
    ldap.add(
        &group,
        vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from(["everyone"])),
            ("member", members),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let stack = Distributed::start().await;
    let mut client = stack.client("acme").await;
    let i = create_integration(
        &mut client,
        fx.settings("OpenLDAP"),
        &LdapFixture::password(),
    )
    .await;
    let run = sync(&mut client, &i.id).await;
    assert_succeeded(&run);
    assert_eq!(run.counts.unwrap().collected, 5 + USERS as u64 + 1);
    let (_, all) = snapshot(&mut client).await;
    let everyone = all.iter().find(|o| o.display_name == "everyone").unwrap();
    assert_eq!(everyone.member_ids.len(), USERS, "every member arrived");
}
