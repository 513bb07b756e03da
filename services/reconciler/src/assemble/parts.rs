//! Large groups' parts joined to their entry, and each entry digested.

use std::ops::Range;

use dirsync_convert::EntryDigest;
use dirsync_core::ShortHash;
use dirsync_proto::bus;

/// Joins the parts of large groups (`member_part` > 0) to the entry they
/// continue, which comes just before them, one entry at a time, digesting
/// the encoded entry and parts. A part without its entry makes the
/// collection incomplete.
#[derive(Default)]
pub(crate) struct PartJoiner {
    pending: Option<Pending>,
}

/// The entry a [`PartJoiner`] holds while its parts may follow.
struct Pending {
    entry: bus::DirectoryEntry,
    digest: EntryDigest,
    positions: Range<u64>,
}

/// An entry with its parts joined.
pub(crate) struct Joined {
    pub(crate) entry: bus::DirectoryEntry,
    pub(crate) digest: ShortHash,
    /// Its place (and its parts') among the staged entries.
    pub(crate) positions: Range<u64>,
}

impl PartJoiner {
    /// Takes the next entry, `encoded` as staged at `position`; returns
    /// the one before it once it is whole.
    pub(crate) fn push(
        &mut self,
        e: bus::DirectoryEntry,
        encoded: &[u8],
        position: u64,
        errors: &mut Vec<String>,
    ) -> Option<Joined> {
        if e.member_part == 0 {
            let mut digest = EntryDigest::new();
            digest.update(encoded);
            let before = self.flush();
            self.pending = Some(Pending {
                entry: e,
                digest,
                positions: position..position + 1,
            });
            return before;
        }
        match &mut self.pending {
            Some(last) if last.entry.object_guid == e.object_guid => {
                last.entry.member_dns.extend(e.member_dns);
                last.positions.end = position + 1;
                last.digest.update(encoded);
            }
            _ => errors.push(format!(
                "member part {} of object {} arrived without its entry",
                e.member_part, e.object_guid
            )),
        }
        None
    }

    /// The entry held, if any: no more parts of it follow.
    pub(crate) fn flush(&mut self) -> Option<Joined> {
        self.pending.take().map(|p| Joined {
            entry: p.entry,
            digest: p.digest.finish(),
            positions: p.positions,
        })
    }

    /// The last entry.
    pub(crate) fn finish(mut self) -> Option<Joined> {
        self.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{Joined, PartJoiner};
    use dirsync_proto::bus::DirectoryEntry;
    use prost::Message;

    fn join_parts(entries: impl IntoIterator<Item = DirectoryEntry>) -> (Vec<Joined>, Vec<String>) {
        let mut joiner = PartJoiner::default();
        let mut errors = Vec::new();
        let mut out: Vec<Joined> = (0..)
            .zip(entries)
            .filter_map(|(n, e)| {
                let encoded = e.encode_to_vec();
                joiner.push(e, &encoded, n, &mut errors)
            })
            .collect();
        out.extend(joiner.finish());
        (out, errors)
    }

    pub(crate) fn e(guid: &str, part: u32, members: &[&str]) -> DirectoryEntry {
        DirectoryEntry {
            object_guid: guid.into(),
            member_part: part,
            member_dns: members.iter().map(|m| (*m).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parts_join_their_entry() {
        let (joined, errors) = join_parts([
            e("a", 0, &["x"]),
            e("g", 0, &["1", "2"]),
            e("g", 1, &["3"]),
            e("g", 2, &["4"]),
            e("b", 0, &[]),
            e("c", 1, &["lost"]),
        ]);
        assert_eq!(joined.len(), 3);
        assert_eq!(joined[1].entry.member_dns, ["1", "2", "3", "4"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("object c"), "{errors:?}");
        // Each entry's place covers its parts; the lost part is no one's.
        let places: Vec<_> = joined.iter().map(|j| j.positions.clone()).collect();
        assert_eq!(places, [0..1, 1..4, 4..5]);
    }

    #[test]
    fn a_joined_entry_is_digested_with_its_parts() {
        let digests = |entries: Vec<DirectoryEntry>| -> Vec<_> {
            join_parts(entries).0.iter().map(|j| j.digest).collect()
        };
        let whole = digests(vec![e("g", 0, &["1"]), e("g", 1, &["2"]), e("b", 0, &[])]);
        assert_eq!(
            whole,
            digests(vec![e("g", 0, &["1"]), e("g", 1, &["2"]), e("b", 0, &[])])
        );
        let one_part_changed = digests(vec![e("g", 0, &["1"]), e("g", 1, &["3"]), e("b", 0, &[])]);
        assert_ne!(whole[0], one_part_changed[0]);
        assert_eq!(whole[1], one_part_changed[1]);
        let without_part = digests(vec![e("g", 0, &["1"]), e("b", 0, &[])]);
        assert_ne!(whole[0], without_part[0]);
        assert_eq!(whole[1], without_part[1]);
    }
}
