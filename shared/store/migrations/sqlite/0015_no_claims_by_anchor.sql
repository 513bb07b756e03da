-- An object's claims are found from the addresses its stored record
-- carries (and the claims' primary key), not by anchor: the index only cost
-- a random-order insert per claim, 3.5 M of them in a million-user sync.
DROP INDEX address_claims_by_anchor;
