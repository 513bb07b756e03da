//! Staged batches: a run's collection, kept as the bytes each batch
//! arrived as until the run settles. PostgreSQL keeps them in an unlogged
//! table (no WAL), which a server crash empties: [`restarted_since`] tells.

use dirsync_core::UnixMillis;

use crate::dialect::Dialect;
use crate::row::query;
use crate::{Result, StagedBatch, StoreError};
use crate::{i64_of, u64_of};

type Pool<D> = sqlx::Pool<D>;

pub(crate) async fn stage_batch<D: Dialect>(
    pool: &Pool<D>,
    run_id: &str,
    attempt: u32,
    sequence: u32,
    entries: u64,
    payload: &[u8],
    lz4: bool,
) -> Result<()> {
    query(
        "INSERT INTO staged_batches (run_id, attempt, sequence, entries, payload, lz4) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, attempt, sequence) DO NOTHING",
    )
    .bind(run_id)
    .bind(i64::from(attempt))
    .bind(i64::from(sequence))
    .bind(i64_of(entries))
    .bind(payload)
    .bind(lz4)
    .execute(pool)
    .await?;
    Ok(())
}

/// (batches, entries) staged for the attempt.
pub(crate) async fn staged_totals<D: Dialect>(
    pool: &Pool<D>,
    run_id: &str,
    attempt: u32,
) -> Result<(u64, u64)> {
    let row = query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS batches, \
         CAST(COALESCE(SUM(entries), 0) AS BIGINT) AS entries \
         FROM staged_batches WHERE run_id = $1 AND attempt = $2",
    )
    .bind(run_id)
    .bind(i64::from(attempt))
    .fetch_one(pool)
    .await?;
    let count = |column: &str| row.get::<i64>(column).map(u64_of);
    Ok((count("batches")?, count("entries")?))
}

pub(crate) async fn staged_batches<D: Dialect>(
    pool: &Pool<D>,
    run_id: &str,
    attempt: u32,
    from: u32,
    limit: u32,
) -> Result<Vec<StagedBatch>> {
    query(
        "SELECT sequence, payload, lz4 FROM staged_batches WHERE run_id = $1 AND attempt = $2 \
         AND sequence >= $3 ORDER BY sequence LIMIT $4",
    )
    .bind(run_id)
    .bind(i64::from(attempt))
    .bind(i64::from(from))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|mut r| {
        let sequence: i64 = r.get("sequence")?;
        let sequence = u32::try_from(sequence)
            .map_err(|_| StoreError::Corrupt(format!("batch sequence: {sequence}")))?;
        Ok(StagedBatch {
            sequence,
            payload: r.take("payload")?,
            lz4: r.get("lz4")?,
        })
    })
    .collect()
}

/// Whether the database server started after `at` (and lost staging).
pub(crate) async fn restarted_since<D: Dialect>(pool: &Pool<D>, at: UnixMillis) -> Result<bool> {
    let mut conn = pool.acquire().await?;
    let started = D::started_at(&mut conn).await?;
    Ok(started.is_some_and(|started| started > at))
}
