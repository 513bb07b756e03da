-- SQLite's index by kind takes the primary address for the console's
-- search (see its 0019). PostgreSQL scans the objects of a kind in
-- parallel within the target and keeps its index as it is.
SELECT 1;
