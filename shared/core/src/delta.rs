//! The plan of a delta run: what changed in the directory since the
//! integration's last applied run, applied to what the store holds.
//!
//! A full run knows every object in scope, so it resolves members and
//! managers among them. A delta knows only what changed: links are read as
//! objectGUIDs and resolved against the store, and the stored records that
//! point at a changed object (its groups, the objects it manages) are
//! brought along. The store after a delta is the store a full run of the
//! same directory would leave, record for record and edge for edge.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::guid::ObjectGuid;
use crate::object::{DirectoryObject, ObjectKind, ObjectRecord, ShortHash};
use crate::plan::{CurrentObject, Plan, Upsert, out_of_scope, record_of, removal_of};
use crate::schema::DirectorySchema;
use crate::settings::IntegrationSettings;

/// An object a delta read whole, with its links as anchors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedObject {
    pub object: DirectoryObject,
    /// The digest of its entry as a full run would read it (see
    /// [`crate::digest`]); `None` when not known.
    pub digest: Option<ShortHash>,
    /// Its members' anchors (groups).
    pub members: Vec<ObjectGuid>,
    pub manager: Option<ObjectGuid>,
    /// The groups it is a member of.
    pub member_of: Vec<ObjectGuid>,
    /// The objects whose manager it is.
    pub reports: Vec<ObjectGuid>,
}

/// One change a delta read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaChange {
    Changed(Box<ChangedObject>),
    /// Only a group's members changed.
    Members {
        group: ObjectGuid,
        added: Vec<ObjectGuid>,
        removed: Vec<ObjectGuid>,
    },
    /// Deleted in the directory.
    Deleted(ObjectGuid),
    /// Changed, and no longer under the Root DN (moved out, or no longer
    /// an object dirsync reads).
    LeftScope(ObjectGuid),
}

impl DeltaChange {
    /// The anchor the change is about.
    pub fn anchor(&self) -> ObjectGuid {
        match self {
            Self::Changed(c) => c.object.anchor,
            Self::Members { group, .. } => *group,
            Self::Deleted(a) | Self::LeftScope(a) => *a,
        }
    }

    /// The same change, its objectGUIDs read through `aliases`: an adopted
    /// account's new objectGUID as the account's anchor (see
    /// [`crate::returning`]).
    pub fn alias(self, aliases: &crate::returning::Aliases) -> Self {
        if aliases.is_empty() {
            return self;
        }
        let a = |g: ObjectGuid| aliases.get(&g).copied().unwrap_or(g);
        let all = |v: Vec<ObjectGuid>| v.into_iter().map(a).collect::<Vec<_>>();
        match self {
            Self::Changed(mut c) => {
                c.object.anchor = a(c.object.anchor);
                c.members = all(std::mem::take(&mut c.members));
                c.manager = c.manager.map(a);
                c.member_of = all(std::mem::take(&mut c.member_of));
                c.reports = all(std::mem::take(&mut c.reports));
                Self::Changed(c)
            }
            Self::Members {
                group,
                added,
                removed,
            } => Self::Members {
                group: a(group),
                added: all(added),
                removed: all(removed),
            },
            Self::Deleted(g) => Self::Deleted(a(g)),
            Self::LeftScope(g) => Self::LeftScope(a(g)),
        }
    }

    /// Every anchor the change names: what the planner needs the store's
    /// records of.
    pub fn referenced(&self) -> Vec<ObjectGuid> {
        match self {
            Self::Changed(c) => std::iter::once(c.object.anchor)
                .chain(c.members.iter().copied())
                .chain(c.manager)
                .chain(c.member_of.iter().copied())
                .chain(c.reports.iter().copied())
                .collect(),
            Self::Members {
                group,
                added,
                removed,
            } => std::iter::once(*group)
                .chain(added.iter().copied())
                .chain(removed.iter().copied())
                .collect(),
            Self::Deleted(a) | Self::LeftScope(a) => vec![*a],
        }
    }
}

/// What the store holds of one object of the integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub current: CurrentObject,
    pub record: ObjectRecord,
}

/// The stored objects a delta plan reads: every anchor its changes name
/// ([`DeltaChange::referenced`]) and the records that link to the changed
/// objects (groups with them as members, objects they manage). Objects of
/// the integration only; an anchor that is not here is not stored.
pub type Stored = HashMap<ObjectGuid, StoredEntry>;

/// Plans a delta: pure, no I/O, no clock. Changes are taken in order; a
/// later change of an anchor replaces an earlier one.
pub fn plan_delta(
    settings: &IntegrationSettings,
    stored: &Stored,
    changes: Vec<DeltaChange>,
) -> Plan {
    let mut out = Plan::default();

    // The last word on each anchor.
    let mut changed: BTreeMap<ObjectGuid, ChangedObject> = BTreeMap::new();
    let mut member_changes: HashMap<ObjectGuid, (BTreeSet<ObjectGuid>, BTreeSet<ObjectGuid>)> =
        HashMap::new();
    let mut deleted: HashSet<ObjectGuid> = HashSet::new();
    let mut left: HashSet<ObjectGuid> = HashSet::new();
    for change in changes {
        let anchor = change.anchor();
        match change {
            DeltaChange::Changed(c) => {
                deleted.remove(&anchor);
                left.remove(&anchor);
                member_changes.remove(&anchor);
                changed.insert(anchor, *c);
            }
            DeltaChange::Members {
                group,
                added,
                removed,
            } => {
                let (adds, removes) = member_changes.entry(group).or_default();
                for a in added {
                    removes.remove(&a);
                    adds.insert(a);
                }
                for r in removed {
                    adds.remove(&r);
                    removes.insert(r);
                }
            }
            DeltaChange::Deleted(a) => {
                changed.remove(&a);
                left.remove(&a);
                deleted.insert(a);
            }
            DeltaChange::LeftScope(a) => {
                changed.remove(&a);
                deleted.remove(&a);
                left.insert(a);
            }
        }
    }

    // Objects leaving the sync, and why.
    let mut leaving: BTreeMap<ObjectGuid, String> = BTreeMap::new();
    for a in &deleted {
        leaving.insert(*a, "deleted in the directory".to_owned());
    }
    for a in &left {
        leaving.insert(
            *a,
            "no longer in the directory result (moved out of the Root DN, or not readable by the bind account)"
                .to_owned(),
        );
    }
    changed.retain(|anchor, c| match out_of_scope(settings, &c.object) {
        Some(reason) => {
            out.skipped.push((c.object.dn.to_string(), reason.clone()));
            leaving.insert(*anchor, format!("out of scope: {reason}"));
            false
        }
        None => true,
    });
    let managed = |a: &ObjectGuid| stored.get(a).is_some_and(|s| s.current.managed);
    let in_scope =
        |a: &ObjectGuid| changed.contains_key(a) || (managed(a) && !leaving.contains_key(a));

    // The changed objects, whole.
    let mut groups_of: HashMap<ObjectGuid, Vec<ObjectGuid>> = HashMap::new();
    let mut managers_of: HashMap<ObjectGuid, ObjectGuid> = HashMap::new();
    for (anchor, c) in &changed {
        for g in &c.member_of {
            groups_of.entry(*g).or_default().push(*anchor);
        }
        for r in &c.reports {
            managers_of.insert(*r, *anchor);
        }
    }
    for (anchor, c) in &changed {
        for note in &c.object.notes {
            out.warnings.push(format!("{}: {note}", c.object.dn));
        }
        let mut members: Vec<ObjectGuid> = c.members.iter().copied().filter(in_scope).collect();
        members.sort();
        members.dedup();
        let manager = c.manager.filter(in_scope);
        let digest = c.digest.filter(|_| c.object.notes.is_empty());
        let record = record_of(settings, c.object.clone(), members, manager);
        compare(&mut out, stored.get(anchor), record, digest);
    }

    // Active Directory keeps its links itself: a renamed or moved object
    // is still the member and the manager it was. A generic LDAP server
    // may keep a renamed object's old DN in the groups and entries that
    // name it (no referential integrity), which a full read does not
    // resolve: there a changed object belongs to exactly the groups that
    // name it now, and manages exactly the entries that do.
    let links_by_dn = matches!(settings.directory, DirectorySchema::Ldap(_));

    // Stored records that link to what changed.
    for (anchor, s) in stored {
        if !s.current.managed || leaving.contains_key(anchor) || changed.contains_key(anchor) {
            continue;
        }
        let mut record = s.record.clone();
        if record.kind == ObjectKind::Group {
            record.members.retain(|m| !leaving.contains_key(m));
            if links_by_dn {
                record
                    .members
                    .retain(|m| changed.get(m).is_none_or(|c| c.member_of.contains(anchor)));
            }
            if let Some((adds, removes)) = member_changes.get(anchor) {
                record.members.retain(|m| !removes.contains(m));
                record.members.extend(adds.iter().copied().filter(in_scope));
            }
            if let Some(joined) = groups_of.get(anchor) {
                record.members.extend(joined.iter().copied());
            }
            record.members.sort();
            record.members.dedup();
        }
        if let Some(m) = record.manager
            && leaving.contains_key(&m)
        {
            record.manager = None;
            if deleted.contains(&m) {
                // The directory drops a link to a deleted object.
                record.attributes.manager_dn.clear();
            }
        }
        if links_by_dn
            && let Some(m) = record.manager
            && changed.get(&m).is_some_and(|c| !c.reports.contains(anchor))
        {
            record.manager = None;
        }
        if let Some(m) = managers_of.get(anchor) {
            record.manager = Some(*m);
        }
        if let Some(m) = record.manager
            && let Some(c) = changed.get(&m)
        {
            // The manager's DN as the directory now shows it.
            record.attributes.manager_dn = c.object.dn.to_string();
        }
        if record != s.record {
            // The object's own entry changed with its links: its digest
            // is no longer known.
            compare(&mut out, Some(s), record, None);
        }
    }

    // Removals of stored objects.
    for (anchor, why) in &leaving {
        if let Some(s) = stored.get(anchor).filter(|s| s.current.managed) {
            out.removals
                .push(removal_of(settings, *anchor, s.current.kind, why));
        }
    }
    summarize(&mut out);
    out
}

/// Adds `record` to the plan as an add, an update or unchanged.
fn compare(
    out: &mut Plan,
    stored: Option<&StoredEntry>,
    record: ObjectRecord,
    digest: Option<ShortHash>,
) {
    let upsert = Upsert::new(record, digest);
    match stored {
        None => out.adds.push(upsert),
        Some(s)
            if s.current.managed
                && s.current.kind == upsert.record.kind
                && s.current.content_hash == ShortHash::from(upsert.content_hash) =>
        {
            out.unchanged += 1;
            if s.current.entry_digest != digest {
                out.entry_digests.push((upsert.record.anchor, digest));
            }
        }
        Some(_) => out.updates.push(upsert),
    }
}

/// One warning per skip reason, as a full run gives.
fn summarize(out: &mut Plan) {
    crate::plan::summarize_skipped(&out.skipped, &mut out.warnings);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Entry;
    use crate::settings::{DirectoryKind, SettingsInput};

    fn input(delete_users: bool) -> SettingsInput {
        SettingsInput {
            name: "t".into(),
            host: "dc".into(),
            user_dn: "CN=u,DC=x".into(),
            root_dn: "DC=x".into(),
            delete_users,
            ..Default::default()
        }
    }

    fn settings(delete_users: bool) -> IntegrationSettings {
        IntegrationSettings::validate(&input(delete_users)).expect("valid")
    }

    fn guid(n: u8) -> ObjectGuid {
        format!("00000000-0000-0000-0000-0000000000{n:02x}")
            .parse()
            .expect("guid")
    }

    fn user(n: u8, name: &str) -> DirectoryObject {
        DirectoryObject::try_from(Entry {
            mail: format!("{name}@x.test"),
            display_name: name.to_owned(),
            ..Entry::new(
                ObjectKind::User,
                guid(n).to_string(),
                format!("CN={name},DC=x"),
            )
        })
        .expect("entry")
    }

    fn group(n: u8, name: &str) -> DirectoryObject {
        DirectoryObject::try_from(Entry {
            display_name: name.to_owned(),
            group_type: Some(-2147483646),
            ..Entry::new(
                ObjectKind::Group,
                guid(n).to_string(),
                format!("CN={name},DC=x"),
            )
        })
        .expect("entry")
    }

    fn changed(object: DirectoryObject) -> ChangedObject {
        ChangedObject {
            object,
            digest: None,
            members: Vec::new(),
            manager: None,
            member_of: Vec::new(),
            reports: Vec::new(),
        }
    }

    /// The store a full plan of `objects` leaves, as a delta reads it.
    fn stored_after_full(s: &IntegrationSettings, objects: Vec<DirectoryObject>) -> Stored {
        let plan = crate::plan::plan(
            s,
            &crate::plan::Source::complete(),
            &Default::default(),
            objects,
        );
        plan.adds
            .into_iter()
            .map(|u| {
                (
                    u.record.anchor,
                    StoredEntry {
                        current: CurrentObject {
                            anchor: u.record.anchor,
                            kind: u.record.kind,
                            content_hash: u.content_hash.into(),
                            managed: true,
                            entry_digest: None,
                        },
                        record: u.record,
                    },
                )
            })
            .collect()
    }

    fn with_members(mut g: DirectoryObject, members: &[&str]) -> DirectoryObject {
        g.member_dns = members
            .iter()
            .map(|m| crate::Dn::parse(&format!("CN={m},DC=x")).expect("dn"))
            .collect();
        g
    }

    fn records(plan: &Plan) -> BTreeMap<ObjectGuid, ObjectRecord> {
        plan.adds
            .iter()
            .chain(&plan.updates)
            .map(|u| (u.record.anchor, u.record.clone()))
            .collect()
    }

    #[test]
    fn a_member_change_updates_the_group_edge_by_edge() {
        let s = settings(false);
        let stored = stored_after_full(
            &s,
            vec![
                user(1, "ann"),
                user(2, "bob"),
                with_members(group(9, "staff"), &["ann"]),
            ],
        );
        let plan = plan_delta(
            &s,
            &stored,
            vec![DeltaChange::Members {
                group: guid(9),
                added: vec![guid(2), guid(7)],
                removed: vec![guid(1)],
            }],
        );
        // guid(7) is not stored: not in scope, not linked.
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].record.members, vec![guid(2)]);
        assert!(plan.adds.is_empty() && plan.removals.is_empty());
    }

    #[test]
    fn a_deleted_member_leaves_its_groups_and_reports() {
        let s = settings(true);
        let mut sub = user(3, "cy");
        sub.attributes.manager_dn = "CN=ann,DC=x".into();
        let stored = stored_after_full(
            &s,
            vec![
                user(1, "ann"),
                sub,
                with_members(group(9, "staff"), &["ann", "cy"]),
            ],
        );
        assert_eq!(stored[&guid(3)].record.manager, Some(guid(1)));
        let plan = plan_delta(&s, &stored, vec![DeltaChange::Deleted(guid(1))]);
        assert_eq!(plan.removals.len(), 1);
        assert!(plan.removals[0].reason.contains("deleted in the directory"));
        let r = records(&plan);
        assert_eq!(r[&guid(9)].members, vec![guid(3)]);
        assert_eq!(r[&guid(3)].manager, None);
        assert_eq!(r[&guid(3)].attributes.manager_dn, "");
        // What a full read of the directory without ann gives.
        let mut sub = user(3, "cy");
        sub.attributes.manager_dn = String::new();
        let full = stored_after_full(&s, vec![sub, with_members(group(9, "staff"), &["cy"])]);
        assert_eq!(full[&guid(9)].record, r[&guid(9)]);
        assert_eq!(full[&guid(3)].record, r[&guid(3)]);
    }

    #[test]
    fn an_object_entering_scope_gets_its_groups_and_reports() {
        let s = settings(false);
        let mut sub = user(3, "cy");
        sub.attributes.manager_dn = "CN=dee,DC=x".into();
        let stored = stored_after_full(&s, vec![sub.clone(), group(9, "staff")]);
        assert_eq!(stored[&guid(3)].record.manager, None);
        let mut dee = changed(user(4, "dee"));
        dee.member_of = vec![guid(9)];
        dee.reports = vec![guid(3)];
        let plan = plan_delta(&s, &stored, vec![DeltaChange::Changed(Box::new(dee))]);
        assert_eq!(plan.adds.len(), 1);
        let r = records(&plan);
        let full = stored_after_full(
            &s,
            vec![
                sub,
                user(4, "dee"),
                with_members(group(9, "staff"), &["dee"]),
            ],
        );
        for a in [guid(3), guid(4), guid(9)] {
            assert_eq!(full[&a].record, r[&a], "{a}");
        }
    }

    #[test]
    fn a_change_out_of_scope_removes_and_unknown_anchors_are_ignored() {
        let s = settings(false);
        let stored = stored_after_full(&s, vec![user(1, "ann")]);
        let mut ann = user(1, "ann");
        ann.primary_address = None; // mail cleared
        let plan = plan_delta(
            &s,
            &stored,
            vec![
                DeltaChange::Changed(Box::new(changed(ann))),
                DeltaChange::LeftScope(guid(5)),
                DeltaChange::Deleted(guid(6)),
            ],
        );
        assert_eq!(plan.removals.len(), 1);
        assert_eq!(plan.removals[0].action, crate::plan::RemovalAction::Demote);
        assert!(plan.removals[0].reason.contains("out of scope"));
        assert!(plan.adds.is_empty() && plan.updates.is_empty());
    }

    #[test]
    fn an_unchanged_object_is_unchanged_and_a_rename_reaches_its_reports() {
        let s = settings(false);
        let mut sub = user(3, "cy");
        sub.attributes.manager_dn = "CN=ann,DC=x".into();
        let stored = stored_after_full(&s, vec![user(1, "ann"), sub]);
        let same = plan_delta(
            &s,
            &stored,
            vec![DeltaChange::Changed(Box::new(changed(user(1, "ann"))))],
        );
        assert_eq!(same.unchanged, 1);
        assert!(same.updates.is_empty());
        let mut renamed = user(1, "ann");
        renamed.dn = crate::Dn::parse("CN=ann2,DC=x").expect("dn");
        let mut c = changed(renamed);
        c.reports = vec![guid(3)];
        let plan = plan_delta(&s, &stored, vec![DeltaChange::Changed(Box::new(c))]);
        let r = records(&plan);
        assert_eq!(r[&guid(1)].dn, "CN=ann2,DC=x");
        assert_eq!(r[&guid(3)].attributes.manager_dn, "CN=ann2,DC=x");
        assert_eq!(r[&guid(3)].manager, Some(guid(1)));
    }

    #[test]
    fn a_generic_ldap_rename_without_referential_integrity_drops_the_old_links() {
        let s = IntegrationSettings::validate(&SettingsInput {
            directory: Some(DirectoryKind::Ldap),
            ..input(false)
        })
        .expect("valid");
        let mut sub = user(3, "cy");
        sub.attributes.manager_dn = "CN=ann,DC=x".into();
        let objects = vec![
            user(1, "ann"),
            sub.clone(),
            with_members(group(9, "staff"), &["ann", "cy"]),
        ];
        let stored = stored_after_full(&s, objects);
        assert_eq!(stored[&guid(9)].record.members, vec![guid(1), guid(3)]);
        // ann renamed; the group and cy still name CN=ann,DC=x, so the
        // server finds no group and no report of CN=ann2.
        let mut renamed = user(1, "ann");
        renamed.dn = crate::Dn::parse("CN=ann2,DC=x").expect("dn");
        let plan = plan_delta(
            &s,
            &stored,
            vec![DeltaChange::Changed(Box::new(changed(renamed.clone())))],
        );
        let r = records(&plan);
        assert_eq!(r[&guid(9)].members, vec![guid(3)]);
        assert_eq!(r[&guid(3)].manager, None);
        assert_eq!(r[&guid(3)].attributes.manager_dn, "CN=ann,DC=x");
        // What a full read of that directory gives.
        let full = stored_after_full(
            &s,
            vec![
                renamed,
                sub,
                with_members(group(9, "staff"), &["ann", "cy"]),
            ],
        );
        assert_eq!(full[&guid(9)].record, r[&guid(9)]);
        assert_eq!(full[&guid(3)].record, r[&guid(3)]);
        // Active Directory keeps the links: the same change keeps them.
        let ad = settings(false);
        let stored = stored_after_full(
            &ad,
            vec![
                user(1, "ann"),
                user(3, "cy"),
                with_members(group(9, "staff"), &["ann", "cy"]),
            ],
        );
        let mut renamed = user(1, "ann");
        renamed.dn = crate::Dn::parse("CN=ann2,DC=x").expect("dn");
        let plan = plan_delta(
            &ad,
            &stored,
            vec![DeltaChange::Changed(Box::new(changed(renamed)))],
        );
        assert!(!records(&plan).contains_key(&guid(9)), "staff unchanged");
    }
}
