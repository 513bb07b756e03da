//! The run assembler: a run's batches in sequence order, read into one
//! planner (the first planning pass).
//!
//! The batches come from memory while they arrive — one collector sends a
//! run's batches in order, and the reconciler that records the run's start
//! reads each as it stages it — and from staging for whatever did not come
//! that way: batches another reconciler staged, a gap or a batch out of
//! order, everything after a restart. Either way one [`FirstPass`] reads
//! them, in the same order, so a run is planned one way only.

mod parts;
mod reader;
mod skips;

use std::sync::{Arc, Mutex};

use prost::bytes::Bytes;

use dirsync_core::plan::Planner;
use dirsync_core::{IntegrationSettings, UnixMillis};
use dirsync_store::{SettledMark, StagedBatch, Store, StoreError};

pub(crate) use reader::{BatchReader, Collected};
pub(crate) use skips::Skips;

#[cfg(test)]
pub(crate) use parts::tests::e as test_entry;

/// Staged batches read per query (each up to the collector's 512 KB).
pub(crate) const STAGED_PAGE: u32 = 4;

/// How long a run's assembly from memory keeps its place after the last
/// batch came while its run is active: another run may take it then (the
/// collection was abandoned without an end).
const LIVE_IDLE_MILLIS: i64 = 10 * 60 * 1000;

/// Which run of which integration, and what its collection reads.
#[derive(Clone, Debug)]
pub(crate) struct RunKey<'a> {
    pub(crate) account_id: &'a str,
    pub(crate) integration_id: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) attempt: u32,
    /// The source cannot read memberships (a Global Catalog port).
    pub(crate) memberships_unavailable: bool,
}

/// A run's first planning pass: its batches read in sequence order, each
/// entry indexed by the planner, which finds the entries the second pass
/// may leave out.
pub(crate) struct FirstPass {
    planner: Planner,
    reader: BatchReader,
    /// The sequence of the next batch to read.
    next: u32,
    reasons: Vec<String>,
}

/// The first pass, done: the planner, the second pass's skips and what
/// the pass could not read.
pub(crate) struct Assembled {
    pub(crate) planner: Planner,
    pub(crate) skips: Skips,
    pub(crate) reasons: Vec<String>,
}

impl FirstPass {
    /// A first pass over what the store holds of the run's integration.
    pub(crate) async fn begin(
        store: &Store,
        key: &RunKey<'_>,
        settings: IntegrationSettings,
        entries: Option<u64>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            planner: stored_planner(store, key, settings, entries).await?,
            reader: BatchReader::first_pass(),
            next: 0,
            reasons: Vec::new(),
        })
    }

    /// Reads batch `sequence` if it is the next one; false otherwise
    /// (read already, or one before it has not been).
    fn read(&mut self, sequence: u32, batch: Bytes) -> bool {
        if sequence != self.next {
            return false;
        }
        self.reader
            .index(&mut self.planner, sequence, batch, &mut self.reasons);
        self.next += 1;
        true
    }

    /// Reads the run's staged batches from the next one on: all of them
    /// for a pass begun from staging, what memory did not bring for one
    /// begun as they arrived. How many it read.
    async fn catch_up(&mut self, store: &Store, key: &RunKey<'_>) -> Result<u32, StoreError> {
        let mut pages = Pages::new(store, key.run_id, key.attempt, self.next);
        let mut read = 0;
        while let Some(page) = pages.next(&self.reader.skips, true).await? {
            for staged in page {
                self.next = staged.sequence.saturating_add(1);
                self.reader
                    .index_staged(&mut self.planner, staged, &mut self.reasons);
                read += 1;
            }
        }
        Ok(read)
    }

    /// Reads what is left from staging and ends the pass.
    pub(crate) async fn finish(
        mut self,
        store: &Store,
        key: &RunKey<'_>,
    ) -> Result<Assembled, StoreError> {
        let arrived = self.next;
        let staged = self.catch_up(store, key).await?;
        tracing::info!(
            run = %key.run_id,
            "first pass: {arrived} batches read as they arrived, {staged} from staging"
        );
        self.reader.index_last(&mut self.planner, &mut self.reasons);
        Ok(Assembled {
            planner: self.planner,
            skips: self.reader.skips,
            reasons: self.reasons,
        })
    }

    pub(crate) fn settings(&self) -> &IntegrationSettings {
        self.planner.settings()
    }
}

/// The first pass of the run whose batches this reconciler reads as they
/// arrive. It is used at the run's end only if what it read at the start
/// still holds: the integration's settings, whether memberships are read,
/// and the store's objects (see [`SettledMark`]; while a run is active, no
/// other run of its integration applies).
struct Live {
    account_id: String,
    run_id: String,
    attempt: u32,
    memberships_unavailable: bool,
    mark: SettledMark,
    pass: FirstPass,
    /// When it began, or last read a batch.
    active_at: UnixMillis,
}

/// Assembles runs: holds the one run read from memory as it arrives.
#[derive(Default)]
pub(crate) struct Assembler {
    live: Mutex<Option<Live>>,
}

impl Assembler {
    /// Begins reading the run from memory as its collection starts, unless
    /// another active run holds the place.
    pub(crate) async fn begin(&self, store: &Store, key: &RunKey<'_>, now: UnixMillis) {
        let held = self.lock().as_ref().map(|h| {
            (
                h.account_id.clone(),
                h.run_id.clone(),
                h.attempt,
                h.active_at,
            )
        });
        if let Some((account, run, attempt, active_at)) = held {
            if run == key.run_id && attempt == key.attempt {
                return; // the start delivered again
            }
            if run != key.run_id && now - active_at < LIVE_IDLE_MILLIS {
                // Unless its run settled (another reconciler took its end).
                let settled = match store.get_run(&account, &run).await {
                    Ok(r) => !r.state.is_active(),
                    Err(e) => matches!(e, StoreError::NotFound(_)),
                };
                if !settled {
                    return;
                }
            }
        }
        *self.lock() = None;
        let begun = async {
            let integration = store
                .get_integration(key.account_id, key.integration_id)
                .await?;
            // The mark first: what moves after it shows at the end.
            let mark = store.settled_mark(key.account_id, key.run_id).await?;
            let pass = FirstPass::begin(store, key, integration.settings, None).await?;
            Ok::<_, StoreError>(Live {
                account_id: key.account_id.to_owned(),
                run_id: key.run_id.to_owned(),
                attempt: key.attempt,
                memberships_unavailable: key.memberships_unavailable,
                mark,
                pass,
                active_at: now,
            })
        };
        match begun.await {
            Ok(live) => *self.lock() = Some(live),
            Err(e) => {
                tracing::warn!(run = %key.run_id, error = %e, "the run's batches are read from staging at its end");
            }
        }
    }

    /// A batch of a run just staged: read now if it is the next of the
    /// run read from memory, else left to staging.
    pub(crate) fn arrived(
        &self,
        run_id: &str,
        attempt: u32,
        sequence: u32,
        batch: Bytes,
        now: UnixMillis,
    ) {
        let mut slot = self.lock();
        if let Some(live) = slot.as_mut()
            && live.run_id == run_id
            && live.attempt == attempt
        {
            if live.pass.read(sequence, batch) {
                live.active_at = now;
            } else if sequence > live.pass.next {
                tracing::debug!(run = %run_id, sequence, "a batch out of order: read from staging at the end");
            }
        }
    }

    /// Forgets the run (it failed, or its integration went).
    pub(crate) fn forget(&self, run_id: &str, attempt: u32) {
        drop(self.take(run_id, attempt));
    }

    /// The run's first pass, done: from memory as far as it came, if what
    /// that read at the start still holds, and from staging for the rest;
    /// else from staging only.
    pub(crate) async fn first_pass(
        &self,
        store: &Store,
        key: &RunKey<'_>,
        settings: &IntegrationSettings,
        entries: u64,
    ) -> Result<Assembled, StoreError> {
        if let Some(live) = self.take(key.run_id, key.attempt) {
            let holds = live.memberships_unavailable == key.memberships_unavailable
                && live.pass.settings() == settings
                && live.mark == store.settled_mark(key.account_id, key.run_id).await?;
            if holds {
                return live.pass.finish(store, key).await;
            }
            tracing::info!(run = %key.run_id, "the first pass is read again from the staged batches: the settings or the store moved during the collection");
        }
        FirstPass::begin(store, key, settings.clone(), Some(entries))
            .await?
            .finish(store, key)
            .await
    }

    fn take(&self, run_id: &str, attempt: u32) -> Option<Live> {
        let mut slot = self.lock();
        if slot
            .as_ref()
            .is_some_and(|l| l.run_id == run_id && l.attempt == attempt)
        {
            slot.take()
        } else {
            None
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Live>> {
        self.live.lock().expect("not poisoned")
    }
}

/// A planner over what the store holds of the run's integration, with
/// room for `entries`, or (not known yet) as many as the store holds.
async fn stored_planner(
    store: &Store,
    key: &RunKey<'_>,
    settings: IntegrationSettings,
    entries: Option<u64>,
) -> Result<Planner, StoreError> {
    let current = store
        .current_objects(
            key.account_id,
            key.integration_id,
            key.memberships_unavailable,
        )
        .await?;
    let room = entries.map_or(current.objects.len(), |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    // Why the plan keeps stored member edges (see `Planner::new`).
    let note = key.memberships_unavailable.then(|| {
        "the Global Catalog does not hold the member attribute; use port 636 or 389 to sync members"
            .to_owned()
    });
    let aliases = store.anchor_aliases(key.account_id).await?;
    let returning = store.returning_users(key.account_id).await?;
    let mut planner = Planner::new(Arc::new(settings), note, Arc::new(current))
        .with_aliases(Arc::new(aliases))
        .watch_returning(Arc::new(returning));
    planner.reserve(room);
    Ok(planner)
}

/// A run's staged batches in sequence order, a page at a time, less those
/// a planning pass has nothing to read in.
pub(crate) struct Pages<'a> {
    store: &'a Store,
    run_id: &'a str,
    attempt: u32,
    /// The next sequence number to read; `None` after the last batch.
    from: Option<u32>,
}

impl<'a> Pages<'a> {
    pub(crate) fn new(store: &'a Store, run_id: &'a str, attempt: u32, from: u32) -> Self {
        Self {
            store,
            run_id,
            attempt,
            from: Some(from),
        }
    }

    /// The next page of batches that hold an entry to read (`skips`);
    /// `None` once all are read.
    pub(crate) async fn next(
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
