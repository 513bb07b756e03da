-- Every object's claim on each of its addresses. The addresses table holds,
-- per address, the best claim (the lowest rank): when the owner drops an
-- address, the next claim takes it in the same transaction.
CREATE TABLE address_claims (
    account_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    anchor      TEXT NOT NULL,
    is_primary  BOOLEAN NOT NULL,
    claim_rank  TEXT NOT NULL,
    PRIMARY KEY (account_id, address, anchor)
);
CREATE INDEX address_claims_by_anchor ON address_claims (account_id, anchor);
INSERT INTO address_claims (account_id, address, anchor, is_primary, claim_rank)
    SELECT account_id, address, anchor, is_primary, claim_rank FROM addresses;
