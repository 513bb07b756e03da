-- An address's owner is marked on its best claim instead of being copied
-- into a second table: an address one object claims (nearly all of them)
-- is one row, not two. `contested` is set on the owner's claim when other
-- objects claim the address too; the standing conflicts a run reports are
-- read from those alone.
ALTER TABLE address_claims ADD COLUMN owner BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE address_claims ADD COLUMN contested BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE address_claims SET owner = TRUE, contested = (
        SELECT a.contested FROM addresses a
        WHERE a.account_id = address_claims.account_id AND a.address = address_claims.address
          AND a.anchor = address_claims.anchor)
    WHERE EXISTS (
        SELECT 1 FROM addresses a
        WHERE a.account_id = address_claims.account_id AND a.address = address_claims.address
          AND a.anchor = address_claims.anchor);
CREATE INDEX address_claims_contested ON address_claims (account_id) WHERE owner AND contested;
DROP TABLE addresses;
