//! A search result entry's contents (the bytes the connection keeps for
//! the collector), read into a bus entry for Active Directory and for a
//! generic LDAP directory, then into a directory object as the reconciler
//! reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dirsync_core::{DirectorySchema, LdapSchema};
use dirsync_ldap::{EntryReader, RawEntry};
use ldap3::asn1::{PL, StructureTag, TagClass};

fuzz_target!(|data: &[u8]| {
    let tag = StructureTag {
        class: TagClass::Application,
        id: 4,
        payload: PL::P(data.to_vec()),
    };
    let Ok(raw) = RawEntry::read(tag) else { return };
    for directory in [
        DirectorySchema::ActiveDirectory,
        DirectorySchema::Ldap(LdapSchema::default()),
    ] {
        if let Ok(Some(entry)) = EntryReader::new(&directory).read(raw.clone()) {
            let _ = dirsync_convert::object_of(entry);
        }
    }
});
