//! Returning users (soft match): a user deleted in the directory is kept as
//! an unmanaged account; when the same person comes back as a new
//! directory object (a new objectGUID: re-created by an admin, or a second
//! domain taking over) with the same primary address, the kept account is
//! adopted and managed again, its id, history and group memberships kept,
//! rather than left beside a new account. Pure: the reconciler asks the
//! store for the candidates and records what was adopted.
//!
//! The rule: a user new to the store (its objectGUID never seen) whose
//! primary address is the primary address of exactly one unmanaged user of
//! the account adopts that user. Aliases do not match, and neither do
//! groups or contacts. When two new users of one run have that primary
//! address, neither adopts it, and the run says so.

use std::collections::HashMap;

use crate::email::EmailAddress;
use crate::guid::ObjectGuid;

/// The store's unmanaged users, by primary address.
pub type Returning = HashMap<EmailAddress, ObjectGuid>;

/// What the directory's objectGUIDs stand for in the store: the anchor of
/// the account each adopted.
pub type Aliases = HashMap<ObjectGuid, ObjectGuid>;

/// A new directory object that adopts a kept account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The new object's objectGUID.
    pub directory_anchor: ObjectGuid,
    /// The kept account's anchor: its id, which stays.
    pub anchor: ObjectGuid,
    pub address: EmailAddress,
}

impl Adoption {
    /// What the run and the change log say of it.
    pub fn describe(&self) -> String {
        format!(
            "a returning user: the new directory object {} has the primary address {} of the kept unmanaged account {}, which it adopts (id, history and memberships kept)",
            self.directory_anchor, self.address, self.anchor
        )
    }
}

/// Which of `fresh` (new users and their primary addresses) adopt a kept
/// account, and what to say of those that cannot.
pub fn adoptions(
    fresh: &[(ObjectGuid, EmailAddress)],
    returning: &Returning,
) -> (Vec<Adoption>, Vec<String>) {
    let mut by_address: HashMap<&EmailAddress, Vec<ObjectGuid>> = HashMap::new();
    for (anchor, address) in fresh {
        if returning.contains_key(address) {
            let list = by_address.entry(address).or_default();
            if !list.contains(anchor) {
                list.push(*anchor);
            }
        }
    }
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut addresses: Vec<_> = by_address.into_iter().collect();
    addresses.sort_by(|a, b| a.0.cmp(b.0));
    for (address, anchors) in addresses {
        let Some(kept) = returning.get(address) else {
            continue;
        };
        match anchors.as_slice() {
            [one] => out.push(Adoption {
                directory_anchor: *one,
                anchor: *kept,
                address: address.clone(),
            }),
            many => warnings.push(format!(
                "{} new users have the primary address {address} of the kept unmanaged account {kept}: none of them adopts it",
                many.len()
            )),
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid(n: u8) -> ObjectGuid {
        ObjectGuid::from_bytes([n; 16])
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("address")
    }

    #[test]
    fn one_new_user_adopts_and_two_adopt_nothing() {
        let returning: Returning = [
            (addr("carol@example.org"), guid(1)),
            (addr("zoe@example.org"), guid(2)),
        ]
        .into_iter()
        .collect();
        let (a, w) = adoptions(
            &[
                (guid(10), addr("Carol@Example.org")),
                (guid(11), addr("zoe@example.org")),
                (guid(12), addr("zoe@example.org")),
                (guid(13), addr("new@example.org")),
            ],
            &returning,
        );
        assert_eq!(
            a,
            vec![Adoption {
                directory_anchor: guid(10),
                anchor: guid(1),
                address: addr("carol@example.org"),
            }]
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("2 new users") && w[0].contains("zoe@example.org"),
            "{w:?}"
        );
        // The same object met twice is one candidate.
        let (a, w) = adoptions(
            &[
                (guid(10), addr("carol@example.org")),
                (guid(10), addr("carol@example.org")),
            ],
            &returning,
        );
        assert_eq!(a.len(), 1);
        assert!(w.is_empty());
    }
}
