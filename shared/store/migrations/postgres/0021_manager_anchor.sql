-- The manager of each object, beside its record: a delta finds the
-- objects a changed or departed object manages by this index, not by
-- reading every record.
ALTER TABLE objects ADD COLUMN manager_anchor TEXT;
UPDATE objects SET manager_anchor = record::json->>'manager'
    WHERE record LIKE '%"manager":"%';
CREATE INDEX objects_by_manager ON objects (account_id, manager_anchor)
    WHERE manager_anchor IS NOT NULL;
