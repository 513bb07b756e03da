//! Properties of the plan over generated directories and settings.

use proptest::prelude::*;

use dirsync_proto::{api, bus};

use crate::object::{DirectoryObject, ObjectKind};
use crate::plan::{Current, CurrentObject, Plan, Source, guarded_accounts, hold_removals, plan};
use crate::settings::IntegrationSettings;

#[derive(Debug, Clone)]
struct Person {
    domain: Option<&'static str>,
    disabled: bool,
    contact: bool,
}

fn person() -> impl Strategy<Value = Person> {
    (
        prop_oneof![
            Just(None),
            Just(Some("example.com")),
            Just(Some("example.org"))
        ],
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(domain, disabled, contact)| Person {
            domain,
            disabled,
            contact,
        })
}

fn settings() -> impl Strategy<Value = IntegrationSettings> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0i64..6,
    )
        .prop_map(|(ack, filter, contacts, delete, max)| {
            IntegrationSettings::from_api(&api::IntegrationSettings {
                name: "p".into(),
                host: "dc".into(),
                user_dn: "CN=u,DC=x".into(),
                root_dn: "DC=x".into(),
                acknowledge_disabled_accounts: ack,
                filter_email_domains: if filter {
                    "example.com".into()
                } else {
                    String::new()
                },
                include_contacts: contacts,
                delete_users: delete,
                maximum_sync_deletions: max,
                ..Default::default()
            })
            .expect("valid")
        })
}

/// The directory: people (present or not) and one group of some of them.
fn directory(people: &[Person], present: &[bool], members: &[bool]) -> Vec<DirectoryObject> {
    let mut out = Vec::new();
    for (n, p) in people.iter().enumerate() {
        if !present[n] {
            continue;
        }
        let kind = if p.contact {
            bus::ObjectKind::Contact
        } else {
            bus::ObjectKind::User
        };
        out.push(
            DirectoryObject::try_from(bus::DirectoryEntry {
                kind: kind as i32,
                object_guid: format!("00000000-0000-0000-0000-{n:012x}"),
                dn: format!("CN=P{n},DC=x"),
                mail: p.domain.map(|d| format!("p{n}@{d}")).unwrap_or_default(),
                user_account_control: Some(if p.disabled { 514 } else { 512 }),
                ..Default::default()
            })
            .expect("valid"),
        );
    }
    out.push(
        DirectoryObject::try_from(bus::DirectoryEntry {
            kind: bus::ObjectKind::Group as i32,
            object_guid: "ffffffff-0000-0000-0000-000000000000".into(),
            dn: "CN=G,DC=x".into(),
            member_dns: members
                .iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .map(|(n, _)| format!("CN=P{n},DC=x"))
                .collect(),
            ..Default::default()
        })
        .expect("valid"),
    );
    out
}

/// The store after applying `p` on top of `current`.
fn applied(current: &Current, p: &Plan) -> Current {
    let mut next = current.clone();
    for r in &p.removals {
        match r.action {
            crate::plan::RemovalAction::Delete => {
                next.objects.retain(|c| c.anchor != r.anchor);
                next.members.remove(&r.anchor);
            }
            crate::plan::RemovalAction::Demote => {
                if let Some(c) = next.objects.iter_mut().find(|c| c.anchor == r.anchor) {
                    c.managed = false;
                }
            }
        }
    }
    for u in p.adds.iter().chain(&p.updates) {
        next.objects.retain(|c| c.anchor != u.record.anchor);
        next.objects.push(CurrentObject {
            anchor: u.record.anchor,
            kind: u.record.kind,
            content_hash: u.content_hash.into(),
            managed: true,
        });
        next.members
            .insert(u.record.anchor, u.record.members.clone());
    }
    next
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn planning_is_idempotent_and_removals_follow_the_rules(
        s in settings(),
        people in prop::collection::vec(person(), 1..10),
        seed in prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 10),
    ) {
        let before: Vec<bool> = (0..people.len()).map(|_| true).collect();
        let after: Vec<bool> = seed.iter().take(people.len()).map(|t| t.0).collect();
        let members: Vec<bool> = seed.iter().take(people.len()).map(|t| t.1).collect();

        // First sync: everything in scope is added; a second is a no-op.
        let first = plan(&s, &Source::complete(), &Current::default(), directory(&people, &before, &members));
        prop_assert!(first.updates.is_empty() && first.removals.is_empty());
        let current = applied(&Current::default(), &first);
        let again = plan(&s, &Source::complete(), &current, directory(&people, &before, &members));
        prop_assert!(again.adds.is_empty() && again.updates.is_empty() && again.removals.is_empty());
        prop_assert_eq!(again.unchanged as usize, first.adds.len());

        // Some leave AD: an incomplete read removes nothing…
        let partial = plan(
            &s,
            &Source::incomplete(vec!["size limit".into()]),
            &current,
            directory(&people, &after, &members),
        );
        prop_assert!(partial.removals.is_empty());

        // …a complete one removes exactly the managed objects gone from
        // scope, users demoted unless delete users is on.
        let p = plan(&s, &Source::complete(), &current, directory(&people, &after, &members));
        let kept: std::collections::HashSet<_> = p
            .adds
            .iter()
            .chain(&p.updates)
            .map(|u| u.record.anchor)
            .collect();
        for r in &p.removals {
            prop_assert!(current.objects.iter().any(|c| c.anchor == r.anchor && c.managed));
            prop_assert!(!kept.contains(&r.anchor));
            let demote = r.kind == ObjectKind::User && !s.delete_users;
            prop_assert_eq!(r.action == crate::plan::RemovalAction::Demote, demote);
        }
        let in_scope_now = p.adds.len() + p.updates.len() + p.unchanged as usize;
        let gone = current.objects.len() - (in_scope_now - p.adds.len());
        if in_scope_now > 0 {
            prop_assert_eq!(p.removals.len(), gone);
        } else {
            prop_assert!(p.removals.is_empty(), "an empty read removes nothing");
        }

        // The guard: over the maximum, nothing is removed and all is held.
        let mut guarded = p.clone();
        hold_removals(&mut guarded, &s, &[]);
        if guarded_accounts(&p.removals) > s.maximum_sync_deletions {
            prop_assert!(guarded.removals.is_empty());
            prop_assert_eq!(guarded.held.len(), p.removals.len());
        } else {
            prop_assert_eq!(guarded.removals.len(), p.removals.len());
        }
        // Adds and updates are never held.
        prop_assert_eq!(guarded.adds.len(), p.adds.len());
        prop_assert_eq!(guarded.updates.len(), p.updates.len());
    }
}
