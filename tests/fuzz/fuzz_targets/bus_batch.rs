//! A message off the bus: a collector event (its batch LZ4-compressed) or
//! a staged batch, decompressed, decoded and read into directory objects
//! as the reconciler reads them; a sync job as a collector reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

use dirsync_proto::bus;

/// As the reconciler reads a batch: the head staging counts, then each
/// entry's bytes, indexed by the first planning pass and read whole by
/// the second.
fn read_batch(encoded: &[u8]) {
    let _ = bus::ObjectBatchHead::decode(encoded);
    if let Ok(batch) = bus::ObjectBatchEntries::decode(encoded) {
        for bytes in &batch.entries {
            let _ = bus::DirectoryEntryIndex::decode(bytes.as_ref());
            if let Ok(e) = bus::DirectoryEntry::decode(bytes.as_ref()) {
                let _ = dirsync_convert::object_of(e);
            }
        }
    }
    if let Ok(batch) = bus::ObjectBatch::decode(encoded) {
        for e in batch.entries {
            let _ = dirsync_convert::object_of(e);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(encoded) = dirsync_proto::lz4::decompress(data) {
        assert!(encoded.len() <= dirsync_proto::lz4::MAX_DECODED);
        read_batch(&encoded);
    }
    read_batch(data);
    if let Ok(event) = bus::StagedCollectorEvent::decode(data)
        && let Some(block) = event.batch_lz4
        && let Ok(encoded) = dirsync_proto::lz4::decompress(&block)
    {
        read_batch(&encoded);
    }
    if let Ok(job) = bus::SyncJob::decode(data)
        && let Some(c) = job.connection
    {
        let _ = dirsync_convert::directory_from_bus(c.directory_type, c.ldap_schema.as_ref());
    }
});
