-- Which claim owns an address that several objects carry (see
-- dirsync_core::plan::claim_rank): the lowest rank wins. Rows written
-- before ranks existed rank last.
ALTER TABLE addresses ADD COLUMN claim_rank TEXT NOT NULL DEFAULT '~';
