//! A run's end: the checks that its collection is whole and its
//! integration still there, then the full run's apply — the second
//! planning pass writing what changes in the apply's transaction — or
//! (see [`crate::delta`]) the delta's.

use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;

use dirsync_bus::{MAX_DELIVER, Topic};
use dirsync_core::plan::{self, Completeness, Planner, Writes};
use dirsync_core::{RunKind, Trigger, UnixMillis};
use dirsync_proto::bus;
use dirsync_store::{Apply, CursorRecord, IntegrationRecord, StagedBatch, StoreError};

use crate::assemble::{Assembled, BatchReader, Collected, Pages, RunKey, Skips};
use crate::consume::{Reconciler, Settle};
use crate::metrics::Synced;

/// What a run whose batches never reached the store says when a new run
/// reads the directory again.
const READ_AGAIN: &str = "a new run reads the directory again";

/// Rows (objects, addresses, member edges) of adds and updates held before
/// they are written: a full sync's records are never all in memory.
const APPLY_ROWS: usize = 10_000;

impl Reconciler {
    pub(crate) async fn on_end(
        &self,
        ev: &bus::CollectorEvent,
        end: bus::CollectionEnd,
        delivered: u32,
    ) -> Result<Settle, StoreError> {
        let now = self.clock.now();
        let run = match self.store.get_run(&ev.account_id, &ev.run_id).await {
            Ok(run) => run,
            Err(StoreError::NotFound(_)) => {
                tracing::warn!(run = %ev.run_id, "collection end for an unknown run ignored");
                return Ok(Settle::Ack);
            }
            Err(e) => return Err(e),
        };
        if !run.state.is_active() || run.attempt > ev.attempt {
            return Ok(Settle::Ack); // settled, or a superseded attempt
        }
        let staged = self.store.staged_totals(&ev.run_id, ev.attempt).await?;
        if staged != (u64::from(end.batches), end.entries) {
            // Staging writes no WAL: a store that restarted since the run
            // began has lost its staged batches, which will not come.
            let lost = self
                .store
                .restarted_since(run.started_at.unwrap_or(run.created_at))
                .await?;
            if lost || i64::from(delivered) + 1 >= MAX_DELIVER {
                let mut msg = format!(
                    "the collection reported {} batches ({} objects) but only {} batches ({} objects) arrived",
                    end.batches, end.entries, staged.0, staged.1
                );
                if lost {
                    msg.push_str(
                        ": the store restarted during the run and lost them (staged batches are not crash-safe: they write no WAL)",
                    );
                }
                let retry = self
                    .may_read_again(&run)
                    .await
                    .then(|| uuid::Uuid::new_v4().to_string());
                if let Some(id) = &retry {
                    msg.push_str(&format!("; {READ_AGAIN} (run {id})"));
                }
                let failed = self
                    .store
                    .fail_run(&ev.run_id, ev.attempt, &msg, now)
                    .await?;
                if let Some(id) = retry.filter(|_| failed) {
                    self.read_again(&run, id, now).await;
                }
                return Ok(Settle::Ack);
            }
            return Ok(Settle::Retry(Duration::from_millis(500)));
        }

        let integration = match self
            .store
            .get_integration(&ev.account_id, &ev.integration_id)
            .await
        {
            Ok(i) => i,
            Err(StoreError::NotFound(_)) => {
                self.assembler.forget(&ev.run_id, ev.attempt);
                self.store
                    .fail_run(
                        &ev.run_id,
                        ev.attempt,
                        "the integration was deleted during the run",
                        now,
                    )
                    .await?;
                return Ok(Settle::Ack);
            }
            Err(e) => return Err(e),
        };

        let mut run = run;
        run.attempt = ev.attempt;
        let delta = bus::JobKind::try_from(end.kind) == Ok(bus::JobKind::Delta);
        run.kind = if delta { RunKind::Delta } else { RunKind::Full };
        run.full_reason = end.full_reason.clone();
        let cursor = end.cursor.as_ref().map(|c| CursorRecord {
            source: c.source.clone(),
            server: c.server.clone(),
            value: c.value.clone(),
            run_id: run.id.clone(),
            updated_at: now,
        });
        if delta {
            self.assembler.forget(&ev.run_id, ev.attempt);
            return self
                .apply_delta(ev, &end, run, &integration, cursor, now)
                .await;
        }
        self.apply_full(ev, &end, run, &integration, cursor, now)
            .await
    }

    /// Plans and applies a full run in two passes over its batches, one
    /// page of them decoded at a time: the collection is never held whole,
    /// only the DNs of the objects in scope, and the objects that change
    /// until they are written. The first pass (see [`crate::assemble`])
    /// indexes every entry; the second leaves out the entries the first
    /// recognised by their digests, when the planner allows it, and writes
    /// what changes in the apply's transaction.
    async fn apply_full(
        &self,
        ev: &bus::CollectorEvent,
        end: &bus::CollectionEnd,
        run: dirsync_store::RunRecord,
        integration: &IntegrationRecord,
        cursor: Option<CursorRecord>,
        now: UnixMillis,
    ) -> Result<Settle, StoreError> {
        let mut reasons = end.incomplete_reasons.clone();
        if !end.complete && reasons.is_empty() {
            reasons.push("the collector marked the collection incomplete".to_owned());
        }
        let key = RunKey {
            account_id: &ev.account_id,
            integration_id: &ev.integration_id,
            run_id: &ev.run_id,
            attempt: ev.attempt,
            memberships_unavailable: end.memberships_unavailable,
        };
        let collector_reasons = reasons.clone();
        let Assembled {
            mut planner,
            mut skips,
            reasons: unread,
        } = self
            .assembler
            .first_pass(&self.store, &key, &integration.settings, end.entries)
            .await?;
        reasons.extend(unread);
        // Returning users: a new user whose primary address a kept
        // unmanaged account holds adopts it; the first pass is then read
        // again, the new objectGUIDs as the accounts they adopted.
        let (adopted, mut adoption_notes) = planner.returning_users();
        if !adopted.is_empty() {
            if run.trigger == Trigger::Preview {
                adoption_notes.extend(
                    adopted
                        .iter()
                        .map(|a| format!("the run would adopt {}", a.describe())),
                );
            } else {
                self.store.adopt(&run, &adopted, now).await?;
                tracing::info!(run = %run.id, adopted = adopted.len(), "returning users adopted their kept accounts");
                adoption_notes.extend(adopted.iter().map(|a| a.describe()));
                // The assembler holds nothing of the run now: it reads
                // the staged batches.
                let again = self
                    .assembler
                    .first_pass(&self.store, &key, &integration.settings, end.entries)
                    .await?;
                reasons = collector_reasons;
                reasons.extend(again.reasons);
                (planner, skips) = (again.planner, again.skips);
            }
        }
        if !planner.end_index() {
            skips.read_all();
        }
        if !reasons.is_empty() {
            planner.collection_incomplete();
        }
        let Some(mut apply) = self.store.begin_apply(&run, now).await? else {
            tracing::info!(run = %run.id, "run already settled; nothing applied");
            return Ok(Settle::Ack);
        };
        tracing::info!(run = %run.id, attempt = run.attempt, "applying the plan");
        // The second pass writes what changes as it goes, in the apply's
        // transaction.
        let mut synced = Synced::default();
        let (planner, more) = self
            .second_pass(&key, planner, skips, &mut synced, apply.as_mut())
            .await?;
        // What the first pass could not read it has said; the second pass
        // decodes more of each entry and may find more.
        if !more.is_empty() {
            let known: std::collections::HashSet<String> = reasons.iter().cloned().collect();
            reasons.extend(more.into_iter().filter(|r| !known.contains(r)));
        }
        let mut plan = planner.finish(&if reasons.is_empty() {
            Completeness::Complete
        } else {
            Completeness::Incomplete(reasons)
        });
        plan.warnings.extend(adoption_notes);
        let paused_by = self
            .store
            .paused_by(&ev.account_id, &ev.integration_id)
            .await?;
        plan::hold_removals(&mut plan, &integration.settings, &paused_by, 0);
        if !run.full_reason.is_empty() {
            plan.warnings.insert(0, run.full_reason.clone());
        }
        plan.warnings.extend(end.warnings.iter().cloned());
        if let Some(cursor) = &cursor {
            apply.set_cursor(cursor, true).await?;
        }
        if end.referrals > 0 {
            plan.warnings.push(format!(
                "{} referrals or continuation references were returned and not followed",
                end.referrals
            ));
        }
        let outcome = apply
            .finish(&plan, end.entries, self.clock.as_ref())
            .await?;
        crate::metrics::settled(&run, &plan, &synced, &outcome, now);
        Ok(Settle::Ack)
    }

    /// The second planning pass: this task reads the staged batches a page
    /// at a time and writes what changes (in the apply's transaction),
    /// while a thread of its own decodes and plans, so that reading,
    /// planning and the store's writing overlap. Gives the planner back,
    /// with what the pass could not read.
    async fn second_pass(
        &self,
        key: &RunKey<'_>,
        mut planner: Planner,
        skips: Skips,
        synced: &mut Synced,
        apply: &mut dyn Apply,
    ) -> Result<(Planner, Vec<String>), StoreError> {
        // A page being planned, one waiting; a chunk of writes being
        // written, one waiting.
        let (pages_tx, mut pages_rx) = mpsc::channel::<Vec<StagedBatch>>(1);
        let (writes_tx, mut writes_rx) = mpsc::channel::<Writes>(1);
        // Which batches to read is known from the first pass.
        let to_read = skips.clone();
        let mut reader = BatchReader::second_pass(skips);
        let planning = tokio::task::spawn_blocking(move || {
            let mut more = Vec::new();
            let mut entries = Vec::new();
            let add = |planner: &mut Planner, entries: &mut Vec<Collected>| {
                for e in entries.drain(..) {
                    planner.add(e.object, Some(e.digest));
                }
            };
            while let Some(page) = pages_rx.blocking_recv() {
                for staged in page {
                    reader.read_staged(staged, &mut entries, &mut more);
                }
                add(&mut planner, &mut entries);
                if planner.pending_rows() >= APPLY_ROWS
                    && writes_tx.blocking_send(planner.take_writes()).is_err()
                {
                    return (planner, more); // the writing failed
                }
            }
            reader.finish(&mut entries, &mut more);
            add(&mut planner, &mut entries);
            // Dropped unsent when the writing failed.
            let _ = writes_tx.blocking_send(planner.take_writes());
            (planner, more)
        });
        let read = async {
            let mut pages = Pages::new(&self.store, key.run_id, key.attempt, 0);
            while let Some(page) = pages.next(&to_read, false).await? {
                if pages_tx.send(page).await.is_err() {
                    break; // the planning stopped: the writing failed
                }
            }
            drop(pages_tx);
            Ok(())
        };
        let written = async {
            while let Some(writes) = writes_rx.recv().await {
                write(writes, &mut *apply, synced).await?;
            }
            Ok(())
        };
        let done = tokio::try_join!(read, written);
        // On an error the channels are dropped, and the thread ends too.
        let planned = match planning.await {
            Ok(planned) => planned,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        done.map(|_| planned)
    }

    /// Whether a run whose batches never reached the store may be
    /// followed by a new run that reads the directory again: not after a
    /// run that was itself such a retry and failed the same way.
    async fn may_read_again(&self, failed: &dirsync_store::RunRecord) -> bool {
        let earlier = self
            .store
            .list_runs(&failed.account_id, &failed.integration_id, 2)
            .await
            .unwrap_or_default();
        !earlier
            .iter()
            .any(|r| r.id != failed.id && r.error.contains(READ_AGAIN))
    }

    /// Starts run `run_id` of the failed run's integration: it reads the
    /// directory again, and the integration recovers without an admin.
    async fn read_again(&self, failed: &dirsync_store::RunRecord, run_id: String, now: UnixMillis) {
        let run = dirsync_store::RunRecord {
            kind: failed.kind,
            ..dirsync_store::RunRecord::new(
                run_id,
                failed.account_id.clone(),
                failed.integration_id.clone(),
                Trigger::SyncNow,
                now,
            )
        };
        if let Err(e) = self.store.create_run(&run).await {
            // Another run started meanwhile: it reads the directory.
            tracing::info!(error = %e, "no retry run: another run is active");
            return;
        }
        let request = bus::SyncRequest {
            account_id: run.account_id.clone(),
            integration_id: run.integration_id.clone(),
            run_id: run.id.clone(),
            trigger: bus::Trigger::SyncNow as i32,
        };
        match self
            .bus
            .publish(
                &Topic::Requests,
                &format!("req:{}", run.id),
                request.encode_to_vec().into(),
            )
            .await
        {
            Ok(()) => {
                tracing::info!(failed = %failed.id, run = %run.id, "batches lost: reading the directory again");
            }
            Err(e) => {
                tracing::error!(error = %e, "the retry run cannot be queued");
                let _ = self
                    .store
                    .fail_run(
                        &run.id,
                        0,
                        "the message bus was unavailable when the run was queued",
                        now,
                    )
                    .await;
            }
        }
    }
}

/// Writes the adds and updates a planner kept, counting them.
pub(crate) async fn write(
    writes: Writes,
    apply: &mut dyn Apply,
    synced: &mut Synced,
) -> Result<(), StoreError> {
    synced.count(&writes);
    apply.upserts(&writes.adds, &writes.updates).await?;
    apply.entry_digests(&writes.entry_digests).await
}
