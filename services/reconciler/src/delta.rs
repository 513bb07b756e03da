//! A delta run: its entries are few (the collector bounds them), read
//! whole from staging, planned against the stored records they name, and
//! applied with the cursor in one transaction.

use prost::Message;

use dirsync_convert::EntryDigest;
use dirsync_core::plan::{self, Writes};
use dirsync_core::{ObjectKind, Trigger, UnixMillis};
use dirsync_proto::bus;
use dirsync_store::{CursorRecord, IntegrationRecord, StagedBatch, StoreError};

use crate::apply::write;
use crate::assemble::STAGED_PAGE;
use crate::consume::{Reconciler, Settle};
use crate::metrics::Synced;

impl Reconciler {
    /// Plans and applies a delta run: its entries are few (the collector
    /// bounds them), read whole from staging, planned against the stored
    /// records they name, and applied with the cursor in one transaction.
    /// The cursor moves only when nothing is held back: held removals then
    /// come back with the next delta, which reads the same changes again
    /// (re-applying a change is a no-op).
    pub(crate) async fn apply_delta(
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
        let writes = Writes {
            adds: std::mem::take(&mut plan.adds),
            updates: std::mem::take(&mut plan.updates),
            entry_digests: Vec::new(),
        };
        write(writes, apply.as_mut(), &mut synced).await?;
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
        let outcome = apply
            .finish(&plan, end.entries, self.clock.as_ref())
            .await?;
        crate::metrics::settled(&run, &plan, &synced, &outcome, now);
        Ok(Settle::Ack)
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
