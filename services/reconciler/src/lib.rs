//! The reconciler: stages a run's batches idempotently and, once the
//! collection is complete (staged totals equal the `CollectionEnd`'s),
//! plans against the store and applies the plan in one transaction.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use dirsync_bus::{Bus, Delivery, MAX_DELIVER, Topic};
use dirsync_convert::EntryDigest;
use dirsync_core::plan::{self, Completeness, Planner, Writes};
use dirsync_core::{Clock, DirectoryObject, ObjectKind, RunKind, ShortHash, Trigger, UnixMillis};
use dirsync_proto::bus::{self, collector_event::Event};
use dirsync_store::{
    Apply, ApplyOutcome, CursorRecord, IntegrationRecord, SettledMark, StagedBatch, Store,
    StoreError,
};
use dirsync_telemetry::metrics::RunLabels;

/// What a run whose batches never reached the store says when a new run
/// reads the directory again.
const READ_AGAIN: &str = "a new run reads the directory again";

pub struct Reconciler {
    store: Store,
    bus: Bus,
    clock: Arc<dyn Clock>,
    /// The run whose first planning pass is done as its batches arrive.
    early: Mutex<Option<EarlyPass>>,
}

/// Staged batches read per query (each up to the collector's 512 KB).
const STAGED_PAGE: u32 = 4;

/// Rows (objects, addresses, member edges) of adds and updates held before
/// they are written: a full sync's records are never all in memory.
const APPLY_ROWS: usize = 10_000;

/// How long a run's first pass, done as its batches arrive, keeps its
/// place after the last batch came while its run is active: another run
/// may take it then (the collection was abandoned without an end).
const EARLY_IDLE_MILLIS: i64 = 10 * 60 * 1000;

/// What to do with a delivery once handled.
enum Settle {
    Ack,
    Retry(Duration),
}

impl Reconciler {
    pub fn new(store: Store, bus: Bus, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            bus,
            clock,
            early: Mutex::new(None),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("reconciler started");
        dirsync_bus::consume(&self.bus, Topic::Events, shutdown, |d| self.handle(d)).await?;
        tracing::info!("reconciler stopped");
        Ok(())
    }

    async fn handle(&self, delivery: Delivery) {
        let settle = match self.settle(&delivery).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "collector event not processed; retrying");
                Settle::Retry(Duration::from_secs(2))
            }
        };
        let result = match settle {
            Settle::Ack => delivery.ack().await,
            Settle::Retry(after) => delivery.nak(after).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "settling a collector event failed");
        }
    }

    /// A batch is staged as the bytes it arrived as; the other events are
    /// decoded whole.
    async fn settle(&self, delivery: &Delivery) -> Result<Settle, StoreError> {
        if let Ok(staged) = bus::StagedCollectorEvent::decode(delivery.payload.clone()) {
            if let Some(block) = staged.batch_lz4 {
                return self
                    .stage(&staged.run_id, staged.attempt, block, true)
                    .await;
            }
            if let Some(batch) = staged.batch {
                return self
                    .stage(&staged.run_id, staged.attempt, batch, false)
                    .await;
            }
        }
        match bus::CollectorEvent::decode(delivery.payload.clone()) {
            Err(e) => {
                tracing::error!(error = %e, "dropping a bus message that is not a CollectorEvent");
                Ok(Settle::Ack)
            }
            Ok(ev) => self.on_event(ev, delivery.delivered).await,
        }
    }

    /// Stages an `ObjectBatch` as it arrived, encoded or (`lz4`) compressed,
    /// counting its entries (continuations of a large group are not
    /// entries).
    async fn stage(
        &self,
        run_id: &str,
        attempt: u32,
        payload: Bytes,
        lz4: bool,
    ) -> Result<Settle, StoreError> {
        let batch = if lz4 {
            match dirsync_proto::lz4::decompress(&payload) {
                Ok(batch) => Bytes::from(batch),
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "dropping an object batch that cannot be decompressed");
                    return Ok(Settle::Ack);
                }
            }
        } else {
            payload.clone()
        };
        let head = match bus::ObjectBatchHead::decode(batch.clone()) {
            Ok(head) => head,
            Err(e) => {
                tracing::error!(run = %run_id, error = %e, "dropping an object batch that cannot be decoded");
                return Ok(Settle::Ack);
            }
        };
        let entries = head.entries.iter().filter(|e| e.member_part == 0).count() as u64;
        self.store
            .stage_batch(run_id, attempt, head.sequence, entries, &payload, lz4)
            .await?;
        let now = self.clock.now();
        let mut slot = self.early.lock().expect("not poisoned");
        if let Some(early) = slot.as_mut()
            && early.run_id == run_id
            && !early.read(attempt, head.sequence, batch, now)
        {
            tracing::debug!(run = %run_id, "batches out of order; the first pass waits for the end");
            *slot = None;
        }
        Ok(Settle::Ack)
    }

    async fn on_event(
        &self,
        mut ev: bus::CollectorEvent,
        delivered: u32,
    ) -> Result<Settle, StoreError> {
        let now = self.clock.now();
        match ev.event.take() {
            None => {
                tracing::error!(run = %ev.run_id, "dropping a collector event without content");
                Ok(Settle::Ack)
            }
            Some(Event::Started(s)) => {
                if !self
                    .store
                    .run_started(&ev.run_id, ev.attempt, &s.host, now)
                    .await?
                {
                    tracing::info!(run = %ev.run_id, attempt = ev.attempt, "stale start ignored");
                    return Ok(Settle::Ack);
                }
                // A delta's entries are few and planned at its end.
                if bus::JobKind::try_from(s.kind) != Ok(bus::JobKind::Delta) {
                    self.begin_early(&ev, s.memberships_unavailable, now).await;
                }
                Ok(Settle::Ack)
            }
            Some(Event::Batch(b)) => {
                // Batches are staged by `settle` before this decoding; one
                // that reaches here is staged the same way.
                self.stage(&ev.run_id, ev.attempt, b.encode_to_vec().into(), false)
                    .await
            }
            Some(Event::BatchLz4(block)) => {
                self.stage(&ev.run_id, ev.attempt, block.into(), true).await
            }
            Some(Event::End(end)) if !end.error.is_empty() => {
                drop(self.take_early(&ev.run_id, ev.attempt));
                if self
                    .store
                    .fail_run(&ev.run_id, ev.attempt, &end.error, now)
                    .await?
                {
                    dirsync_telemetry::metrics::metrics()
                        .runs
                        .get_or_create(&RunLabels {
                            integration: ev.integration_id.clone(),
                            outcome: "failed".to_owned(),
                            run_kind:
                                if bus::JobKind::try_from(end.kind) == Ok(bus::JobKind::Delta) {
                                    RunKind::Delta
                                } else {
                                    RunKind::Full
                                }
                                .as_str()
                                .to_owned(),
                        })
                        .inc();
                }
                tracing::info!(run = %ev.run_id, error = %end.error, "run failed");
                self.announce_settled(&ev.run_id).await;
                Ok(Settle::Ack)
            }
            Some(Event::End(end)) => {
                let settle = self.on_end(&ev, end, delivered).await?;
                if let Settle::Ack = settle {
                    self.announce_settled(&ev.run_id).await;
                }
                Ok(settle)
            }
        }
    }

    /// Tells the run's watchers it settled: they look at it now rather
    /// than at their next look.
    async fn announce_settled(&self, run_id: &str) {
        if let Err(e) = self.bus.announce_settled(run_id).await {
            tracing::debug!(run = %run_id, error = %e, "announcing a settled run failed; watchers find out when they next look");
        }
    }

    /// Begins the run's first pass as its collection starts, unless
    /// another active run's holds its place.
    async fn begin_early(
        &self,
        ev: &bus::CollectorEvent,
        memberships_unavailable: bool,
        now: UnixMillis,
    ) {
        let held = self.early.lock().expect("not poisoned").as_ref().map(|h| {
            (
                h.account_id.clone(),
                h.run_id.clone(),
                h.attempt,
                h.active_at,
            )
        });
        if let Some((account, run, attempt, active_at)) = held {
            if run == ev.run_id && attempt == ev.attempt {
                return; // the start delivered again
            }
            if run != ev.run_id && now - active_at < EARLY_IDLE_MILLIS {
                // Unless its run settled (another reconciler took its end).
                let settled = match self.store.get_run(&account, &run).await {
                    Ok(r) => !r.state.is_active(),
                    Err(e) => matches!(e, StoreError::NotFound(_)),
                };
                if !settled {
                    return;
                }
            }
        }
        *self.early.lock().expect("not poisoned") = None;
        match EarlyPass::begin(&self.store, ev, memberships_unavailable, now).await {
            Ok(early) => *self.early.lock().expect("not poisoned") = Some(early),
            Err(e) => {
                tracing::warn!(run = %ev.run_id, error = %e, "the first pass waits for the end of the collection");
            }
        }
    }

    /// The run's early first pass, if this reconciler holds it.
    fn take_early(&self, run_id: &str, attempt: u32) -> Option<EarlyPass> {
        let mut slot = self.early.lock().expect("not poisoned");
        if slot
            .as_ref()
            .is_some_and(|e| e.run_id == run_id && e.attempt == attempt)
        {
            slot.take()
        } else {
            None
        }
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

    /// A delta's plan, its objectGUIDs read through `aliases`.
    async fn plan_delta(
        &self,
        ev: &bus::CollectorEvent,
        settings: &dirsync_core::IntegrationSettings,
        read: &[dirsync_core::delta::DeltaChange],
        aliases: &dirsync_core::returning::Aliases,
    ) -> Result<plan::Plan, StoreError> {
        let changes: Vec<_> = read.iter().map(|c| c.clone().alias(aliases)).collect();
        let referenced: Vec<_> = changes.iter().flat_map(|c| c.referenced()).collect();
        let stored = self
            .store
            .delta_stored(&ev.account_id, &ev.integration_id, &referenced)
            .await?;
        Ok(dirsync_core::delta::plan_delta(settings, &stored, changes))
    }

    /// The first planning pass, read from the run's staged batches.
    async fn first_pass(
        &self,
        ev: &bus::CollectorEvent,
        integration: &IntegrationRecord,
        end: &bus::CollectionEnd,
        reasons: &mut Vec<String>,
    ) -> Result<(Planner, Skips), StoreError> {
        let mut planner = stored_planner(
            &self.store,
            ev,
            integration.settings.clone(),
            end.memberships_unavailable,
            Some(end.entries),
        )
        .await?;
        let mut pages = Pages::new(&self.store, &ev.run_id, ev.attempt);
        let mut reader = BatchReader::first_pass();
        while let Some(page) = pages.next(&reader.skips, true).await? {
            for staged in page {
                reader.index_staged(&mut planner, staged, reasons);
            }
        }
        reader.index_last(&mut planner, reasons);
        Ok((planner, reader.skips))
    }

    async fn on_end(
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
                drop(self.take_early(&ev.run_id, ev.attempt));
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
            drop(self.take_early(&ev.run_id, ev.attempt));
            return self
                .apply_delta(ev, &end, run, &integration, cursor, now)
                .await;
        }

        let mut reasons = end.incomplete_reasons.clone();
        if !end.complete && reasons.is_empty() {
            reasons.push("the collector marked the collection incomplete".to_owned());
        }
        // Two passes over the staged batches, one page of them decoded at
        // a time: the collection is never held whole, only the DNs of the
        // objects in scope, and the objects that change until they are
        // written. The second leaves out the entries the first recognised
        // by their digests, when the planner allows it. The first pass may
        // be done already, as the batches arrived.
        let early = match self.take_early(&ev.run_id, ev.attempt) {
            Some(early) => early.finish(&self.store, ev, &end, &integration).await?,
            None => None,
        };
        let collector_reasons = reasons.clone();
        let (mut planner, mut skips) = match early {
            Some((planner, skips, first_reasons)) => {
                reasons.extend(first_reasons);
                (planner, skips)
            }
            None => {
                self.first_pass(ev, &integration, &end, &mut reasons)
                    .await?
            }
        };
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
                reasons = collector_reasons;
                (planner, skips) = self
                    .first_pass(ev, &integration, &end, &mut reasons)
                    .await?;
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
            .second_pass(
                &ev.run_id,
                ev.attempt,
                planner,
                skips,
                &mut synced,
                apply.as_mut(),
            )
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
        match apply
            .finish(&plan, end.entries, self.clock.as_ref())
            .await?
        {
            ApplyOutcome::Applied { counts, warnings } => {
                record_metrics(&run, &plan, &synced, now);
                tracing::info!(
                    run = %run.id,
                    added = counts.added,
                    updated = counts.updated,
                    removed = counts.removed,
                    unchanged = counts.unchanged,
                    pending = counts.pending,
                    warnings = warnings.len(),
                    "run applied"
                );
            }
            ApplyOutcome::AlreadySettled => {
                tracing::info!(run = %run.id, "run already settled; nothing applied");
            }
        }
        Ok(Settle::Ack)
    }

    /// Plans and applies a delta run: its entries are few (the collector
    /// bounds them), read whole from staging, planned against the stored
    /// records they name, and applied with the cursor in one transaction.
    /// The cursor moves only when nothing is held back: held removals then
    /// come back with the next delta, which reads the same changes again
    /// (re-applying a change is a no-op).
    async fn apply_delta(
        &self,
        ev: &bus::CollectorEvent,
        end: &bus::CollectionEnd,
        run: dirsync_store::RunRecord,
        integration: &IntegrationRecord,
        cursor: Option<CursorRecord>,
        now: UnixMillis,
    ) -> Result<Settle, StoreError> {
        let mut reasons = end.incomplete_reasons.clone();
        let mut warnings = Vec::new();
        let mut entries = Vec::new();
        let mut from = 0;
        loop {
            let page = self
                .store
                .staged_batches(&ev.run_id, ev.attempt, from, STAGED_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            from = last.sequence + 1;
            for staged in page {
                match decode_staged(&staged) {
                    Ok(batch) => entries.extend(batch.entries),
                    Err(e) => {
                        reasons.push(format!("batch {} cannot be read: {e}", staged.sequence))
                    }
                }
            }
        }
        let read = delta_changes(entries, &mut warnings, &mut reasons);
        let mut aliases = self.store.anchor_aliases(&ev.account_id).await?;
        let mut plan = self
            .plan_delta(ev, &integration.settings, &read, &aliases)
            .await?;
        // Returning users (see the full run's): planned again with the
        // new objectGUIDs read as the accounts they adopted.
        let fresh: Vec<_> = plan
            .adds
            .iter()
            .filter(|u| u.record.kind == ObjectKind::User)
            .filter_map(|u| Some((u.record.anchor, u.record.primary_address.clone()?)))
            .collect();
        if !fresh.is_empty() {
            let returning = self.store.returning_users(&ev.account_id).await?;
            let (adopted, notes) = dirsync_core::returning::adoptions(&fresh, &returning);
            warnings.extend(notes);
            if run.trigger == Trigger::Preview {
                warnings.extend(
                    adopted
                        .iter()
                        .map(|a| format!("the run would adopt {}", a.describe())),
                );
            } else if !adopted.is_empty() {
                self.store.adopt(&run, &adopted, now).await?;
                warnings.extend(adopted.iter().map(|a| a.describe()));
                aliases.extend(adopted.iter().map(|a| (a.directory_anchor, a.anchor)));
                plan = self
                    .plan_delta(ev, &integration.settings, &read, &aliases)
                    .await?;
            }
        }
        plan.warnings.extend(warnings);
        plan.warnings.extend(end.warnings.iter().cloned());
        if !reasons.is_empty() && !plan.removals.is_empty() {
            plan.warnings.push(format!(
                "{} objects left the sync but nothing was removed because the delta is incomplete: {}",
                plan.removals.len(),
                reasons.join("; ")
            ));
            plan.removals.clear();
        }
        let paused_by = self
            .store
            .paused_by(&ev.account_id, &ev.integration_id)
            .await?;
        let earlier = self
            .store
            .delta_removals_since_full(&ev.account_id, &ev.integration_id)
            .await?;
        plan::hold_removals(&mut plan, &integration.settings, &paused_by, earlier);
        tracing::info!(run = %run.id, attempt = run.attempt, changes = end.entries, "applying the delta");
        let Some(mut apply) = self.store.begin_apply(&run, now).await? else {
            tracing::info!(run = %run.id, "run already settled; nothing applied");
            return Ok(Settle::Ack);
        };
        let mut synced = Synced::default();
        synced
            .write(
                Writes {
                    adds: std::mem::take(&mut plan.adds),
                    updates: std::mem::take(&mut plan.updates),
                    entry_digests: Vec::new(),
                },
                apply.as_mut(),
            )
            .await?;
        match &cursor {
            Some(cursor) if plan.held.is_empty() && reasons.is_empty() => {
                apply.set_cursor(cursor, false).await?;
            }
            Some(_) => plan.warnings.push(
                "the delta cursor stays where it was: the next delta reads these changes again, with what was held back"
                    .to_owned(),
            ),
            None => {}
        }
        match apply
            .finish(&plan, end.entries, self.clock.as_ref())
            .await?
        {
            ApplyOutcome::Applied { counts, warnings } => {
                record_metrics(&run, &plan, &synced, now);
                tracing::info!(
                    run = %run.id,
                    kind = "delta",
                    added = counts.added,
                    updated = counts.updated,
                    removed = counts.removed,
                    unchanged = counts.unchanged,
                    warnings = warnings.len(),
                    "run applied"
                );
            }
            ApplyOutcome::AlreadySettled => {
                tracing::info!(run = %run.id, "run already settled; nothing applied");
            }
        }
        Ok(Settle::Ack)
    }

    /// The second planning pass: this task reads the staged batches a page
    /// at a time and writes what changes (in the apply's transaction),
    /// while a thread of its own decodes and plans, so that reading,
    /// planning and the store's writing overlap. Gives the planner back,
    /// with what the pass could not read.
    async fn second_pass(
        &self,
        run_id: &str,
        attempt: u32,
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
            let mut pages = Pages::new(&self.store, run_id, attempt);
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
                synced.write(writes, &mut *apply).await?;
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
}

/// A planner over what the store holds of the event's integration, with
/// room for `entries`, or (not known yet) as many as the store holds.
async fn stored_planner(
    store: &Store,
    ev: &bus::CollectorEvent,
    settings: dirsync_core::IntegrationSettings,
    memberships_unavailable: bool,
    entries: Option<u64>,
) -> Result<Planner, StoreError> {
    let current = store
        .current_objects(&ev.account_id, &ev.integration_id, memberships_unavailable)
        .await?;
    let room = entries.map_or(current.objects.len(), |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    // Why the plan keeps stored member edges (see `Planner::new`).
    let note = memberships_unavailable.then(|| {
        "the Global Catalog does not hold the member attribute; use port 636 or 389 to sync members"
            .to_owned()
    });
    let aliases = store.anchor_aliases(&ev.account_id).await?;
    let returning = store.returning_users(&ev.account_id).await?;
    let mut planner = Planner::new(Arc::new(settings), note, Arc::new(current))
        .with_aliases(Arc::new(aliases))
        .watch_returning(Arc::new(returning));
    planner.reserve(room);
    Ok(planner)
}

/// A run's first planning pass, done as its batches are staged while the
/// collection goes on, so that its end finds it done. It needs the batches
/// of one attempt in sequence order, as one collector sends them to one
/// reconciler (with several reconcilers sharing the batches, or any out of
/// order, the pass is left to the end). It is used only if what it read at
/// the start still holds at the end: the integration's settings, whether
/// memberships are read, and the store's objects (see [`SettledMark`];
/// while a run is active, no other run of its integration applies).
struct EarlyPass {
    account_id: String,
    run_id: String,
    attempt: u32,
    memberships_unavailable: bool,
    mark: SettledMark,
    planner: Planner,
    reader: BatchReader,
    /// The sequence of the next batch to read.
    next: u32,
    reasons: Vec<String>,
    /// When it began, or last read a batch.
    active_at: UnixMillis,
}

impl EarlyPass {
    async fn begin(
        store: &Store,
        ev: &bus::CollectorEvent,
        memberships_unavailable: bool,
        now: UnixMillis,
    ) -> Result<Self, StoreError> {
        let integration = store
            .get_integration(&ev.account_id, &ev.integration_id)
            .await?;
        // The mark first: what moves after it shows at the end.
        let mark = store.settled_mark(&ev.account_id, &ev.run_id).await?;
        let planner = stored_planner(
            store,
            ev,
            integration.settings,
            memberships_unavailable,
            None,
        )
        .await?;
        Ok(Self {
            account_id: ev.account_id.clone(),
            run_id: ev.run_id.clone(),
            attempt: ev.attempt,
            memberships_unavailable,
            mark,
            planner,
            reader: BatchReader::first_pass(),
            next: 0,
            reasons: Vec::new(),
            active_at: now,
        })
    }

    /// Reads a batch of the run just staged. False when it cannot go on:
    /// a batch of another attempt, or one out of sequence order.
    fn read(&mut self, attempt: u32, sequence: u32, batch: Bytes, now: UnixMillis) -> bool {
        if attempt != self.attempt || sequence > self.next {
            return false;
        }
        if sequence < self.next {
            return true; // delivered again: read already
        }
        self.reader
            .index(&mut self.planner, sequence, batch, &mut self.reasons);
        self.next += 1;
        self.active_at = now;
        true
    }

    /// The planner after its first pass, the second pass's skips and what
    /// the first could not read; `None` when what the pass read at the
    /// start has moved, or it did not read every batch.
    async fn finish(
        mut self,
        store: &Store,
        ev: &bus::CollectorEvent,
        end: &bus::CollectionEnd,
        integration: &IntegrationRecord,
    ) -> Result<Option<(Planner, Skips, Vec<String>)>, StoreError> {
        let holds = self.next == end.batches
            && self.memberships_unavailable == end.memberships_unavailable
            && *self.planner.settings() == integration.settings
            && self.mark == store.settled_mark(&ev.account_id, &ev.run_id).await?;
        if !holds {
            tracing::info!(run = %ev.run_id, "the first pass is read again from the staged batches: the settings or the store moved during the collection, or not every batch came here in order");
            return Ok(None);
        }
        self.reader.index_last(&mut self.planner, &mut self.reasons);
        Ok(Some((self.planner, self.reader.skips, self.reasons)))
    }
}

/// A run's staged batches in sequence order, a page at a time, less those
/// a planning pass has nothing to read in.
struct Pages<'a> {
    store: &'a Store,
    run_id: &'a str,
    attempt: u32,
    /// The next sequence number to read; `None` after the last batch.
    from: Option<u32>,
}

/// An entry read from the staged batches.
struct Collected {
    object: DirectoryObject,
    digest: ShortHash,
    /// Its place (and its parts') among the staged entries.
    positions: Range<u64>,
}

impl<'a> Pages<'a> {
    fn new(store: &'a Store, run_id: &'a str, attempt: u32) -> Self {
        Self {
            store,
            run_id,
            attempt,
            from: Some(0),
        }
    }

    /// The next page of batches that hold an entry to read (`skips`);
    /// `None` once all are read.
    async fn next(
        &mut self,
        skips: &Skips,
        first_pass: bool,
    ) -> Result<Option<Vec<StagedBatch>>, StoreError> {
        let Some(from) = self
            .from
            .and_then(|from| skips.next_to_read(from, first_pass))
        else {
            self.from = None;
            return Ok(None);
        };
        let page = self
            .store
            .staged_batches(self.run_id, self.attempt, from, STAGED_PAGE)
            .await?;
        // After the last sequence there is, nothing.
        self.from = page.last().and_then(|last| last.sequence.checked_add(1));
        Ok(Some(page))
    }
}

/// Reads staged batches in sequence order, in one of the two planning
/// passes, joining large groups' parts and digesting each entry.
///
/// The first pass (which builds its [`Skips`]) reads what the planner's
/// first pass needs of each entry (anchor, DN, kind, addresses), the rest
/// left undecoded; the second reads whole entries, less those its skips
/// leave out, and no batch that holds only those.
struct BatchReader {
    first_pass: bool,
    skips: Skips,
    joiner: PartJoiner,
}

impl BatchReader {
    fn first_pass() -> Self {
        Self {
            first_pass: true,
            skips: Skips::default(),
            joiner: PartJoiner::default(),
        }
    }

    fn second_pass(skips: Skips) -> Self {
        Self {
            first_pass: false,
            skips,
            ..Self::first_pass()
        }
    }

    /// The encoded batch a staged one holds; `None`, said in `reasons`,
    /// when it cannot be decompressed.
    fn unpack(&mut self, staged: StagedBatch, reasons: &mut Vec<String>) -> Option<Bytes> {
        if !staged.lz4 {
            return Some(Bytes::from(staged.payload));
        }
        match dirsync_proto::lz4::decompress(&staged.payload) {
            Ok(batch) => Some(Bytes::from(batch)),
            Err(e) => {
                reasons.push(format!(
                    "staged batch {} cannot be decompressed: {e}",
                    staged.sequence
                ));
                self.skips.broken();
                None
            }
        }
    }

    /// [`read`](Self::read) of a batch as the store keeps it.
    fn read_staged(
        &mut self,
        staged: StagedBatch,
        out: &mut Vec<Collected>,
        reasons: &mut Vec<String>,
    ) {
        let sequence = staged.sequence;
        if let Some(payload) = self.unpack(staged, reasons) {
            self.read(sequence, payload, out, reasons);
        }
    }

    /// [`index`](Self::index) of a batch as the store keeps it.
    fn index_staged(
        &mut self,
        planner: &mut Planner,
        staged: StagedBatch,
        reasons: &mut Vec<String>,
    ) {
        let sequence = staged.sequence;
        if let Some(payload) = self.unpack(staged, reasons) {
            self.index(planner, sequence, payload, reasons);
        }
    }

    /// In the first pass, reads batch `sequence` and indexes its whole
    /// entries, leaving out of the second pass those the planner found
    /// unchanged.
    fn index(
        &mut self,
        planner: &mut Planner,
        sequence: u32,
        payload: Bytes,
        reasons: &mut Vec<String>,
    ) {
        let mut entries = Vec::new();
        self.read(sequence, payload, &mut entries, reasons);
        self.index_entries(planner, &entries);
    }

    /// In the first pass, indexes the last entry, once.
    fn index_last(&mut self, planner: &mut Planner, reasons: &mut Vec<String>) {
        let mut last = Vec::new();
        self.finish(&mut last, reasons);
        self.index_entries(planner, &last);
    }

    fn index_entries(&mut self, planner: &mut Planner, entries: &[Collected]) {
        for e in entries {
            if planner.index(&e.object, Some(e.digest)) {
                self.skips.leave_out(e.positions.clone());
            }
        }
    }

    /// Adds the entries of batch `sequence` that are whole to `out` (the
    /// last one may wait for parts in the next batch).
    fn read(
        &mut self,
        sequence: u32,
        payload: Bytes,
        out: &mut Vec<Collected>,
        reasons: &mut Vec<String>,
    ) {
        let first_pass = self.first_pass;
        let batch = match bus::ObjectBatchEntries::decode(payload) {
            Ok(batch) => batch,
            Err(e) => {
                reasons.push(format!("a staged batch cannot be decoded: {e}"));
                self.skips.broken();
                return;
            }
        };
        let Some(start) = self.skips.batch(sequence, batch.entries.len(), first_pass) else {
            reasons.push(format!("staged batch {sequence} is out of sequence"));
            return;
        };
        for (position, raw) in (start..).zip(&batch.entries) {
            if !first_pass && self.skips.left_out(position) {
                if let Some(before) = self.joiner.flush() {
                    decode(before, out, reasons);
                }
                continue;
            }
            let entry = if first_pass {
                bus::DirectoryEntryIndex::decode(raw.as_ref()).map(indexed_entry)
            } else {
                bus::DirectoryEntry::decode(raw.as_ref())
            };
            match entry {
                Ok(entry) => {
                    if let Some(whole) = self.joiner.push(entry, raw, position, reasons) {
                        decode(whole, out, reasons);
                    }
                }
                Err(e) => reasons.push(format!(
                    "entry {} of staged batch {sequence} cannot be decoded: {e}",
                    position - start
                )),
            }
        }
    }

    /// Adds the last entry to `out`, once: false when there is none.
    fn finish(&mut self, out: &mut Vec<Collected>, reasons: &mut Vec<String>) -> bool {
        let Some(last) = std::mem::take(&mut self.joiner).finish() else {
            return false;
        };
        decode(last, out, reasons);
        true
    }
}

/// The object a whole entry gives, or why it gives none.
fn decode(joined: Joined, out: &mut Vec<Collected>, reasons: &mut Vec<String>) {
    match dirsync_convert::object_of(joined.entry) {
        Ok(object) => out.push(Collected {
            object,
            digest: joined.digest,
            positions: joined.positions,
        }),
        Err(e) => reasons.push(e.to_string()),
    }
}

/// Where each staged entry is (in staged order, parts of large groups
/// included) and which of them the second planning pass leaves out: the
/// first pass finds both out.
#[derive(Default, Clone)]
struct Skips {
    /// Bit `n`: the `n`-th staged entry is left out.
    bits: Vec<u64>,
    /// The position of each batch's first entry, by sequence, then the
    /// number of entries.
    starts: Vec<u64>,
    /// Set when the batches could not all be placed: nothing is left out.
    unplaced: bool,
}

impl Skips {
    fn leave_out(&mut self, positions: Range<u64>) {
        for n in positions {
            let (word, bit) = ((n / 64) as usize, n % 64);
            if self.bits.len() <= word {
                self.bits.resize(word + 1, 0);
            }
            self.bits[word] |= 1 << bit;
        }
    }

    fn left_out(&self, n: u64) -> bool {
        !self.unplaced
            && self
                .bits
                .get((n / 64) as usize)
                .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    /// The second pass reads every entry.
    fn read_all(&mut self) {
        self.bits = Vec::new();
    }

    fn broken(&mut self) {
        self.unplaced = true;
    }

    /// Where batch `sequence`'s entries start. The first pass places the
    /// batches, which come in sequence order from 0 (were one missing,
    /// nothing would be left out); `None` for a batch it did not place.
    fn batch(&mut self, sequence: u32, entries: usize, first_pass: bool) -> Option<u64> {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let placed = self.starts.len() - 1;
        let last = self.starts[placed];
        if first_pass {
            if sequence as usize != placed {
                self.unplaced = true;
            }
            self.starts.push(last + entries as u64);
            return Some(last);
        }
        if self.unplaced {
            return Some(0); // nothing is left out: positions do not matter
        }
        self.starts
            .get(sequence as usize)
            .copied()
            .filter(|_| (sequence as usize) < placed)
    }

    /// The first sequence from `from` on that holds an entry to read; in
    /// the first pass, `from`. `None` when no batch after `from` does.
    fn next_to_read(&self, from: u32, first_pass: bool) -> Option<u32> {
        if first_pass || self.unplaced {
            return Some(from);
        }
        let batches = self.starts.len().saturating_sub(1);
        (from as usize..batches)
            .find(|&b| (self.starts[b]..self.starts[b + 1]).any(|n| !self.left_out(n)))
            .map(|b| b as u32)
    }
}

/// The entry an index read of an entry gives: the fields that decide its
/// anchor, DN, kind and addresses, the others empty.
fn indexed_entry(e: bus::DirectoryEntryIndex) -> bus::DirectoryEntry {
    bus::DirectoryEntry {
        kind: e.kind,
        object_guid: e.object_guid,
        dn: e.dn,
        mail: e.mail,
        proxy_addresses: e.proxy_addresses,
        member_part: e.member_part,
        ..Default::default()
    }
}

/// Adds and updates planned per kind, for the metrics.
#[derive(Default)]
struct Synced(HashMap<(&'static str, ObjectKind), u64>);

impl Synced {
    /// Writes adds and updates the planner kept, counting them.
    async fn write(&mut self, writes: Writes, apply: &mut dyn Apply) -> Result<(), StoreError> {
        for (operation, upserts) in [("add", &writes.adds), ("update", &writes.updates)] {
            for u in upserts {
                *self.0.entry((operation, u.record.kind)).or_default() += 1;
            }
        }
        apply.upserts(&writes.adds, &writes.updates).await?;
        apply.entry_digests(&writes.entry_digests).await
    }
}

/// A staged batch, decoded whole.
fn decode_staged(staged: &StagedBatch) -> Result<bus::ObjectBatch, String> {
    let bytes = if staged.lz4 {
        dirsync_proto::lz4::decompress(&staged.payload).map_err(|e| e.to_string())?
    } else {
        staged.payload.clone()
    };
    bus::ObjectBatch::decode(bytes.as_slice()).map_err(|e| e.to_string())
}

/// A delta's entries as changes, a large group's parts joined. An entry
/// that cannot be read is a warning (a changed object) or makes the delta
/// incomplete (a removal it may stand for).
fn delta_changes(
    entries: Vec<bus::DirectoryEntry>,
    warnings: &mut Vec<String>,
    reasons: &mut Vec<String>,
) -> Vec<dirsync_core::delta::DeltaChange> {
    use dirsync_core::ObjectGuid;
    use dirsync_core::delta::{ChangedObject, DeltaChange};
    let guids = |list: &[String], reasons: &mut Vec<String>| -> Vec<ObjectGuid> {
        list.iter()
            .filter_map(|g| match g.parse() {
                Ok(g) => Some(g),
                Err(e) => {
                    reasons.push(format!("a linked objectGUID cannot be read: {e}"));
                    None
                }
            })
            .collect()
    };
    // Parts first: a continuation extends the entry before it.
    let mut joined: Vec<(bus::DirectoryEntry, bool)> = Vec::with_capacity(entries.len());
    for e in entries {
        match joined.last_mut() {
            Some((last, parts)) if e.member_part > 0 && last.object_guid == e.object_guid => {
                last.member_dns.extend(e.member_dns);
                last.member_guids.extend(e.member_guids);
                *parts = true;
            }
            _ if e.member_part > 0 => reasons.push(format!(
                "member part {} of object {} arrived without its entry",
                e.member_part, e.object_guid
            )),
            _ => joined.push((e, false)),
        }
    }
    let mut changes = Vec::with_capacity(joined.len());
    for (mut e, parts) in joined {
        let anchor: ObjectGuid = match e.object_guid.parse() {
            Ok(a) => a,
            Err(err) => {
                reasons.push(format!("a delta entry's objectGUID cannot be read: {err}"));
                continue;
            }
        };
        match bus::DeltaChange::try_from(e.delta) {
            Ok(bus::DeltaChange::Deleted) => changes.push(DeltaChange::Deleted(anchor)),
            Ok(bus::DeltaChange::LeftScope) => changes.push(DeltaChange::LeftScope(anchor)),
            Ok(bus::DeltaChange::Members) => changes.push(DeltaChange::Members {
                group: anchor,
                added: guids(&e.member_guids, reasons),
                removed: guids(&e.removed_member_guids, reasons),
            }),
            Ok(bus::DeltaChange::Changed) => {
                let members = guids(&std::mem::take(&mut e.member_guids), reasons);
                let manager = Some(std::mem::take(&mut e.manager_guid))
                    .filter(|m| !m.is_empty())
                    .and_then(|m| guids(&[m], reasons).pop());
                let member_of = guids(&std::mem::take(&mut e.member_of_guids), reasons);
                let reports = guids(&std::mem::take(&mut e.direct_report_guids), reasons);
                e.removed_member_guids.clear();
                e.delta = 0;
                // The digest a full read of the same entry gives (a large
                // group's is of its parts: not known here).
                let digest = (!parts).then(|| {
                    let mut d = EntryDigest::new();
                    d.update(&e.encode_to_vec());
                    d.finish()
                });
                match dirsync_convert::object_of(e) {
                    Ok(object) => changes.push(DeltaChange::Changed(Box::new(ChangedObject {
                        object,
                        digest,
                        members,
                        manager,
                        member_of,
                        reports,
                    }))),
                    Err(err) => warnings.push(format!("{err}; the change was not applied")),
                }
            }
            _ => reasons.push(format!(
                "object {anchor}: a full run's entry in a delta; the delta is incomplete"
            )),
        }
    }
    changes
}

/// Joins the parts of large groups (`member_part` > 0) to the entry they
/// continue, which comes just before them, one entry at a time, digesting
/// the encoded entry and parts. A part without its entry makes the
/// collection incomplete.
#[derive(Default)]
pub struct PartJoiner {
    pending: Option<Pending>,
}

/// The entry a [`PartJoiner`] holds while its parts may follow.
struct Pending {
    entry: bus::DirectoryEntry,
    digest: EntryDigest,
    positions: Range<u64>,
}

/// An entry with its parts joined.
pub struct Joined {
    pub entry: bus::DirectoryEntry,
    pub digest: ShortHash,
    /// Its place (and its parts') among the staged entries.
    pub positions: Range<u64>,
}

impl PartJoiner {
    /// Takes the next entry, `encoded` as staged at `position`; returns
    /// the one before it once it is whole.
    pub fn push(
        &mut self,
        e: bus::DirectoryEntry,
        encoded: &[u8],
        position: u64,
        errors: &mut Vec<String>,
    ) -> Option<Joined> {
        if e.member_part == 0 {
            let mut digest = EntryDigest::new();
            digest.update(encoded);
            let before = self.flush();
            self.pending = Some(Pending {
                entry: e,
                digest,
                positions: position..position + 1,
            });
            return before;
        }
        match &mut self.pending {
            Some(last) if last.entry.object_guid == e.object_guid => {
                last.entry.member_dns.extend(e.member_dns);
                last.positions.end = position + 1;
                last.digest.update(encoded);
            }
            _ => errors.push(format!(
                "member part {} of object {} arrived without its entry",
                e.member_part, e.object_guid
            )),
        }
        None
    }

    /// The entry held, if any: no more parts of it follow.
    pub fn flush(&mut self) -> Option<Joined> {
        self.pending.take().map(|p| Joined {
            entry: p.entry,
            digest: p.digest.finish(),
            positions: p.positions,
        })
    }

    /// The last entry.
    pub fn finish(mut self) -> Option<Joined> {
        self.flush()
    }
}

/// Counts what an applied (or previewed) run did.
fn record_metrics(
    run: &dirsync_store::RunRecord,
    plan: &plan::Plan,
    synced: &Synced,
    now: dirsync_core::UnixMillis,
) {
    use dirsync_telemetry::metrics::{IntegrationLabels, SyncLabels, metrics};
    let m = metrics();
    let integration = run.integration_id.clone();
    if run.trigger == Trigger::Preview {
        m.runs
            .get_or_create(&RunLabels {
                integration,
                outcome: "previewed".to_owned(),
                run_kind: run.kind.as_str().to_owned(),
            })
            .inc();
        return;
    }
    let count = |operation: &str, kind: ObjectKind, n: u64| {
        m.objects_synced
            .get_or_create(&SyncLabels {
                integration: integration.clone(),
                kind: kind.as_str().to_owned(),
                operation: operation.to_owned(),
            })
            .inc_by(n);
    };
    for (&(operation, kind), &n) in &synced.0 {
        count(operation, kind, n);
    }
    for r in &plan.removals {
        count("remove", r.kind, 1);
    }
    for r in &plan.held {
        count("held", r.kind, 1);
    }
    let blocked = matches!(plan.hold, Some(plan::Hold::Guard { .. }));
    let labels = RunLabels {
        integration: integration.clone(),
        outcome: if blocked { "blocked" } else { "succeeded" }.to_owned(),
        run_kind: run.kind.as_str().to_owned(),
    };
    m.runs.get_or_create(&labels).inc();
    m.run_duration_seconds
        .get_or_create(&labels)
        .observe((now - run.created_at).max(0) as f64 / 1000.0);
    let by_integration = IntegrationLabels { integration };
    m.entries_recognised
        .get_or_create(&by_integration)
        .inc_by(plan.recognised);
    if blocked {
        m.runs_blocked.get_or_create(&by_integration).inc();
    } else {
        m.last_success_seconds
            .get_or_create(&by_integration)
            .set(now / 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::{Joined, PartJoiner, Skips};
    use dirsync_proto::bus::DirectoryEntry;
    use prost::Message;

    fn join_parts(entries: impl IntoIterator<Item = DirectoryEntry>) -> (Vec<Joined>, Vec<String>) {
        let mut joiner = PartJoiner::default();
        let mut errors = Vec::new();
        let mut out: Vec<Joined> = (0..)
            .zip(entries)
            .filter_map(|(n, e)| {
                let encoded = e.encode_to_vec();
                joiner.push(e, &encoded, n, &mut errors)
            })
            .collect();
        out.extend(joiner.finish());
        (out, errors)
    }

    fn e(guid: &str, part: u32, members: &[&str]) -> DirectoryEntry {
        DirectoryEntry {
            object_guid: guid.into(),
            member_part: part,
            member_dns: members.iter().map(|m| (*m).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_is_staged_as_the_bytes_the_collector_encoded() {
        use dirsync_proto::bus::{
            CollectionStarted, CollectorEvent, ObjectBatch, ObjectBatchHead, StagedCollectorEvent,
            collector_event::Event,
        };
        let batch = ObjectBatch {
            sequence: 7,
            entries: vec![
                e("a", 0, &["x"]),
                e("g", 0, &["1"]),
                e("g", 1, &["2"]),
                e("b", 0, &[]),
            ],
        };
        let event = |event| CollectorEvent {
            account_id: "acme".into(),
            integration_id: "i1".into(),
            run_id: "r1".into(),
            attempt: 2,
            event: Some(event),
        };
        let wire = event(Event::Batch(batch.clone())).encode_to_vec();
        let staged = StagedCollectorEvent::decode(wire.as_slice()).expect("same wire format");
        assert_eq!((staged.run_id.as_str(), staged.attempt), ("r1", 2));
        let bytes = staged.batch.expect("a batch event carries its batch");
        assert_eq!(bytes, batch.encode_to_vec());
        let head = ObjectBatchHead::decode(bytes.as_ref()).expect("a batch");
        assert_eq!(head.sequence, 7);
        assert_eq!(
            head.entries.iter().filter(|e| e.member_part == 0).count(),
            3
        );
        // What collectors send: the batch as an LZ4 block.
        let block = dirsync_proto::lz4::compress(&batch.encode_to_vec());
        let wire = event(Event::BatchLz4(block.clone())).encode_to_vec();
        let staged = StagedCollectorEvent::decode(wire.as_slice()).expect("same wire format");
        assert_eq!(
            (staged.batch, staged.batch_lz4.as_deref()),
            (None, Some(&block[..]))
        );
        assert_eq!(
            dirsync_proto::lz4::decompress(&block).expect("a block"),
            batch.encode_to_vec()
        );
        // An empty batch is still a batch; other events carry none.
        let empty = event(Event::Batch(ObjectBatch::default())).encode_to_vec();
        assert_eq!(
            StagedCollectorEvent::decode(empty.as_slice())
                .expect("an event")
                .batch,
            Some(prost::bytes::Bytes::new())
        );
        let started = event(Event::Started(CollectionStarted::default())).encode_to_vec();
        assert_eq!(
            StagedCollectorEvent::decode(started.as_slice())
                .expect("an event")
                .batch,
            None
        );
    }

    #[test]
    fn an_index_read_decides_scope_as_the_whole_entry_does() {
        use dirsync_proto::bus::{
            DirectoryEntryIndex, ObjectBatch, ObjectBatchEntries, ObjectKind,
        };
        let user = DirectoryEntry {
            kind: ObjectKind::User as i32,
            object_guid: "00000000-0000-0000-0000-000000000001".into(),
            dn: "CN=User 1,OU=People,DC=x".into(),
            mail: "one@example.com".into(),
            proxy_addresses: vec![
                "smtp:alias@example.com".into(),
                "SMTP:primary@example.com".into(),
                "X500:/o=x".into(),
            ],
            display_name: "User 1".into(),
            manager_dn: "CN=Boss,DC=x".into(),
            user_account_control: Some(514),
            ..Default::default()
        };
        let group = DirectoryEntry {
            kind: ObjectKind::Group as i32,
            object_guid: "00000000-0000-0000-0000-000000000002".into(),
            dn: "CN=G,DC=x".into(),
            member_dns: vec!["CN=User 1,OU=People,DC=x".into()],
            ..Default::default()
        };
        let wire = ObjectBatch {
            sequence: 3,
            entries: vec![user.clone(), group.clone()],
        }
        .encode_to_vec();
        let batch = ObjectBatchEntries::decode(wire.as_slice()).expect("same wire format");
        assert_eq!(batch.sequence, 3);
        for (read, whole) in batch.entries.into_iter().zip([user, group]) {
            assert_eq!(read.as_ref(), whole.encode_to_vec());
            let read = DirectoryEntryIndex::decode(read).expect("an entry");
            let read = dirsync_convert::object_of(super::indexed_entry(read)).expect("valid");
            let whole = dirsync_convert::object_of(whole).expect("valid");
            assert_eq!(
                (
                    read.anchor,
                    read.kind,
                    &read.dn,
                    &read.primary_address,
                    &read.aliases
                ),
                (
                    whole.anchor,
                    whole.kind,
                    &whole.dn,
                    &whole.primary_address,
                    &whole.aliases
                )
            );
            assert!(read.member_dns.is_empty() && read.attributes.display_name.is_empty());
        }
    }

    #[test]
    fn parts_join_their_entry() {
        let (joined, errors) = join_parts([
            e("a", 0, &["x"]),
            e("g", 0, &["1", "2"]),
            e("g", 1, &["3"]),
            e("g", 2, &["4"]),
            e("b", 0, &[]),
            e("c", 1, &["lost"]),
        ]);
        assert_eq!(joined.len(), 3);
        assert_eq!(joined[1].entry.member_dns, ["1", "2", "3", "4"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("object c"), "{errors:?}");
        // Each entry's place covers its parts; the lost part is no one's.
        let places: Vec<_> = joined.iter().map(|j| j.positions.clone()).collect();
        assert_eq!(places, [0..1, 1..4, 4..5]);
    }

    #[test]
    fn a_joined_entry_is_digested_with_its_parts() {
        let digests = |entries: Vec<DirectoryEntry>| -> Vec<_> {
            join_parts(entries).0.iter().map(|j| j.digest).collect()
        };
        let whole = digests(vec![e("g", 0, &["1"]), e("g", 1, &["2"]), e("b", 0, &[])]);
        assert_eq!(
            whole,
            digests(vec![e("g", 0, &["1"]), e("g", 1, &["2"]), e("b", 0, &[])])
        );
        let one_part_changed = digests(vec![e("g", 0, &["1"]), e("g", 1, &["3"]), e("b", 0, &[])]);
        assert_ne!(whole[0], one_part_changed[0]);
        assert_eq!(whole[1], one_part_changed[1]);
        let without_part = digests(vec![e("g", 0, &["1"]), e("b", 0, &[])]);
        assert_ne!(whole[0], without_part[0]);
        assert_eq!(whole[1], without_part[1]);
    }

    #[test]
    fn skips_place_batches_and_read_only_those_with_entries_to_read() {
        let mut skips = Skips::default();
        // Three batches of 3, 2 and 4 entries.
        assert_eq!(skips.batch(0, 3, true), Some(0));
        assert_eq!(skips.batch(1, 2, true), Some(3));
        assert_eq!(skips.batch(2, 4, true), Some(5));
        skips.leave_out(0..3);
        skips.leave_out(3..4);
        skips.leave_out(6..9);
        assert_eq!(skips.batch(1, 2, false), Some(3));
        assert_eq!(skips.batch(3, 1, false), None, "never placed");
        assert!(skips.left_out(2) && !skips.left_out(4) && !skips.left_out(5));
        // Batch 0 is all left out: the second pass starts at batch 1.
        assert_eq!(skips.next_to_read(0, false), Some(1));
        assert_eq!(skips.next_to_read(2, false), Some(2));
        skips.leave_out(4..6);
        assert_eq!(skips.next_to_read(0, false), None);
        // A run the planner does not allow to leave entries out.
        skips.read_all();
        assert_eq!(skips.next_to_read(0, false), Some(0));
        assert!(!skips.left_out(2));

        // Batches out of order are not placed: nothing is left out.
        let mut skips = Skips::default();
        assert_eq!(skips.batch(1, 3, true), Some(0));
        skips.leave_out(0..3);
        assert!(!skips.left_out(1));
        assert_eq!(skips.next_to_read(0, false), Some(0));
    }
}
