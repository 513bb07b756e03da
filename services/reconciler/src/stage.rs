//! Staging: each batch stored as the bytes it arrived as (a redelivered
//! batch is a no-op), then offered to the run's assembly.

use prost::Message;
use prost::bytes::Bytes;

use dirsync_proto::bus;
use dirsync_store::StoreError;

use crate::consume::{Reconciler, Settle};

impl Reconciler {
    /// Stages an `ObjectBatch` as it arrived, encoded or (`lz4`) compressed,
    /// counting its entries (continuations of a large group are not
    /// entries).
    pub(crate) async fn stage(
        &self,
        run_id: &str,
        attempt: u32,
        payload: Bytes,
        lz4: bool,
    ) -> Result<Settle, StoreError> {
        let batch = if lz4 {
            match dirsync_proto::lz4::decompress(&payload) {
                Ok(batch) => Bytes::from(batch),
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "dropping an object batch that cannot be decompressed");
                    return Ok(Settle::Ack);
                }
            }
        } else {
            payload.clone()
        };
        let head = match bus::ObjectBatchHead::decode(batch.clone()) {
            Ok(head) => head,
            Err(e) => {
                tracing::error!(run = %run_id, error = %e, "dropping an object batch that cannot be decoded");
                return Ok(Settle::Ack);
            }
        };
        let entries = head.entries.iter().filter(|e| e.member_part == 0).count() as u64;
        self.store
            .stage_batch(run_id, attempt, head.sequence, entries, &payload, lz4)
            .await?;
        self.assembler
            .arrived(run_id, attempt, head.sequence, batch, self.clock.now());
        Ok(Settle::Ack)
    }
}

#[cfg(test)]
mod tests {
    use crate::assemble::test_entry as e;
    use prost::Message;

    #[test]
    fn a_batch_is_staged_as_the_bytes_the_collector_encoded() {
        use dirsync_proto::bus::{
            CollectionStarted, CollectorEvent, ObjectBatch, ObjectBatchHead, StagedCollectorEvent,
            collector_event::Event,
        };
        let batch = ObjectBatch {
            sequence: 7,
            entries: vec![
                e("a", 0, &["x"]),
                e("g", 0, &["1"]),
                e("g", 1, &["2"]),
                e("b", 0, &[]),
            ],
        };
        let event = |event| CollectorEvent {
            account_id: "acme".into(),
            integration_id: "i1".into(),
            run_id: "r1".into(),
            attempt: 2,
            event: Some(event),
        };
        let wire = event(Event::Batch(batch.clone())).encode_to_vec();
        let staged = StagedCollectorEvent::decode(wire.as_slice()).expect("same wire format");
        assert_eq!((staged.run_id.as_str(), staged.attempt), ("r1", 2));
        let bytes = staged.batch.expect("a batch event carries its batch");
        assert_eq!(bytes, batch.encode_to_vec());
        let head = ObjectBatchHead::decode(bytes.as_ref()).expect("a batch");
        assert_eq!(head.sequence, 7);
        assert_eq!(
            head.entries.iter().filter(|e| e.member_part == 0).count(),
            3
        );
        // What collectors send: the batch as an LZ4 block.
        let block = dirsync_proto::lz4::compress(&batch.encode_to_vec());
        let wire = event(Event::BatchLz4(block.clone())).encode_to_vec();
        let staged = StagedCollectorEvent::decode(wire.as_slice()).expect("same wire format");
        assert_eq!(
            (staged.batch, staged.batch_lz4.as_deref()),
            (None, Some(&block[..]))
        );
        assert_eq!(
            dirsync_proto::lz4::decompress(&block).expect("a block"),
            batch.encode_to_vec()
        );
        // An empty batch is still a batch; other events carry none.
        let empty = event(Event::Batch(ObjectBatch::default())).encode_to_vec();
        assert_eq!(
            StagedCollectorEvent::decode(empty.as_slice())
                .expect("an event")
                .batch,
            Some(prost::bytes::Bytes::new())
        );
        let started = event(Event::Started(CollectionStarted::default())).encode_to_vec();
        assert_eq!(
            StagedCollectorEvent::decode(started.as_slice())
                .expect("an event")
                .batch,
            None
        );
    }
}
