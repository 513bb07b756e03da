-- Staged batches live only between a collection and its apply. Unlogged:
-- they write no WAL (an unchanged resync of a large directory wrote its
-- whole payload to the WAL). After a PostgreSQL crash the table is empty;
-- a run whose batches vanished fails with "only N batches arrived" and
-- the integration syncs again. Nothing applied is affected.
ALTER TABLE staged_batches SET UNLOGGED;
