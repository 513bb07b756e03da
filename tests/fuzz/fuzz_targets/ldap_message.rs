//! A directory server's bytes, as the connection decodes them: every
//! message in the buffer; what ldap3 then reads of a message without
//! checking (a paged results control, a referral) is read too, and each
//! search result entry is read as the collector reads it. A panic, a
//! stack overflow or an allocation over the limit is a finding.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

use dirsync_ldap::RawEntry;
use ldap3::asn1::{StructureTag, Tag, TagClass};
use ldap3::controls::{ControlType, PagedResults};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some((_id, (tag, controls)))) = ldap3::decode_message(&mut buf) {
        for c in &controls {
            if matches!(c.0, Some(ControlType::PagedResults)) {
                let _: PagedResults = c.1.parse();
            }
        }
        if let Tag::StructureTag(t) = tag {
            match (t.class, t.id) {
                (TagClass::Application, 4) => {
                    let _ = RawEntry::read(t);
                }
                (TagClass::Application, 19) => {
                    let _ = ldap3::parse_refs(t);
                }
                _ => {
                    let _: StructureTag = t;
                }
            }
        }
    }
});
