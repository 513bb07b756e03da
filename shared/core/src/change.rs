//! The change log: what a run did (or, previewed, would do) to each object,
//! and why. Pure: built from a plan and the stored records it replaces.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::guid::ObjectGuid;
use crate::object::{ObjectKind, ObjectRecord};
use crate::plan::{Hold, Plan, RemovalAction, Upsert};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Add,
    Update,
    /// The account was disabled (with or without other changes).
    Disable,
    /// The account was enabled again.
    Enable,
    /// Back under directory management after having been removed.
    Restore,
    /// Kept as an unmanaged account.
    Demote,
    Delete,
    /// A removal not applied: the deletion guard or the account-wide pause.
    Held,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Update => "update",
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::Restore => "restore",
            Self::Demote => "demote",
            Self::Delete => "delete",
            Self::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "add" => Self::Add,
            "update" => Self::Update,
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "restore" => Self::Restore,
            "demote" => Self::Demote,
            "delete" => Self::Delete,
            "held" => Self::Held,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub anchor: ObjectGuid,
    pub kind: ObjectKind,
    pub dn: String,
    pub operation: Operation,
    pub fields: Vec<FieldChange>,
    pub reason: String,
}

/// What the store knows of an object a plan updates or removes.
#[derive(Debug, Clone)]
pub struct Before {
    pub record: ObjectRecord,
    pub managed: bool,
}

fn text<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Field by field, old → new.
pub fn diff(old: &ObjectRecord, new: &ObjectRecord) -> Vec<FieldChange> {
    let (a, b) = (&old.attributes, &new.attributes);
    let pairs: [(&str, String, String); 19] = [
        ("dn", old.dn.clone(), new.dn.clone()),
        (
            "display_name",
            a.display_name.clone(),
            b.display_name.clone(),
        ),
        ("given_name", a.given_name.clone(), b.given_name.clone()),
        ("surname", a.surname.clone(), b.surname.clone()),
        ("department", a.department.clone(), b.department.clone()),
        ("title", a.title.clone(), b.title.clone()),
        (
            "telephone_number",
            a.telephone_number.clone(),
            b.telephone_number.clone(),
        ),
        ("company", a.company.clone(), b.company.clone()),
        (
            "sam_account_name",
            a.sam_account_name.clone(),
            b.sam_account_name.clone(),
        ),
        (
            "user_principal_name",
            a.user_principal_name.clone(),
            b.user_principal_name.clone(),
        ),
        ("object_sid", a.object_sid.clone(), b.object_sid.clone()),
        ("manager_dn", a.manager_dn.clone(), b.manager_dn.clone()),
        ("manager", text(&old.manager), text(&new.manager)),
        (
            "primary_address",
            text(&old.primary_address),
            text(&new.primary_address),
        ),
        ("aliases", join(&old.aliases), join(&new.aliases)),
        (
            "disabled",
            old.disabled.to_string(),
            new.disabled.to_string(),
        ),
        ("members", join(&old.members), join(&new.members)),
        (
            "group_type",
            old.group_type.map(|g| format!("{g:?}")).unwrap_or_default(),
            new.group_type.map(|g| format!("{g:?}")).unwrap_or_default(),
        ),
        (
            "kind",
            old.kind.as_str().to_owned(),
            new.kind.as_str().to_owned(),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, o, n)| o != n)
        .map(|(field, old, new)| FieldChange {
            field: field.to_owned(),
            old,
            new,
        })
        .collect()
}

/// Every change of a plan: its removals (applied and held), then its adds
/// and updates.
pub fn changes(plan: &Plan, before: &HashMap<ObjectGuid, Before>) -> Vec<Change> {
    let mut out = removal_changes(plan, before);
    out.extend(upsert_changes(&plan.adds, &plan.updates, before));
    out
}

/// The changes of a plan's removals, applied and held; `before` holds the
/// records they remove.
pub fn removal_changes(plan: &Plan, before: &HashMap<ObjectGuid, Before>) -> Vec<Change> {
    let mut out = Vec::new();
    let held_reason = plan.hold.as_ref().map(Hold::describe).unwrap_or_default();
    for (removals, held) in [(&plan.removals, false), (&plan.held, true)] {
        for r in removals {
            let dn = before
                .get(&r.anchor)
                .map(|b| b.record.dn.clone())
                .unwrap_or_default();
            let (operation, reason) = match (held, r.action) {
                (true, RemovalAction::Demote) => (
                    Operation::Held,
                    format!("demote held: {}; {}", r.reason, held_reason),
                ),
                (true, RemovalAction::Delete) => (
                    Operation::Held,
                    format!("delete held: {}; {}", r.reason, held_reason),
                ),
                (false, RemovalAction::Demote) => (Operation::Demote, r.reason.clone()),
                (false, RemovalAction::Delete) => (Operation::Delete, r.reason.clone()),
            };
            out.push(Change {
                anchor: r.anchor,
                kind: r.kind,
                dn,
                operation,
                fields: Vec::new(),
                reason,
            });
        }
    }
    out
}

/// The changes of adds and updates; `before` holds the records the updates
/// replace.
pub fn upsert_changes<'a>(
    adds: impl IntoIterator<Item = &'a Upsert>,
    updates: impl IntoIterator<Item = &'a Upsert>,
    before: &HashMap<ObjectGuid, Before>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for u in adds {
        out.push(Change {
            anchor: u.record.anchor,
            kind: u.record.kind,
            dn: u.record.dn.clone(),
            operation: Operation::Add,
            fields: Vec::new(),
            reason: "new in the directory result".to_owned(),
        });
    }
    for u in updates {
        let new = &u.record;
        let (operation, fields, reason) = match before.get(&new.anchor) {
            None => (Operation::Update, Vec::new(), "changed in AD".to_owned()),
            Some(b) => {
                let fields = diff(&b.record, new);
                let (op, reason) = if !b.managed {
                    (
                        Operation::Restore,
                        "back in the directory result".to_owned(),
                    )
                } else if !b.record.disabled && new.disabled {
                    (
                        Operation::Disable,
                        "disabled in AD, and acknowledge disabled accounts is on".to_owned(),
                    )
                } else if b.record.disabled && !new.disabled {
                    (
                        Operation::Enable,
                        "enabled in AD, or acknowledge disabled accounts was turned off".to_owned(),
                    )
                } else {
                    (Operation::Update, "changed in AD".to_owned())
                };
                (op, fields, reason)
            }
        };
        out.push(Change {
            anchor: new.anchor,
            kind: new.kind,
            dn: new.dn.clone(),
            operation,
            fields,
            reason,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Attributes;
    use crate::plan::{Removal, Upsert};

    fn record(n: u8, name: &str, disabled: bool) -> ObjectRecord {
        ObjectRecord {
            anchor: format!("00000000-0000-0000-0000-0000000000{n:02x}")
                .parse()
                .expect("guid"),
            kind: ObjectKind::User,
            dn: format!("CN={name},DC=x"),
            attributes: Attributes {
                display_name: name.to_owned(),
                ..Default::default()
            },
            primary_address: None,
            aliases: Vec::new(),
            disabled,
            members: Vec::new(),
            group_type: None,
            manager: None,
        }
    }

    #[test]
    fn updates_name_their_fields_and_disables_are_called_so() {
        let old = record(1, "Alice", false);
        let renamed = record(1, "Alicia", false);
        let disabled = record(2, "Bob", true);
        let plan = Plan {
            updates: vec![
                Upsert::new(renamed.clone(), None),
                Upsert::new(disabled.clone(), None),
            ],
            removals: vec![Removal {
                anchor: record(3, "Carol", false).anchor,
                kind: ObjectKind::User,
                action: RemovalAction::Demote,
                reason: "gone".into(),
            }],
            ..Default::default()
        };
        let before: HashMap<_, _> = [
            (
                old.anchor,
                Before {
                    record: old.clone(),
                    managed: true,
                },
            ),
            (
                disabled.anchor,
                Before {
                    record: record(2, "Bob", false),
                    managed: true,
                },
            ),
            (
                record(3, "Carol", false).anchor,
                Before {
                    record: record(3, "Carol", false),
                    managed: true,
                },
            ),
        ]
        .into();
        let c = changes(&plan, &before);
        assert_eq!(c[0].operation, Operation::Demote);
        assert_eq!(c[0].dn, "CN=Carol,DC=x");
        assert_eq!(c[1].operation, Operation::Update);
        let fields: Vec<&str> = c[1].fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["dn", "display_name"]);
        assert_eq!(
            (c[1].fields[1].old.as_str(), c[1].fields[1].new.as_str()),
            ("Alice", "Alicia")
        );
        assert_eq!(c[2].operation, Operation::Disable);
    }
}
