//! Properties of the plan over generated directories and settings.

use proptest::prelude::*;

use sha2::{Digest, Sha256};

use crate::object::{DirectoryObject, Entry, ObjectKind, ShortHash};
use crate::plan::{
    Current, CurrentObject, Plan, Source, guarded_accounts, hold_removals, plan, plan_entries,
};
use crate::settings::{IntegrationSettings, SettingsInput};

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
            IntegrationSettings::validate(&SettingsInput {
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
    entries(people, present, members)
        .into_iter()
        .map(|e| DirectoryObject::try_from(e).expect("valid"))
        .collect()
}

/// [`directory`]'s objects with their entries' digests.
fn digested(
    people: &[Person],
    present: &[bool],
    members: &[bool],
) -> Vec<(DirectoryObject, Option<ShortHash>)> {
    entries(people, present, members)
        .into_iter()
        .map(|e| {
            // Any digest that is the same for the same entry: the bus's
            // (dirsync-convert) is over its encoding.
            let mut digest = Sha256::new();
            digest.update(format!("{e:?}"));
            (
                DirectoryObject::try_from(e).expect("valid"),
                Some(crate::digest::short(digest)),
            )
        })
        .collect()
}

fn entries(people: &[Person], present: &[bool], members: &[bool]) -> Vec<Entry> {
    let mut out = Vec::new();
    for (n, p) in people.iter().enumerate() {
        if !present[n] {
            continue;
        }
        let kind = if p.contact {
            ObjectKind::Contact
        } else {
            ObjectKind::User
        };
        out.push(Entry {
            mail: p.domain.map(|d| format!("p{n}@{d}")).unwrap_or_default(),
            user_account_control: Some(if p.disabled { 514 } else { 512 }),
            manager_dn: if n > 0 {
                "CN=P0,DC=x".into()
            } else {
                String::new()
            },
            ..Entry::new(
                kind,
                format!("00000000-0000-0000-0000-{n:012x}"),
                format!("CN=P{n},DC=x"),
            )
        });
    }
    out.push(Entry {
        member_dns: members
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(n, _)| format!("CN=P{n},DC=x"))
            .collect(),
        ..Entry::new(
            ObjectKind::Group,
            "ffffffff-0000-0000-0000-000000000000",
            "CN=G,DC=x",
        )
    });
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
            entry_digest: u.entry_digest,
        });
        next.members
            .insert(u.record.anchor, u.record.members.clone());
    }
    for (anchor, digest) in &p.entry_digests {
        if let Some(c) = next.objects.iter_mut().find(|c| c.anchor == *anchor) {
            c.entry_digest = *digest;
        }
    }
    next.entry_context = p.entry_context;
    next
}

/// What a plan decides, its bookkeeping of digests left out.
fn decisions(p: &Plan) -> Plan {
    let mut p = Plan {
        entry_digests: Vec::new(),
        entry_context: None,
        recognised: 0,
        ..p.clone()
    };
    for u in p.adds.iter_mut().chain(&mut p.updates) {
        u.entry_digest = None;
    }
    p
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
        hold_removals(&mut guarded, &s, &[], 0);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Leaving out of the second pass the entries the first recognises by
    /// their digests plans exactly what decoding every entry plans, after
    /// any change to the directory or the settings, one that changes what
    /// an unchanged entry's member or manager DNs resolve to included.
    #[test]
    fn entries_recognised_by_digest_plan_as_decoded_ones_do(
        s in settings(),
        other in settings(),
        same_settings in any::<bool>(),
        people in prop::collection::vec(person(), 1..10),
        changed in prop::collection::vec(person(), 10),
        seed in prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()), 10),
    ) {
        let n = people.len();
        let all: Vec<bool> = vec![true; n];
        let members: Vec<bool> = seed.iter().take(n).map(|t| t.0).collect();
        let present: Vec<bool> = seed.iter().take(n).map(|t| t.1 || t.2).collect();
        let members_after: Vec<bool> = seed.iter().take(n).map(|t| t.0 ^ (t.3 && t.2)).collect();
        let people_after: Vec<Person> = people
            .iter()
            .zip(&changed)
            .zip(&seed)
            .map(|((p, c), t)| if t.3 { c.clone() } else { p.clone() })
            .collect();

        let first = plan_entries(&s, &Source::complete(), &Current::default(), digested(&people, &all, &members));
        let current = applied(&Current::default(), &first);

        // Unchanged, same settings: every synced entry is recognised.
        let again = plan_entries(&s, &Source::complete(), &current, digested(&people, &all, &members));
        prop_assert_eq!(again.recognised as usize, first.adds.len());
        prop_assert_eq!(decisions(&again), decisions(&plan(&s, &Source::complete(), &current, directory(&people, &all, &members))));
        prop_assert!(again.entry_digests.is_empty());

        // Changed: the same decisions as decoding every entry.
        let s2 = if same_settings { s.clone() } else { other };
        let digested_plan =
            plan_entries(&s2, &Source::complete(), &current, digested(&people_after, &present, &members_after));
        let decoded = plan(&s2, &Source::complete(), &current, directory(&people_after, &present, &members_after));
        prop_assert_eq!(decisions(&digested_plan), decisions(&decoded));

        // And once that is applied, a resync recognises what it wrote.
        let next = applied(&current, &digested_plan);
        let settled =
            plan_entries(&s2, &Source::complete(), &next, digested(&people_after, &present, &members_after));
        prop_assert!(settled.adds.is_empty() && settled.updates.is_empty());
        prop_assert_eq!(
            decisions(&settled),
            decisions(&plan(&s2, &Source::complete(), &next, directory(&people_after, &present, &members_after)))
        );
    }
}
