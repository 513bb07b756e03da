-- PostgreSQL only (staged batches written without WAL); nothing to do here.
SELECT 1;
