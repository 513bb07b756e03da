//! Staged batches read in sequence order into entries, in one of the two
//! planning passes.

use std::ops::Range;

use prost::Message;
use prost::bytes::Bytes;

use dirsync_core::plan::Planner;
use dirsync_core::{DirectoryObject, ShortHash};
use dirsync_proto::bus;
use dirsync_store::StagedBatch;

use super::parts::{Joined, PartJoiner};
use super::skips::Skips;

/// An entry read from the staged batches.
pub(crate) struct Collected {
    pub(crate) object: DirectoryObject,
    pub(crate) digest: ShortHash,
    /// Its place (and its parts') among the staged entries.
    pub(crate) positions: Range<u64>,
}

/// Reads staged batches in sequence order, in one of the two planning
/// passes, joining large groups' parts and digesting each entry.
///
/// The first pass (which builds its [`Skips`]) reads what the planner's
/// first pass needs of each entry (anchor, DN, kind, addresses), the rest
/// left undecoded; the second reads whole entries, less those its skips
/// leave out, and no batch that holds only those.
pub(crate) struct BatchReader {
    first_pass: bool,
    pub(crate) skips: Skips,
    joiner: PartJoiner,
}

impl BatchReader {
    pub(crate) fn first_pass() -> Self {
        Self {
            first_pass: true,
            skips: Skips::default(),
            joiner: PartJoiner::default(),
        }
    }

    pub(crate) fn second_pass(skips: Skips) -> Self {
        Self {
            first_pass: false,
            skips,
            ..Self::first_pass()
        }
    }

    /// The encoded batch a staged one holds; `None`, said in `reasons`,
    /// when it cannot be decompressed.
    fn unpack(&mut self, staged: StagedBatch, reasons: &mut Vec<String>) -> Option<Bytes> {
        if !staged.lz4 {
            return Some(Bytes::from(staged.payload));
        }
        match dirsync_proto::lz4::decompress(&staged.payload) {
            Ok(batch) => Some(Bytes::from(batch)),
            Err(e) => {
                reasons.push(format!(
                    "staged batch {} cannot be decompressed: {e}",
                    staged.sequence
                ));
                self.skips.broken();
                None
            }
        }
    }

    /// [`read`](Self::read) of a batch as the store keeps it.
    pub(crate) fn read_staged(
        &mut self,
        staged: StagedBatch,
        out: &mut Vec<Collected>,
        reasons: &mut Vec<String>,
    ) {
        let sequence = staged.sequence;
        if let Some(payload) = self.unpack(staged, reasons) {
            self.read(sequence, payload, out, reasons);
        }
    }

    /// [`index`](Self::index) of a batch as the store keeps it.
    pub(crate) fn index_staged(
        &mut self,
        planner: &mut Planner,
        staged: StagedBatch,
        reasons: &mut Vec<String>,
    ) {
        let sequence = staged.sequence;
        if let Some(payload) = self.unpack(staged, reasons) {
            self.index(planner, sequence, payload, reasons);
        }
    }

    /// In the first pass, reads batch `sequence` and indexes its whole
    /// entries, leaving out of the second pass those the planner found
    /// unchanged.
    pub(crate) fn index(
        &mut self,
        planner: &mut Planner,
        sequence: u32,
        payload: Bytes,
        reasons: &mut Vec<String>,
    ) {
        let mut entries = Vec::new();
        self.read(sequence, payload, &mut entries, reasons);
        self.index_entries(planner, &entries);
    }

    /// In the first pass, indexes the last entry, once.
    pub(crate) fn index_last(&mut self, planner: &mut Planner, reasons: &mut Vec<String>) {
        let mut last = Vec::new();
        self.finish(&mut last, reasons);
        self.index_entries(planner, &last);
    }

    fn index_entries(&mut self, planner: &mut Planner, entries: &[Collected]) {
        for e in entries {
            if planner.index(&e.object, Some(e.digest)) {
                self.skips.leave_out(e.positions.clone());
            }
        }
    }

    /// Adds the entries of batch `sequence` that are whole to `out` (the
    /// last one may wait for parts in the next batch).
    fn read(
        &mut self,
        sequence: u32,
        payload: Bytes,
        out: &mut Vec<Collected>,
        reasons: &mut Vec<String>,
    ) {
        let first_pass = self.first_pass;
        let batch = match bus::ObjectBatchEntries::decode(payload) {
            Ok(batch) => batch,
            Err(e) => {
                reasons.push(format!("a staged batch cannot be decoded: {e}"));
                self.skips.broken();
                return;
            }
        };
        let Some(start) = self.skips.batch(sequence, batch.entries.len(), first_pass) else {
            reasons.push(format!("staged batch {sequence} is out of sequence"));
            return;
        };
        for (position, raw) in (start..).zip(&batch.entries) {
            if !first_pass && self.skips.left_out(position) {
                if let Some(before) = self.joiner.flush() {
                    decode(before, out, reasons);
                }
                continue;
            }
            let entry = if first_pass {
                bus::DirectoryEntryIndex::decode(raw.as_ref()).map(indexed_entry)
            } else {
                bus::DirectoryEntry::decode(raw.as_ref())
            };
            match entry {
                Ok(entry) => {
                    if let Some(whole) = self.joiner.push(entry, raw, position, reasons) {
                        decode(whole, out, reasons);
                    }
                }
                Err(e) => reasons.push(format!(
                    "entry {} of staged batch {sequence} cannot be decoded: {e}",
                    position - start
                )),
            }
        }
    }

    /// Adds the last entry to `out`, once: false when there is none.
    pub(crate) fn finish(&mut self, out: &mut Vec<Collected>, reasons: &mut Vec<String>) -> bool {
        let Some(last) = std::mem::take(&mut self.joiner).finish() else {
            return false;
        };
        decode(last, out, reasons);
        true
    }
}

/// The object a whole entry gives, or why it gives none.
fn decode(joined: Joined, out: &mut Vec<Collected>, reasons: &mut Vec<String>) {
    match dirsync_convert::object_of(joined.entry) {
        Ok(object) => out.push(Collected {
            object,
            digest: joined.digest,
            positions: joined.positions,
        }),
        Err(e) => reasons.push(e.to_string()),
    }
}

/// The entry an index read of an entry gives: the fields that decide its
/// anchor, DN, kind and addresses, the others empty.
fn indexed_entry(e: bus::DirectoryEntryIndex) -> bus::DirectoryEntry {
    bus::DirectoryEntry {
        kind: e.kind,
        object_guid: e.object_guid,
        dn: e.dn,
        mail: e.mail,
        proxy_addresses: e.proxy_addresses,
        member_part: e.member_part,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use dirsync_proto::bus::DirectoryEntry;
    use prost::Message;

    #[test]
    fn an_index_read_decides_scope_as_the_whole_entry_does() {
        use dirsync_proto::bus::{
            DirectoryEntryIndex, ObjectBatch, ObjectBatchEntries, ObjectKind,
        };
        let user = DirectoryEntry {
            kind: ObjectKind::User as i32,
            object_guid: "00000000-0000-0000-0000-000000000001".into(),
            dn: "CN=User 1,OU=People,DC=x".into(),
            mail: "one@example.com".into(),
            proxy_addresses: vec![
                "smtp:alias@example.com".into(),
                "SMTP:primary@example.com".into(),
                "X500:/o=x".into(),
            ],
            display_name: "User 1".into(),
            manager_dn: "CN=Boss,DC=x".into(),
            user_account_control: Some(514),
            ..Default::default()
        };
        let group = DirectoryEntry {
            kind: ObjectKind::Group as i32,
            object_guid: "00000000-0000-0000-0000-000000000002".into(),
            dn: "CN=G,DC=x".into(),
            member_dns: vec!["CN=User 1,OU=People,DC=x".into()],
            ..Default::default()
        };
        let wire = ObjectBatch {
            sequence: 3,
            entries: vec![user.clone(), group.clone()],
        }
        .encode_to_vec();
        let batch = ObjectBatchEntries::decode(wire.as_slice()).expect("same wire format");
        assert_eq!(batch.sequence, 3);
        for (read, whole) in batch.entries.into_iter().zip([user, group]) {
            assert_eq!(read.as_ref(), whole.encode_to_vec());
            let read = DirectoryEntryIndex::decode(read).expect("an entry");
            let read = dirsync_convert::object_of(super::indexed_entry(read)).expect("valid");
            let whole = dirsync_convert::object_of(whole).expect("valid");
            assert_eq!(
                (
                    read.anchor,
                    read.kind,
                    &read.dn,
                    &read.primary_address,
                    &read.aliases
                ),
                (
                    whole.anchor,
                    whole.kind,
                    &whole.dn,
                    &whole.primary_address,
                    &whole.aliases
                )
            );
            assert!(read.member_dns.is_empty() && read.attributes.display_name.is_empty());
        }
    }
}
