//! The change log: what each run (or approval, or adoption) did to each
//! object, numbered within the run, written in the transaction that does
//! it.

use std::collections::HashMap;

use dirsync_core::ObjectGuid;
use dirsync_core::change::{self, Before, Change};
use dirsync_core::plan::Plan;

use crate::bulk::{Cell, ROWS_PER_WRITE, Rows};
use crate::claims::by_keys;
use crate::dialect::Dialect;
use crate::row::query;
use crate::{Result, RunRecord, Tx, corrupt, i64_of, json};
use dirsync_core::UnixMillis;

/// Logs a plan's changes; reads the records they replace, so it runs
/// before the plan is applied, in the same transaction.
pub(crate) async fn log_changes<D: Dialect>(
    tx: &mut Tx<'_, D>,
    run: &RunRecord,
    plan: &Plan,
    now: UnixMillis,
) -> Result<()> {
    let anchors: Vec<ObjectGuid> = plan
        .updates
        .iter()
        .map(|u| u.record.anchor)
        .chain(plan.removals.iter().chain(&plan.held).map(|r| r.anchor))
        .collect();
    let before = records_before(tx, &run.account_id, &anchors).await?;
    let start = next_sequence(tx, run).await?;
    insert_changes(tx, run, &change::changes(plan, &before), start, now).await?;
    Ok(())
}

/// The stored records of `anchors`, as a change compares them.
pub(crate) async fn records_before<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    anchors: &[ObjectGuid],
) -> Result<HashMap<ObjectGuid, Before>> {
    let anchors: Vec<String> = anchors.iter().map(ObjectGuid::to_string).collect();
    let rows = by_keys(
        tx,
        "SELECT anchor, record, managed FROM objects WHERE",
        account,
        "anchor",
        &anchors,
    )
    .await?;
    let mut before = HashMap::with_capacity(rows.len());
    for mut r in rows {
        let anchor: String = r.take("anchor")?;
        let record: String = r.take("record")?;
        before.insert(
            anchor.parse().map_err(|e| corrupt("object anchor", e))?,
            Before {
                record: serde_json::from_str(&record)
                    .map_err(|e| corrupt("directory object", e))?,
                managed: r.get("managed")?,
            },
        );
    }
    Ok(before)
}

/// The sequence number of the run's next change-log entry.
pub(crate) async fn next_sequence<D: Dialect>(tx: &mut Tx<'_, D>, run: &RunRecord) -> Result<i64> {
    query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM change_log WHERE run_id = $1")
        .bind(&run.id)
        .fetch_one(tx)
        .await?
        .get("n")
}

/// Logs changes from sequence number `start`; returns the next.
pub(crate) async fn insert_changes<D: Dialect>(
    tx: &mut Tx<'_, D>,
    run: &RunRecord,
    changes: &[Change],
    start: i64,
    now: UnixMillis,
) -> Result<i64> {
    for (i, chunk) in changes.chunks(ROWS_PER_WRITE).enumerate() {
        let mut rows = Rows::new(
            "change_log",
            &[
                "run_id",
                "account_id",
                "sequence",
                "anchor",
                "kind",
                "dn",
                "operation",
                "fields",
                "reason",
                "at",
            ],
        );
        for (n, c) in chunk.iter().enumerate() {
            let sequence = start + i64_of((i * ROWS_PER_WRITE + n) as u64);
            rows.push([
                Cell::from(run.id.as_str()),
                run.account_id.as_str().into(),
                sequence.into(),
                c.anchor.to_string().into(),
                c.kind.as_str().into(),
                c.dn.as_str().into(),
                c.operation.as_str().into(),
                json(&c.fields).into(),
                c.reason.as_str().into(),
                now.into(),
            ]);
        }
        D::insert_rows(&mut **tx, &rows, "").await?;
    }
    Ok(start + i64_of(changes.len() as u64))
}
