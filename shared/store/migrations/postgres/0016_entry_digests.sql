-- A resync recognises an entry unchanged since its record was derived from
-- it, without decoding it: each object's entry digest, and per integration
-- the context (settings, DNs in scope, release) its last applied run
-- planned under.
ALTER TABLE objects ADD COLUMN entry_digest TEXT;
ALTER TABLE integrations ADD COLUMN entry_context TEXT;
