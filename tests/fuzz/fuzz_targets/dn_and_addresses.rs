//! Text a directory sends: DNs, proxyAddresses and mail values, object
//! GUIDs, as a bus entry carries them into a directory object.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dirsync_core::{Dn, EmailAddress, ObjectGuid};
use dirsync_proto::bus;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(dn) = Dn::parse(&text) {
        // Its key, its domain and containment are total.
        let _ = dn.domain();
        assert!(dn.is_within(&dn), "a DN is within itself: {text:?}");
        let reparsed = Dn::parse(dn.as_str()).expect("a parsed DN parses again");
        assert_eq!(reparsed.key(), dn.key());
    }
    let _ = EmailAddress::parse(&text);
    let _ = text.parse::<ObjectGuid>();
    let mut lines = text.lines();
    let entry = bus::DirectoryEntry {
        object_guid: "d206137a-837a-1041-9b30-7f5b6c102f77".into(),
        kind: bus::ObjectKind::User as i32,
        dn: lines.next().unwrap_or_default().to_owned(),
        mail: lines.next().unwrap_or_default().to_owned(),
        proxy_addresses: lines.clone().map(str::to_owned).collect(),
        member_dns: lines.map(str::to_owned).collect(),
        ..Default::default()
    };
    if let Ok(object) = dirsync_convert::object_of(entry) {
        if let Some(primary) = &object.primary_address {
            assert!(
                !object.aliases.contains(primary),
                "the primary is not an alias too"
            );
        }
        assert!(
            object.aliases.windows(2).all(|w| w[0] < w[1]),
            "aliases sorted, no duplicates"
        );
    }
});
