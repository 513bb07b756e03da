-- An address more than one object claims: the standing conflicts a run
-- reports are read from these alone, not from every claim.
ALTER TABLE addresses ADD COLUMN contested BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE addresses SET contested = TRUE
    WHERE (SELECT COUNT(*) FROM address_claims c
           WHERE c.account_id = addresses.account_id AND c.address = addresses.address) > 1;
CREATE INDEX addresses_contested ON addresses (account_id) WHERE contested = TRUE;
