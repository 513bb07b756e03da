-- Collectors send each batch compressed as an LZ4 block and the reconciler
-- stages it as it arrived; `lz4` tells those from batches staged as
-- encoded protobuf (before this release, or from an older collector).
ALTER TABLE staged_batches ADD COLUMN lz4 BOOLEAN NOT NULL DEFAULT FALSE;
