//! Runs: created queued, started by a collector's attempt, failed, or
//! settled by their apply (see `apply`); the scheduler's and the
//! reconciler's looks at them.

use dirsync_core::{RunCounts, RunKind, RunState, Trigger, UnixMillis};

use crate::dialect::Dialect;
use crate::row::{Row, query};
use crate::{Result, RunRecord, SettledMark, StoreError};
use crate::{corrupt, u64_of};

type Pool<D> = sqlx::Pool<D>;

/// A run as a row of `runs` holds it.
pub(crate) fn run_of(mut r: Row) -> Result<RunRecord> {
    let kind: String = r.take("kind")?;
    let state: String = r.take("state")?;
    let trigger: String = r.take("trigger")?;
    let attempt: i64 = r.get("attempt")?;
    let warnings: String = r.take("warnings")?;
    let count = |r: &Row, column: &str| r.get::<i64>(column).map(u64_of);
    Ok(RunRecord {
        kind: RunKind::parse(&kind).ok_or_else(|| corrupt("run kind", &kind))?,
        state: RunState::parse(&state).ok_or_else(|| corrupt("run state", &state))?,
        trigger: Trigger::parse(&trigger).ok_or_else(|| corrupt("run trigger", &trigger))?,
        attempt: u32::try_from(attempt).map_err(|e| corrupt("run attempt", e))?,
        warnings: serde_json::from_str(&warnings).map_err(|e| corrupt("run warnings", e))?,
        counts: RunCounts {
            collected: count(&r, "collected")?,
            added: count(&r, "added")?,
            updated: count(&r, "updated")?,
            removed: count(&r, "removed")?,
            unchanged: count(&r, "unchanged")?,
            pending: count(&r, "pending")?,
        },
        full_reason: r.take("full_reason")?,
        hold_reason: r.take("hold_reason")?,
        slot: r.take("slot")?,
        id: r.take("id")?,
        account_id: r.take("account_id")?,
        integration_id: r.take("integration_id")?,
        host: r.take("host")?,
        error: r.take("error")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
    })
}

fn runs_of(rows: Vec<Row>) -> Result<Vec<RunRecord>> {
    rows.into_iter().map(run_of).collect()
}

pub(crate) async fn create_run<D: Dialect>(pool: &Pool<D>, run: &RunRecord) -> Result<()> {
    query(
        "INSERT INTO runs (id, account_id, integration_id, state, trigger, attempt, created_at, \
         slot, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&run.id)
    .bind(&run.account_id)
    .bind(&run.integration_id)
    .bind(run.state.as_str())
    .bind(run.trigger.as_str())
    .bind(i64::from(run.attempt))
    .bind(run.created_at)
    .bind(run.slot.as_ref())
    .bind(run.kind.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn get_run<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    run_id: &str,
) -> Result<RunRecord> {
    let row = query("SELECT * FROM runs WHERE account_id = $1 AND id = $2")
        .bind(account_id)
        .bind(run_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {run_id:?}")))?;
    run_of(row)
}

pub(crate) async fn list_runs<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
    limit: u32,
) -> Result<Vec<RunRecord>> {
    runs_of(
        query(
            "SELECT * FROM runs WHERE account_id = $1 AND integration_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(integration_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(pool)
        .await?,
    )
}

pub(crate) async fn active_run<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
) -> Result<Option<RunRecord>> {
    query(
        "SELECT * FROM runs WHERE account_id = $1 AND integration_id = $2 \
         AND state IN ('queued', 'collecting', 'reconciling') \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(account_id)
    .bind(integration_id)
    .fetch_optional(pool)
    .await?
    .map(run_of)
    .transpose()
}

pub(crate) async fn last_success<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
) -> Result<Option<RunRecord>> {
    query(
        "SELECT * FROM runs WHERE account_id = $1 AND integration_id = $2 \
         AND state = 'succeeded' AND trigger <> 'preview' \
         ORDER BY finished_at DESC LIMIT 1",
    )
    .bind(account_id)
    .bind(integration_id)
    .fetch_optional(pool)
    .await?
    .map(run_of)
    .transpose()
}

pub(crate) async fn run_started<D: Dialect>(
    pool: &Pool<D>,
    run_id: &str,
    attempt: u32,
    host: &str,
    now: UnixMillis,
) -> Result<bool> {
    let started = query(
        "UPDATE runs SET state = 'collecting', attempt = $2, host = $3, \
         started_at = COALESCE(started_at, $4) \
         WHERE id = $1 AND attempt <= $2 AND state IN ('queued', 'collecting', 'reconciling')",
    )
    .bind(run_id)
    .bind(i64::from(attempt))
    .bind(host)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(started == 1)
}

/// Fails the run at `attempt` unless it is settled or a later attempt
/// began, and drops its staged batches, in one transaction.
pub(crate) async fn fail_run<D: Dialect>(
    pool: &Pool<D>,
    run_id: &str,
    attempt: u32,
    error: &str,
    now: UnixMillis,
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let failed = query(
        "UPDATE runs SET state = 'failed', error = $3, finished_at = $4, \
         attempt = CASE WHEN attempt < $2 THEN $2 ELSE attempt END \
         WHERE id = $1 AND attempt <= $2 AND state IN ('queued', 'collecting', 'reconciling')",
    )
    .bind(run_id)
    .bind(i64::from(attempt))
    .bind(error)
    .bind(now)
    .execute(&mut tx)
    .await?;
    query("DELETE FROM staged_batches WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(failed == 1)
}

pub(crate) async fn fail_stuck_runs<D: Dialect>(
    pool: &Pool<D>,
    before: UnixMillis,
    reason: &str,
    now: UnixMillis,
) -> Result<Vec<String>> {
    let ids = query(
        "UPDATE runs SET state = 'failed', error = $2, finished_at = $3 \
         WHERE state IN ('queued', 'collecting', 'reconciling') AND created_at < $1 RETURNING id",
    )
    .bind(before)
    .bind(reason)
    .bind(now)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|mut r| r.take("id"))
    .collect::<Result<Vec<String>>>()?;
    for id in &ids {
        query("DELETE FROM staged_batches WHERE run_id = $1")
            .bind(id)
            .execute(pool)
            .await?;
    }
    Ok(ids)
}

pub(crate) async fn settled_mark<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    run_id: &str,
) -> Result<SettledMark> {
    let row = query(
        "SELECT CAST(COUNT(finished_at) AS BIGINT) AS settled, \
         CAST(COALESCE(MAX(finished_at), 0) AS BIGINT) AS latest, \
         CAST(COUNT(CASE WHEN state = 'blocked' THEN 1 END) AS BIGINT) AS blocked \
         FROM runs WHERE account_id = $1 AND id <> $2",
    )
    .bind(account_id)
    .bind(run_id)
    .fetch_one(pool)
    .await?;
    Ok(SettledMark {
        settled: row.get("settled")?,
        latest: row.get("latest")?,
        blocked: row.get("blocked")?,
    })
}
