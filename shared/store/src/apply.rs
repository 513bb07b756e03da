//! A run's apply: one transaction that claims the run, writes its adds and
//! updates as they are planned, then its removals, works out the owners of
//! the addresses it touched, and settles the run (see [`crate::Apply`]).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use dirsync_core::change::{self, Before};
use dirsync_core::plan::{Hold, Plan, Upsert, claim_rank};
use dirsync_core::{
    Clock, ObjectGuid, ObjectKind, ObjectRecord, RunCounts, RunState, ShortHash, Trigger,
    UnixMillis,
};

use crate::Apply as _;
use crate::bulk::{Cell, ROWS_PER_WRITE, Rows};
use crate::changes::{insert_changes, next_sequence, records_before};
use crate::claims::{
    CHUNK, by_keys, claims_of, delete_claims, owns_addresses, resolve_addresses, start_touched,
    touch,
};
use crate::dialect::Dialect;
use crate::removals::{action_str, remove};
use crate::row::query;
use crate::sieve::AddressSieve;
use crate::{ApplyOutcome, CursorRecord, Result, RunRecord, Tx, i64_of, json};

type Pool<D> = sqlx::Pool<D>;

/// Objects written by one apply beyond which the database's statistics
/// are refreshed within it.
const ANALYZE_AFTER: usize = 5_000;

/// Entry digests brought up to date per statement (two binds each).
const DIGESTS_PER_WRITE: usize = 5_000;

/// A run's apply in progress.
pub struct SqlApply<D: Dialect> {
    tx: Tx<'static, D>,
    run: RunRecord,
    now: UnixMillis,
    /// A preview run logs its changes and writes nothing else.
    preview: bool,
    integration_created_at: i64,
    /// Whether the account owned addresses before the run: only then can
    /// an address change hands, and a takeover be reported.
    owned_before: bool,
    /// Objects the run wrote, for takeover warnings (when `owned_before`).
    upserted: HashSet<ObjectGuid>,
    /// The addresses the run may claim twice (when not `owned_before`).
    sieve: AddressSieve,
    /// Objects the run wrote.
    written: usize,
    /// The run's next change-log sequence number.
    sequence: i64,
    added: u64,
    updated: u64,
    warnings: Vec<String>,
}

/// Opens `run`'s apply, or `None` when the run is settled or superseded
/// (claimed by a later attempt).
pub(crate) async fn begin_apply<D: Dialect>(
    pool: &Pool<D>,
    run: &RunRecord,
    now: UnixMillis,
) -> Result<Option<Box<dyn crate::Apply>>> {
    let mut tx = pool.begin().await?;
    let preview = run.trigger == Trigger::Preview;
    if !preview {
        // Who owns an address is worked out from every claim of the
        // account, so two integrations' applies (or an approval, or an
        // integration's deletion) take turns.
        D::lock_account(&mut tx, &run.account_id).await?;
        D::prepare_large_reads(&mut tx).await?;
    }
    // Claim the run: only an unsettled run at this attempt applies.
    if !claim(&mut tx, run).await? {
        return Ok(None);
    }
    let integration_created_at = query("SELECT created_at FROM integrations WHERE id = $1")
        .bind(&run.integration_id)
        .fetch_optional(&mut tx)
        .await?
        .map(|r| r.get::<i64>("created_at"))
        .transpose()?
        .unwrap_or(i64::MAX);
    // Takeovers need addresses owned before: none on a first sync, and a
    // preview takes nothing over.
    let owned_before = !preview && owns_addresses(&mut tx, &run.account_id).await?;
    if !preview {
        // The claims of every changing object go first; the owner of each
        // address they touch is worked out once, at the end.
        start_touched(&mut tx).await?;
    }
    let sequence = next_sequence(&mut tx, run).await?;
    Ok(Some(Box::new(SqlApply::<D> {
        tx,
        run: run.clone(),
        now,
        preview,
        integration_created_at,
        owned_before,
        upserted: HashSet::new(),
        sieve: AddressSieve::default(),
        written: 0,
        sequence,
        added: 0,
        updated: 0,
        warnings: Vec::new(),
    })))
}

/// Claims an unsettled run at this attempt for applying; false when it is
/// settled or superseded.
async fn claim<D: Dialect>(tx: &mut Tx<'_, D>, run: &RunRecord) -> Result<bool> {
    let claimed = query(
        "UPDATE runs SET state = 'reconciling', attempt = $2 WHERE id = $1 AND attempt <= $2 \
         AND state IN ('queued', 'collecting', 'reconciling')",
    )
    .bind(&run.id)
    .bind(i64::from(run.attempt))
    .execute(tx)
    .await?;
    Ok(claimed == 1)
}

/// Ends the run in `state` with its counts and warnings; its staged
/// batches go.
async fn settle<D: Dialect>(
    tx: &mut Tx<'_, D>,
    run: &RunRecord,
    state: RunState,
    counts: &RunCounts,
    warnings: &[String],
    hold_reason: &str,
    now: UnixMillis,
) -> Result<()> {
    query(
        "UPDATE runs SET state = $9, collected = $2, added = $3, updated = $4, \
         removed = $5, unchanged = $6, warnings = $7, finished_at = $8, \
         pending = $10, hold_reason = $11, kind = $12, full_reason = $13 WHERE id = $1",
    )
    .bind(&run.id)
    .bind(i64_of(counts.collected))
    .bind(i64_of(counts.added))
    .bind(i64_of(counts.updated))
    .bind(i64_of(counts.removed))
    .bind(i64_of(counts.unchanged))
    .bind(json(&warnings))
    .bind(now)
    .bind(state.as_str())
    .bind(i64_of(counts.pending))
    .bind(hold_reason)
    .bind(run.kind.as_str())
    .bind(&run.full_reason)
    .execute(&mut *tx)
    .await?;
    query("DELETE FROM staged_batches WHERE run_id = $1")
        .bind(&run.id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Whether an integration of the account other than `integration` holds
/// objects: two range reads of `objects_by_integration`, however many
/// objects it holds.
async fn others_hold_objects<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    integration: &str,
) -> Result<bool> {
    Ok(query(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM objects WHERE account_id = $1 AND integration_id < $2) \
         OR EXISTS (SELECT 1 FROM objects WHERE account_id = $1 AND integration_id > $2)",
    )
    .bind(account)
    .bind(integration)
    .fetch_optional(tx)
    .await?
    .is_some())
}

/// Whether the database's statistics no longer describe the tables once
/// an apply wrote `written` objects: past [`ANALYZE_AFTER`], and past the
/// database's own threshold (see [`Dialect::statistics_stale`]). A first
/// sync's are stale; a resync that changes 1% of a large directory need
/// not sample millions of rows again.
async fn statistics_stale<D: Dialect>(tx: &mut Tx<'_, D>, written: usize) -> Result<bool> {
    if written < ANALYZE_AFTER {
        return Ok(false);
    }
    D::statistics_stale(&mut **tx, written).await
}

/// The columns of `objects` an apply writes.
const OBJECT_COLUMNS: &[&str] = &[
    "account_id",
    "anchor",
    "integration_id",
    "kind",
    "dn",
    "display_name",
    "primary_address",
    "disabled",
    "managed",
    "record",
    "content_hash",
    "entry_digest",
    "updated_at",
    "manager_anchor",
];

/// What an object the store holds takes of its new row.
const OBJECT_UPDATE: &str = "ON CONFLICT (account_id, anchor) DO UPDATE SET \
     integration_id = excluded.integration_id, kind = excluded.kind, dn = excluded.dn, \
     display_name = excluded.display_name, primary_address = excluded.primary_address, \
     disabled = excluded.disabled, managed = TRUE, record = excluded.record, \
     content_hash = excluded.content_hash, entry_digest = excluded.entry_digest, \
     updated_at = excluded.updated_at, manager_anchor = excluded.manager_anchor";

impl<D: Dialect> SqlApply<D> {
    /// Writes adds and updates: their objects, address claims and member
    /// edges. `stored` names those the store already holds: their edges
    /// are replaced, and of their claims only those that changed (address,
    /// primary or rank) are: the addresses of claims deleted or added go
    /// to `touched_addresses`. The others are not in the store (and no
    /// other apply of the account runs meanwhile: see
    /// [`Dialect::lock_account`]), and are copied in without a conflict
    /// clause. (A first sync's objects are all new: it looks nothing up.)
    /// `known`: stored records already read. With no claim in the account
    /// before (not `owned_before`), only the addresses the sieve flags as
    /// perhaps claimed before go to `touched_addresses`, unless it
    /// overflowed.
    async fn write_upserts(
        &mut self,
        upserts: &[&Upsert],
        stored: &[String],
        known: &HashMap<ObjectGuid, Before>,
    ) -> Result<()> {
        let run = &self.run;
        let tx = &mut self.tx;
        let touch_all = self.owned_before;
        let account = run.account_id.as_str();
        // An apply's claims have one of four ranks: made once.
        let ranks = [false, true].map(|is_primary| {
            [false, true].map(|disabled| {
                claim_rank(
                    is_primary,
                    disabled,
                    self.integration_created_at,
                    &run.integration_id,
                )
            })
        });
        let rank = |rec: &ObjectRecord, is_primary: bool| {
            ranks[usize::from(is_primary)][usize::from(rec.disabled)].as_str()
        };
        // The stored objects' claims that stay as they are; the others are
        // deleted, their addresses (and owners) noted.
        let mut previous = claims_of(tx, account, stored, known).await?;
        let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
        let mut kept_claims: HashSet<(String, String)> = HashSet::new();
        for upsert in upserts {
            let rec = &upsert.record;
            let anchor = rec.anchor.to_string();
            if !stored.contains(anchor.as_str()) {
                continue;
            }
            for (address, is_primary) in rec.addresses() {
                let key = (anchor.clone(), address.to_string());
                if previous
                    .get(&key)
                    .is_some_and(|(p, r, _)| *p == is_primary && *r == rank(rec, is_primary))
                {
                    previous.remove(&key);
                    kept_claims.insert(key);
                }
            }
        }
        touch(tx, &previous).await?;
        let gone: Vec<(String, String)> = previous.into_keys().collect();
        delete_claims(tx, account, &gone).await?;
        for chunk in upserts.chunks(ROWS_PER_WRITE) {
            // Objects the store holds are updated in place; the others are
            // copied in as they are (a first sync's, all of them).
            let mut objects = Rows::new("objects", OBJECT_COLUMNS);
            let mut fresh = Rows::new("objects", OBJECT_COLUMNS);
            let mut claims = Rows::new(
                "address_claims",
                &[
                    "account_id",
                    "address",
                    "anchor",
                    "is_primary",
                    "claim_rank",
                    "owner",
                ],
            );
            let mut touched = Rows::new("touched_addresses", &["address"]);
            let mut edges = Rows::new("members", &["account_id", "group_anchor", "member_anchor"]);
            let mut groups = Vec::new();
            for upsert in chunk {
                let rec = &upsert.record;
                let anchor = rec.anchor.to_string();
                let held = stored.contains(anchor.as_str());
                (if held { &mut objects } else { &mut fresh }).push([
                    Cell::from(account),
                    anchor.clone().into(),
                    run.integration_id.as_str().into(),
                    rec.kind.as_str().into(),
                    rec.dn.as_str().into(),
                    rec.attributes.display_name.as_str().into(),
                    rec.primary_address.as_ref().map(|a| a.to_string()).into(),
                    rec.disabled.into(),
                    true.into(),
                    upsert.json.as_str().into(),
                    upsert.content_hash.to_string().into(),
                    upsert.entry_digest.map(|d| d.to_string()).into(),
                    self.now.into(),
                    rec.manager.map(|m| m.to_string()).into(),
                ]);
                for (address, is_primary) in rec.addresses() {
                    let address = address.to_string();
                    if held && kept_claims.contains(&(anchor.clone(), address.clone())) {
                        continue;
                    }
                    let rank = rank(rec, is_primary);
                    if touch_all || (self.sieve.seen_before(&address) && !self.sieve.overflowed()) {
                        touched.push([Cell::from(address.clone())]);
                    }
                    // With no claim in the account before (not
                    // `touch_all`), each is written as its address's owner
                    // and only addresses several objects claim are
                    // resolved; otherwise resolving marks the owners.
                    claims.push([
                        Cell::from(account),
                        address.into(),
                        anchor.clone().into(),
                        is_primary.into(),
                        rank.into(),
                        (!touch_all).into(),
                    ]);
                }
                if rec.kind == ObjectKind::Group {
                    for m in &rec.members {
                        edges.push([
                            Cell::from(account),
                            anchor.clone().into(),
                            m.to_string().into(),
                        ]);
                    }
                    if held {
                        groups.push(anchor);
                    }
                }
            }
            D::insert_rows(&mut **tx, &objects, OBJECT_UPDATE).await?;
            D::insert_rows(&mut **tx, &fresh, "").await?;
            // The claims these objects still hold are the unchanged ones,
            // skipped above, and an object claims an address once: copied
            // in as they are.
            D::insert_rows(&mut **tx, &claims, "").await?;
            D::insert_rows(&mut **tx, &touched, "").await?;
            by_keys(
                tx,
                "DELETE FROM members WHERE",
                account,
                "group_anchor",
                &groups,
            )
            .await?;
            // The groups' edges were deleted above and a record's members
            // are distinct.
            D::insert_rows(&mut **tx, &edges, "").await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> crate::Apply for SqlApply<D> {
    async fn upserts(&mut self, adds: &[Upsert], updates: &[Upsert]) -> Result<()> {
        let account = self.run.account_id.clone();
        // An object another integration of the account manages
        // (overlapping Root DNs) stays with it: the integration that
        // synced it first keeps it, so runs never take it back and forth.
        let mut kept: Vec<&Upsert> = adds.iter().collect();
        // The objects the store already holds: every update, and adds of
        // objects another integration synced.
        let mut stored: Vec<String> = updates
            .iter()
            .map(|u| u.record.anchor.to_string())
            .collect();
        // Asked per call, not per anchor: with no other integration
        // holding objects in the account (the usual case), an add is an
        // object the store does not hold, and a first sync of a million
        // objects looks none of them up.
        if !self.preview
            && !adds.is_empty()
            && others_hold_objects(&mut self.tx, &account, &self.run.integration_id).await?
        {
            let add_anchors: Vec<String> =
                adds.iter().map(|u| u.record.anchor.to_string()).collect();
            let mut owners: HashMap<String, String> = HashMap::new();
            for chunk in add_anchors.chunks(CHUNK) {
                // LEFT JOIN: the objects of a deleted integration stay,
                // unmanaged, under its id; they are held, and taken over.
                let rows = query(
                    "SELECT o.anchor, o.managed, o.integration_id, i.name FROM objects o \
                     LEFT JOIN integrations i ON i.id = o.integration_id WHERE o.account_id = ",
                )
                .push_bind(&account)
                .push(" AND o.anchor")
                .push_in(chunk)
                .fetch_all(&mut self.tx)
                .await?;
                for mut r in rows {
                    let anchor: String = r.take("anchor")?;
                    let integration: String = r.take("integration_id")?;
                    if r.get("managed")? && integration != self.run.integration_id {
                        let name: Option<String> = r.take("name")?;
                        owners.insert(anchor, name.unwrap_or(integration));
                    } else {
                        stored.push(anchor);
                    }
                }
            }
            if !owners.is_empty() {
                kept.retain(|u| match owners.get(&u.record.anchor.to_string()) {
                    Some(owner) => {
                        self.warnings.push(format!(
                            "{}: already synced by the integration {owner:?} (overlapping Root DNs); left to it",
                            u.record.dn
                        ));
                        false
                    }
                    None => true,
                });
            }
        }
        let update_anchors: Vec<ObjectGuid> = updates.iter().map(|u| u.record.anchor).collect();
        let before = records_before(&mut self.tx, &account, &update_anchors).await?;
        let changes = change::upsert_changes(kept.iter().copied(), updates, &before);
        self.sequence =
            insert_changes(&mut self.tx, &self.run, &changes, self.sequence, self.now).await?;
        self.added += kept.len() as u64;
        self.updated += updates.len() as u64;
        if self.preview {
            return Ok(());
        }
        kept.extend(updates);
        if self.owned_before {
            self.upserted.extend(kept.iter().map(|u| u.record.anchor));
        }
        self.written += kept.len();
        self.write_upserts(&kept, &stored, &before).await
    }

    async fn entry_digests(&mut self, digests: &[(ObjectGuid, Option<ShortHash>)]) -> Result<()> {
        if self.preview {
            return Ok(());
        }
        // (anchor, digest) pairs, two binds each, then the account and the
        // integration.
        for chunk in digests.chunks(DIGESTS_PER_WRITE) {
            let mut q = query("UPDATE objects SET entry_digest = v.column2 FROM (VALUES ");
            for (i, (anchor, digest)) in chunk.iter().enumerate() {
                q = q
                    .push(if i == 0 { "(" } else { ", (" })
                    .push_bind(anchor.to_string())
                    .push(", ")
                    .push_bind(digest.map(|d| d.to_string()))
                    .push(")");
            }
            q.push(") AS v WHERE objects.account_id = ")
                .push_bind(&self.run.account_id)
                .push(" AND objects.anchor = v.column1 AND objects.integration_id = ")
                .push_bind(&self.run.integration_id)
                .execute(&mut self.tx)
                .await?;
        }
        Ok(())
    }

    async fn set_cursor(&mut self, cursor: &CursorRecord, full: bool) -> Result<()> {
        if self.preview {
            return Ok(());
        }
        if full {
            query("DELETE FROM sync_cursors WHERE account_id = $1 AND integration_id = $2")
                .bind(&self.run.account_id)
                .bind(&self.run.integration_id)
                .execute(&mut self.tx)
                .await?;
        }
        query(
            "INSERT INTO sync_cursors (account_id, integration_id, source, server, value, run_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (integration_id, source, server) DO UPDATE SET \
             value = excluded.value, run_id = excluded.run_id, updated_at = excluded.updated_at",
        )
        .bind(&self.run.account_id)
        .bind(&self.run.integration_id)
        .bind(&cursor.source)
        .bind(&cursor.server)
        .bind(&cursor.value)
        .bind(&cursor.run_id)
        .bind(cursor.updated_at)
        .execute(&mut self.tx)
        .await?;
        Ok(())
    }

    async fn finish(
        self: Box<Self>,
        plan: &Plan,
        collected: u64,
        clock: &dyn Clock,
    ) -> Result<ApplyOutcome> {
        let mut this = *self;
        let account = this.run.account_id.clone();
        let leaving: Vec<ObjectGuid> = plan
            .removals
            .iter()
            .chain(&plan.held)
            .map(|r| r.anchor)
            .collect();
        let before = records_before(&mut this.tx, &account, &leaving).await?;
        let changes = change::removal_changes(plan, &before);
        insert_changes(&mut this.tx, &this.run, &changes, this.sequence, this.now).await?;
        let blocked = matches!(plan.hold, Some(Hold::Guard { .. }));
        let counts = RunCounts {
            collected,
            added: this.added,
            updated: this.updated,
            removed: plan.removals.len() as u64,
            unchanged: plan.unchanged,
            // Nothing waits for approval after a preview.
            pending: if blocked && !this.preview {
                plan.held.len() as u64
            } else {
                0
            },
        };
        let mut warnings = plan.warnings.clone();
        warnings.append(&mut this.warnings);
        let hold_reason = plan.hold.as_ref().map(Hold::describe).unwrap_or_default();
        let state = if this.preview {
            RunState::Succeeded
        } else {
            this.apply_rest(plan, blocked, &before, &mut warnings)
                .await?;
            if blocked {
                RunState::Blocked
            } else {
                RunState::Succeeded
            }
        };
        settle(
            &mut this.tx,
            &this.run,
            state,
            &counts,
            &warnings,
            &hold_reason,
            clock.now(),
        )
        .await?;
        this.tx.commit().await?;
        Ok(ApplyOutcome::Applied { counts, warnings })
    }
}

impl<D: Dialect> SqlApply<D> {
    /// The plan's removals (or, `blocked`, those held for approval), the
    /// owners of the addresses the run touched, the standing conflicts
    /// (added to `warnings`), the entry digests and context: all a preview
    /// does not write.
    async fn apply_rest(
        &mut self,
        plan: &Plan,
        blocked: bool,
        before: &HashMap<ObjectGuid, Before>,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let account = self.run.account_id.clone();
        remove(&mut self.tx, &account, &plan.removals, before, self.now).await?;
        if statistics_stale(&mut self.tx, self.written).await? {
            // Statistics that include what this transaction wrote: without
            // them the database plans the joins below for the tables as
            // they were.
            D::analyze_applied(&mut self.tx).await?;
        }
        // Without claims before, the sieve named every address that may be
        // claimed twice, unless there were too many.
        let touched = self.owned_before || !self.sieve.overflowed();
        resolve_addresses(
            &mut self.tx,
            &account,
            self.owned_before,
            touched,
            &self.upserted,
            warnings,
        )
        .await?;
        // Standing conflicts: addresses this integration's objects claim
        // that another object owns, reported on every run. From the
        // contested owners' claims (a partial index) out: the CROSS JOIN
        // keeps SQLite from starting at every claim of the account instead
        // (PostgreSQL orders joins itself).
        let lost = query(
            "SELECT c.address, o.dn, w.dn AS owner_dn FROM address_claims a \
             CROSS JOIN address_claims c \
             JOIN objects o ON o.account_id = c.account_id AND o.anchor = c.anchor \
             JOIN objects w ON w.account_id = a.account_id AND w.anchor = a.anchor \
             WHERE c.account_id = a.account_id AND c.address = a.address \
             AND a.account_id = $1 AND a.owner AND a.contested AND o.integration_id = $2 \
             AND o.managed = TRUE AND a.anchor <> c.anchor ORDER BY c.address",
        )
        .bind(&account)
        .bind(&self.run.integration_id)
        .fetch_all(&mut self.tx)
        .await?;
        let mut seen: HashSet<String> = warnings.iter().cloned().collect();
        for r in &lost {
            let (address, dn, owner): (String, String, String) =
                (r.get("address")?, r.get("dn")?, r.get("owner_dn")?);
            let line = format!(
                "{dn}: address {address} belongs to {owner}, whose claim takes precedence; it was not linked here"
            );
            if seen.insert(line.clone()) {
                warnings.push(line);
            }
        }

        // The deletion guard: the exact set held for approval.
        if blocked {
            for removal in &plan.held {
                query(
                    "INSERT INTO pending_removals (run_id, account_id, anchor, kind, action, reason) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&self.run.id)
                .bind(&account)
                .bind(removal.anchor.to_string())
                .bind(removal.kind.as_str())
                .bind(action_str(removal.action))
                .bind(&removal.reason)
                .execute(&mut self.tx)
                .await?;
            }
        }

        self.entry_digests(&plan.entry_digests).await?;
        query("UPDATE integrations SET entry_context = $1 WHERE account_id = $2 AND id = $3")
            .bind(plan.entry_context.map(|c| c.to_string()))
            .bind(&account)
            .bind(&self.run.integration_id)
            .execute(&mut self.tx)
            .await?;
        Ok(())
    }
}
