-- PostgreSQL only (staged batches compressed with lz4); SQLite stores
-- values as they are.
SELECT 1;
