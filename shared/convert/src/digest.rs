//! Entry digests over the bus encoding: how a resync recognises, without
//! decoding it, a collected entry that is byte for byte the one its stored
//! record was derived from (see `dirsync_core::digest`).

use sha2::{Digest, Sha256};

use dirsync_core::object::ShortHash;

/// Fields of a `DirectoryEntry` (bus.proto) that move with no change to
/// the record derived from it: whenChanged and uSNChanged change on every
/// replicated write, a sign-in timestamp's included.
const VOLATILE_FIELDS: [u64; 2] = [20, 21];

/// The digest of an encoded `DirectoryEntry` and its continuation parts,
/// its volatile fields left out.
#[derive(Clone, Default)]
pub struct EntryDigest(Sha256);

impl EntryDigest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an encoded entry, or the next continuation part of one. Bytes
    /// that do not parse as protobuf fields are digested as they are.
    pub fn update(&mut self, encoded: &[u8]) {
        let mut from = 0;
        let mut at = 0;
        while at < encoded.len() {
            let Some((key, n)) = varint(&encoded[at..]) else {
                break;
            };
            let body = at + n;
            let rest = &encoded[body..];
            let end = match key & 7 {
                0 => varint(rest).map(|(_, n)| body + n),
                1 => Some(body + 8),
                2 => varint(rest).and_then(|(len, n)| {
                    usize::try_from(len)
                        .ok()
                        .and_then(|len| (body + n).checked_add(len))
                }),
                5 => Some(body + 4),
                _ => None,
            };
            let Some(end) = end.filter(|&end| end <= encoded.len()) else {
                break;
            };
            if VOLATILE_FIELDS.contains(&(key >> 3)) {
                self.0.update(&encoded[from..at]);
                from = end;
            }
            at = end;
        }
        self.0.update(&encoded[from..]);
    }

    pub fn finish(self) -> ShortHash {
        dirsync_core::digest::short(self.0)
    }
}

/// A protobuf varint at the start of `bytes`, and its length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use dirsync_proto::bus;
    use prost::Message;

    use super::*;

    fn digest(parts: &[&[u8]]) -> ShortHash {
        let mut d = EntryDigest::new();
        for p in parts {
            d.update(p);
        }
        d.finish()
    }

    fn entry() -> bus::DirectoryEntry {
        bus::DirectoryEntry {
            kind: bus::ObjectKind::User as i32,
            object_guid: "00000000-0000-0000-0000-000000000001".into(),
            dn: "CN=One,DC=x".into(),
            user_account_control: Some(512),
            mail: "one@example.com".into(),
            display_name: "One".into(),
            when_changed: "20261127040000.0Z".into(),
            usn_changed: 4711,
            disabled: false,
            ..Default::default()
        }
    }

    #[test]
    fn an_entry_digest_leaves_out_the_volatile_fields_only() {
        let base = digest(&[&entry().encode_to_vec()]);
        assert_eq!(base, digest(&[&entry().encode_to_vec()]));
        let touched = bus::DirectoryEntry {
            when_changed: "20261128120000.0Z".into(),
            usn_changed: 1_000_000_007,
            ..entry()
        };
        assert_eq!(base, digest(&[&touched.encode_to_vec()]));
        let changes: [fn(&mut bus::DirectoryEntry); 5] = [
            |e| e.display_name.push('!'),
            |e| e.user_account_control = Some(514),
            |e| e.disabled = true,
            |e| e.member_dns.push("CN=g,DC=x".into()),
            |e| e.kind = bus::ObjectKind::Contact as i32,
        ];
        for change in changes {
            let mut e = entry();
            change(&mut e);
            assert_ne!(base, digest(&[&e.encode_to_vec()]), "{e:?}");
        }
    }

    #[test]
    fn an_entry_digest_covers_every_part_and_odd_bytes() {
        let head = entry().encode_to_vec();
        let part = bus::DirectoryEntry {
            object_guid: entry().object_guid,
            member_dns: vec!["CN=m,DC=x".into()],
            member_part: 1,
            ..Default::default()
        }
        .encode_to_vec();
        assert_ne!(digest(&[&head]), digest(&[&head, &part]));
        // Not protobuf: digested whole, and still told apart.
        let odd: &[u8] = &[0xff, 0xff, 0xff];
        assert_ne!(digest(&[odd]), digest(&[&odd[..2]]));
        let truncated = &head[..head.len() - 1];
        assert_ne!(digest(&[truncated]), digest(&[&head]));
    }
}
