//! The values of the change-stream controls a directory answers with:
//! DirSync's response, RFC 4533's Sync State, Sync Done and Sync Info,
//! extended DNs, a BER tree read as an entry, and the time a directory
//! says it is.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dirsync_ldap::RawEntry;
use dirsync_ldap::delta::{parse_dirsync_response, split_extended_dn};
use dirsync_ldap::syncrepl::{parse_sync_done, parse_sync_info, parse_sync_state, server_behind};
use dirsync_ldap::timestamp::parse_generalized_time;

fuzz_target!(|data: &[u8]| {
    let _ = parse_dirsync_response(data);
    let _ = parse_sync_state(data);
    let _ = parse_sync_done(data);
    let _ = parse_sync_info(data);
    if let Ok((_, tag)) = ldap3::asn1::parse_tag(data) {
        let _ = RawEntry::read(tag);
    }
    let text = String::from_utf8_lossy(data);
    let _ = split_extended_dn(&text);
    let _ = parse_generalized_time(&text);
    let (cookie, csns) = text.split_once('\n').unwrap_or((&text, ""));
    let csns: Vec<String> = csns.lines().map(str::to_owned).collect();
    let _ = server_behind(cookie.as_bytes(), &csns);
});
