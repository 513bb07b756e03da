-- Nothing reads an account's addresses by anchor (an object's addresses are
-- its claims, read by anchor from address_claims): the index only cost a
-- random-order insert per address, 3.5 M of them in a million-user sync.
DROP INDEX addresses_by_anchor;
