//! A bus `DirectoryEntry` as core's [`Entry`], and the object it decodes
//! to.

use dirsync_core::object::{DirectoryObject, Entry, EntryError, ObjectKind};
use dirsync_proto::bus;

/// The entry a collector sent, its kind checked.
pub fn entry_of(e: bus::DirectoryEntry) -> Result<Entry, EntryError> {
    let kind = match bus::ObjectKind::try_from(e.kind) {
        Ok(bus::ObjectKind::User) => ObjectKind::User,
        Ok(bus::ObjectKind::Group) => ObjectKind::Group,
        Ok(bus::ObjectKind::Contact) => ObjectKind::Contact,
        _ => {
            return Err(EntryError::Invalid {
                dn: e.dn,
                reason: format!("unknown object kind {}", e.kind),
            });
        }
    };
    Ok(Entry {
        kind,
        object_guid: e.object_guid,
        dn: e.dn,
        object_sid: e.object_sid,
        user_account_control: e.user_account_control,
        mail: e.mail,
        proxy_addresses: e.proxy_addresses,
        display_name: e.display_name,
        given_name: e.given_name,
        surname: e.surname,
        department: e.department,
        title: e.title,
        telephone_number: e.telephone_number,
        company: e.company,
        manager_dn: e.manager_dn,
        user_principal_name: e.user_principal_name,
        sam_account_name: e.sam_account_name,
        member_dns: e.member_dns,
        group_type: e.group_type,
        disabled: e.disabled,
    })
}

/// The directory object a bus entry decodes to.
pub fn object_of(e: bus::DirectoryEntry) -> Result<DirectoryObject, EntryError> {
    DirectoryObject::try_from(entry_of(e)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_an_unknown_kind_is_refused_by_its_dn() {
        let e = bus::DirectoryEntry {
            kind: bus::ObjectKind::Unspecified as i32,
            object_guid: "00112233-4455-6677-8899-aabbccddeeff".into(),
            dn: "CN=A,DC=x".into(),
            ..Default::default()
        };
        let err = object_of(e).expect_err("no kind");
        assert!(err.to_string().contains("CN=A,DC=x") && err.to_string().contains("kind"));
        let ok = object_of(bus::DirectoryEntry {
            kind: bus::ObjectKind::User as i32,
            object_guid: "00112233-4455-6677-8899-aabbccddeeff".into(),
            dn: "CN=A,DC=x".into(),
            mail: "a@example.com".into(),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(ok.kind, ObjectKind::User);
    }
}
