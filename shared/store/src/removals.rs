//! Objects leaving the directory: deleted, or demoted (kept, unmanaged)
//! by a run, by an admin's approval of the removals the deletion guard
//! held, or by an integration's deletion; their addresses go to the best
//! remaining claims.

use std::collections::{HashMap, HashSet};

use dirsync_core::change::Before;
use dirsync_core::plan::{Plan, Removal, RemovalAction};
use dirsync_core::{ObjectGuid, ObjectKind, RunState, UnixMillis};

use crate::bulk::ROWS_PER_WRITE;
use crate::changes::log_changes;
use crate::claims::{
    CHUNK, by_claim_keys, by_keys, claims_of, delete_claims, owns_addresses, resolve_addresses,
};
use crate::claims::{ClaimKey, start_touched, touch};
use crate::dialect::Dialect;
use crate::directory::object_of;
use crate::row::{Row, query};
use crate::{Result, RunRecord, StoreError, StoredObject, Tx, corrupt, i64_of, runs};

type Pool<D> = sqlx::Pool<D>;

pub(crate) fn action_str(a: RemovalAction) -> &'static str {
    match a {
        RemovalAction::Delete => "delete",
        RemovalAction::Demote => "demote",
    }
}

/// A removal as a row of `pending_removals` holds it (anchor, kind,
/// action, reason).
fn removal_of(r: &mut Row) -> Result<Removal> {
    let anchor: String = r.take("anchor")?;
    let kind: String = r.take("kind")?;
    let action: String = r.take("action")?;
    Ok(Removal {
        anchor: anchor.parse().map_err(|e| corrupt("pending anchor", e))?,
        kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt("pending kind", &kind))?,
        action: match action.as_str() {
            "delete" => RemovalAction::Delete,
            "demote" => RemovalAction::Demote,
            other => return Err(corrupt("pending action", other)),
        },
        reason: r.take("reason")?,
    })
}

/// Deletes or demotes objects; part of the caller's transaction. Their
/// addresses go to `touched_addresses`. `known`: stored records the caller
/// already read.
pub(crate) async fn remove<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    removals: &[Removal],
    known: &HashMap<ObjectGuid, Before>,
    now: UnixMillis,
) -> Result<()> {
    // A chunk of objects at a time: a large removal (an integration's
    // deletion) never holds all their claims.
    for chunk in removals.chunks(ROWS_PER_WRITE) {
        let anchors: Vec<String> = chunk.iter().map(|r| r.anchor.to_string()).collect();
        let claims = claims_of(tx, account, &anchors, known).await?;
        touch(tx, &claims).await?;
        let deleted: HashSet<String> = chunk
            .iter()
            .filter(|r| r.action == RemovalAction::Delete)
            .map(|r| r.anchor.to_string())
            .collect();
        let (gone, demoted): (Vec<ClaimKey>, Vec<ClaimKey>) = claims
            .into_keys()
            .partition(|(anchor, _)| deleted.contains(anchor));
        delete_claims(tx, account, &gone).await?;
        // A demoted object's claims rank after every managed claim.
        by_claim_keys(
            tx,
            "UPDATE address_claims SET claim_rank = '1' || substr(claim_rank, 2) WHERE",
            account,
            &demoted,
        )
        .await?;
    }
    let (deleted, demoted): (Vec<&Removal>, Vec<&Removal>) = removals
        .iter()
        .partition(|r| r.action == RemovalAction::Delete);
    let demoted: Vec<String> = demoted.iter().map(|r| r.anchor.to_string()).collect();
    for chunk in demoted.chunks(CHUNK) {
        query("UPDATE objects SET managed = FALSE, updated_at = ")
            .push_bind(now)
            .push(" WHERE account_id = ")
            .push_bind(account)
            .push(" AND anchor")
            .push_in(chunk)
            .execute(&mut *tx)
            .await?;
    }
    let deleted: Vec<String> = deleted.iter().map(|r| r.anchor.to_string()).collect();
    by_keys(tx, "DELETE FROM objects WHERE", account, "anchor", &deleted).await?;
    // Their member edges, as a group and as a member.
    for column in ["group_anchor", "member_anchor"] {
        by_keys(tx, "DELETE FROM members WHERE", account, column, &deleted).await?;
    }
    Ok(())
}

/// Removes objects outside a sync run (an approval, a deleted integration)
/// and gives their addresses to the best remaining claims.
async fn remove_and_resolve<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    removals: &[Removal],
    now: UnixMillis,
) -> Result<()> {
    start_touched(tx).await?;
    remove(tx, account, removals, &HashMap::new(), now).await?;
    let owned_before = owns_addresses(tx, account).await?;
    resolve_addresses(
        tx,
        account,
        owned_before,
        owned_before,
        &HashSet::new(),
        &mut Vec::new(),
    )
    .await
}

/// Deletes an integration with its runs, staged batches and cursors; its
/// objects stay, unmanaged.
pub(crate) async fn delete_integration<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    id: &str,
    now: UnixMillis,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    D::lock_account(&mut tx, account_id).await?;
    let done = query("DELETE FROM integrations WHERE account_id = $1 AND id = $2")
        .bind(account_id)
        .bind(id)
        .execute(&mut tx)
        .await?;
    if done == 0 {
        return Err(StoreError::NotFound(format!("integration {id:?}")));
    }
    for sql in [
        "DELETE FROM staged_batches WHERE run_id IN \
         (SELECT id FROM runs WHERE account_id = $1 AND integration_id = $2)",
        "DELETE FROM sync_cursors WHERE account_id = $1 AND integration_id = $2",
        "DELETE FROM runs WHERE account_id = $1 AND integration_id = $2",
    ] {
        query(sql)
            .bind(account_id)
            .bind(id)
            .execute(&mut tx)
            .await?;
    }
    // Its objects stay, unmanaged; their addresses go to the best
    // remaining claims.
    let rows = query(
        "SELECT anchor, kind FROM objects WHERE account_id = $1 AND integration_id = $2 AND managed = TRUE",
    )
    .bind(account_id)
    .bind(id)
    .fetch_all(&mut tx)
    .await?;
    let demoted = rows
        .into_iter()
        .map(|mut r| {
            let anchor: String = r.take("anchor")?;
            let kind: String = r.take("kind")?;
            Ok(Removal {
                anchor: anchor.parse().map_err(|e| corrupt("object anchor", e))?,
                kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt("object kind", &kind))?,
                action: RemovalAction::Demote,
                reason: "the integration was deleted".to_owned(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    remove_and_resolve(&mut tx, account_id, &demoted, now).await?;
    tx.commit().await?;
    Ok(())
}

/// The removals a blocked run holds, with the objects they would remove
/// (none where one is gone meanwhile).
pub(crate) async fn pending_removals<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    run_id: &str,
) -> Result<Vec<(Removal, Option<StoredObject>)>> {
    let rows = query(
        "SELECT p.anchor, p.kind, p.action, p.reason, o.integration_id, o.record, o.managed \
         FROM pending_removals p LEFT JOIN objects o \
         ON o.account_id = p.account_id AND o.anchor = p.anchor \
         WHERE p.account_id = $1 AND p.run_id = $2 ORDER BY o.display_name, p.anchor",
    )
    .bind(account_id)
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|mut r| {
            let removal = removal_of(&mut r)?;
            let object = match r.get::<Option<String>>("record")? {
                Some(_) => Some(object_of(r)?),
                None => None,
            };
            Ok((removal, object))
        })
        .collect()
}

/// Carries out the removals a blocked run holds, when `expected` (if
/// given) is how many it holds and no later run of its integration
/// superseded it; the run then succeeds.
pub(crate) async fn approve_removals<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    run_id: &str,
    expected: Option<u64>,
    now: UnixMillis,
) -> Result<RunRecord> {
    let run = runs::get_run(pool, account_id, run_id).await?;
    if run.state != RunState::Blocked {
        return Err(StoreError::Precondition(format!(
            "run {run_id} is {}, not blocked: it holds no removals to approve",
            run.state.as_str()
        )));
    }
    let mut tx = pool.begin().await?;
    D::lock_account(&mut tx, account_id).await?;
    let later = query(
        "SELECT id FROM runs WHERE integration_id = $1 AND id <> $2 \
         AND (created_at > $3 OR (created_at = $3 AND id > $2)) LIMIT 1",
    )
    .bind(&run.integration_id)
    .bind(run_id)
    .bind(run.created_at)
    .fetch_optional(&mut tx)
    .await?;
    if later.is_some() {
        return Err(StoreError::Precondition(format!(
            "run {run_id} was superseded by a later run of its integration; approve the latest blocked run instead"
        )));
    }
    let held = query(
        "SELECT anchor, kind, action, reason FROM pending_removals WHERE run_id = $1 AND account_id = $2",
    )
    .bind(run_id)
    .bind(account_id)
    .fetch_all(&mut tx)
    .await?
    .iter_mut()
    .map(removal_of)
    .collect::<Result<Vec<_>>>()?;
    if let Some(n) = expected
        && n != held.len() as u64
    {
        return Err(StoreError::Precondition(format!(
            "run {run_id} holds {} removals, not {n}; review them again before approving",
            held.len()
        )));
    }
    // Only objects still managed by the run's integration.
    let anchors: Vec<String> = held.iter().map(|r| r.anchor.to_string()).collect();
    let mut still = HashSet::new();
    for chunk in anchors.chunks(CHUNK) {
        let rows = query("SELECT anchor FROM objects WHERE integration_id = ")
            .push_bind(&run.integration_id)
            .push(" AND managed = TRUE AND account_id = ")
            .push_bind(account_id)
            .push(" AND anchor")
            .push_in(chunk)
            .fetch_all(&mut tx)
            .await?;
        for mut r in rows {
            still.insert(r.take::<String>("anchor")?);
        }
    }
    let removals: Vec<Removal> = held
        .into_iter()
        .filter(|r| still.contains(&r.anchor.to_string()))
        .collect();
    let approved = Plan {
        removals: removals
            .iter()
            .map(|r| Removal {
                reason: format!("approved by an admin: {}", r.reason),
                ..r.clone()
            })
            .collect(),
        ..Plan::default()
    };
    log_changes(&mut tx, &run, &approved, now).await?;
    remove_and_resolve(&mut tx, account_id, &removals, now).await?;
    let done = query(
        "UPDATE runs SET state = 'succeeded', removed = removed + $2, pending = 0 \
         WHERE id = $1 AND state = 'blocked'",
    )
    .bind(run_id)
    .bind(i64_of(removals.len() as u64))
    .execute(&mut tx)
    .await?;
    if done != 1 {
        return Err(StoreError::Precondition(format!(
            "run {run_id} was settled concurrently"
        )));
    }
    query("DELETE FROM pending_removals WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    runs::get_run(pool, account_id, run_id).await
}
