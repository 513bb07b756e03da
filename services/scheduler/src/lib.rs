//! The scheduler owns time and turns sync requests into jobs.
//!
//! - Sync now / Sync all / Preview: the gateway creates a queued run and
//!   asks for it on the requests queue; the scheduler snapshots the
//!   integration's connection settings (the bind password stays sealed)
//!   into a `SyncJob` on the jobs queue of the integration's partition.
//! - Schedule: every tick, each enabled integration's latest due slot (in
//!   its account's time zone) becomes a run, once: the store refuses a
//!   second run for a slot, so any number of replicas may tick.
//! - Delta: between the slots, each integration with a delta interval and
//!   a stored cursor gets a delta run once the interval has passed since
//!   its last run settled. One run per integration at a time (the store
//!   refuses a second active run), so a delta never overlaps a full run;
//!   none while the integration is blocked, waiting for an admin.
//! - Stuck runs: runs active for longer than the maximum run duration fail
//!   with the reason, and free their integration.
//!
//! Time comes from the clock it is given; [`Scheduler::tick`] does one
//! round of scheduling at the clock's now, for tests and for the loop.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;

use dirsync_bus::{Bus, Delivery, Topic};
use dirsync_core::schedule::Schedule;
use dirsync_core::{Clock, DeltaMethod, EncryptionMode, RunKind, RunState, Trigger};
use dirsync_proto::bus;
use dirsync_store::{IntegrationRecord, RunRecord, Store, StoreError};

/// Scheduling settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How often the scheduler looks for due slots and stuck runs.
    pub tick: Duration,
    /// A missed slot older than this is not run on start.
    pub catch_up_horizon: Duration,
    /// A run active for longer than this fails.
    pub max_run_duration: Duration,
    /// Between delta syncs of every integration with deltas on, instead
    /// of each one's interval.
    pub delta_interval: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(30),
            catch_up_horizon: Duration::from_secs(6 * 3600),
            max_run_duration: Duration::from_secs(2 * 3600),
            delta_interval: None,
        }
    }
}

pub struct Scheduler {
    pub store: Store,
    pub bus: Bus,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Runs started for due slots: (integration id, slot).
    pub started: Vec<(String, String)>,
    /// Delta runs started: integration ids.
    pub deltas: Vec<String>,
    /// Runs failed as stuck.
    pub failed_stuck: Vec<String>,
}

const RETRY: Duration = Duration::from_secs(2);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("scheduler started");
        let requests = dirsync_bus::consume(&self.bus, Topic::Requests, shutdown.clone(), |d| {
            self.handle(d)
        });
        let ticks = async {
            let mut interval = tokio::time::interval(self.timing.tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = interval.tick() => {}
                }
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "scheduling round failed; retrying at the next tick");
                }
            }
        };
        let (requests, ()) = tokio::join!(requests, ticks);
        requests?;
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// One round: fail stuck runs, then start the runs of due slots.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        let now = self.clock.now();
        let mut report = TickReport {
            failed_stuck: self
                .store
                .fail_stuck_runs(
                    now - ms(self.timing.max_run_duration),
                    &format!(
                        "the run did not finish within the maximum run duration ({} minutes): its collector or reconciler stopped, or the directory is too slow; the integration is free to run again",
                        self.timing.max_run_duration.as_secs() / 60
                    ),
                    now,
                )
                .await?,
            ..Default::default()
        };
        for id in &report.failed_stuck {
            tracing::warn!(run = %id, "stuck run failed");
        }
        for (integration, account) in self.store.scheduled_integrations().await? {
            if !integration.settings.enabled {
                continue;
            }
            let times = integration
                .settings
                .schedule
                .clone()
                .unwrap_or_else(|| account.schedule.clone());
            let schedule = match Schedule::parse(&account.time_zone, &times) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(integration = %integration.id, error = %e, "integration not scheduled");
                    continue;
                }
            };
            let slot = schedule
                .latest_due(now, ms(self.timing.catch_up_horizon))
                // Not slots from before the integration existed.
                .filter(|slot| slot.due >= integration.created_at);
            let Some(slot) = slot else {
                if self.delta_due(&integration, now).await?
                    && self.start_delta(&integration, now).await?
                {
                    report.deltas.push(integration.id.clone());
                }
                continue;
            };
            let run = RunRecord {
                slot: Some(slot.id.clone()),
                ..RunRecord::new(
                    uuid_v4(),
                    integration.account_id.clone(),
                    integration.id.clone(),
                    Trigger::Schedule,
                    now,
                )
            };
            match self.store.create_run(&run).await {
                Ok(()) => {}
                // Taken by another replica or an earlier tick, or a run is
                // active (the slot runs when it ends, within the horizon).
                Err(StoreError::Conflict(_)) => {
                    if self.delta_due(&integration, now).await?
                        && self.start_delta(&integration, now).await?
                    {
                        report.deltas.push(integration.id.clone());
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // The message id names the slot: a replayed slot is dropped by
            // JetStream inside its dedupe window, and by the store's unique
            // (integration, slot) index after it.
            let msg_id = format!("slot:{}:{}", integration.id, slot.id);
            self.queue(&integration, &run, bus::Trigger::Schedule, &msg_id)
                .await?;
            tracing::info!(integration = %integration.id, slot = %slot.id, run = %run.id, "scheduled run queued");
            report.started.push((integration.id.clone(), slot.id));
        }
        Ok(report)
    }

    async fn handle(&self, delivery: Delivery) {
        let settle = match bus::SyncRequest::decode(delivery.payload.clone()) {
            Err(e) => {
                tracing::error!(error = %e, "dropping a sync request that is not a SyncRequest message");
                delivery.ack().await
            }
            Ok(req) => match self.dispatch(&req).await {
                Ok(()) => delivery.ack().await,
                Err(e) => {
                    tracing::warn!(run = %req.run_id, error = %e, "sync request not dispatched; retrying");
                    delivery.nak(RETRY).await
                }
            },
        };
        if let Err(e) = settle {
            tracing::warn!(error = %e, "settling a sync request failed");
        }
    }

    async fn dispatch(&self, req: &bus::SyncRequest) -> anyhow::Result<()> {
        let integration = match self
            .store
            .get_integration(&req.account_id, &req.integration_id)
            .await
        {
            Ok(i) => i,
            Err(StoreError::NotFound(_)) => {
                self.store
                    .fail_run(
                        &req.run_id,
                        0,
                        "the integration was deleted before the run started",
                        self.clock.now(),
                    )
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let run = match self.store.get_run(&req.account_id, &req.run_id).await {
            Ok(run) => run,
            Err(StoreError::NotFound(_)) => {
                tracing::warn!(run = %req.run_id, "sync request for an unknown run dropped");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let trigger = bus::Trigger::try_from(req.trigger).unwrap_or(bus::Trigger::SyncNow);
        let msg_id = format!("job:{}", req.run_id);
        self.queue(&integration, &run, trigger, &msg_id).await
    }

    /// Whether the integration's next delta is due: deltas are on, a
    /// cursor is stored, and the interval has passed since its last run
    /// settled (none is active, and it is not blocked).
    async fn delta_due(
        &self,
        integration: &IntegrationRecord,
        now: dirsync_core::UnixMillis,
    ) -> anyhow::Result<bool> {
        let interval = integration.settings.delta_interval_minutes;
        if interval == 0 {
            return Ok(false);
        }
        let runs = self
            .store
            .list_runs(&integration.account_id, &integration.id, 1)
            .await?;
        let Some(last) = runs.first() else {
            return Ok(false);
        };
        if last.state.is_active() || last.state == RunState::Blocked {
            return Ok(false);
        }
        let since = last.finished_at.unwrap_or(last.created_at);
        let interval_ms = match self.timing.delta_interval {
            Some(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            None => i64::from(interval) * 60_000,
        };
        if now - since < interval_ms {
            return Ok(false);
        }
        Ok(!self
            .store
            .cursors(&integration.account_id, &integration.id)
            .await?
            .is_empty())
    }

    /// Starts a delta run; false when another replica or tick took it.
    async fn start_delta(
        &self,
        integration: &IntegrationRecord,
        now: dirsync_core::UnixMillis,
    ) -> anyhow::Result<bool> {
        let run = RunRecord {
            kind: RunKind::Delta,
            ..RunRecord::new(
                uuid_v4(),
                integration.account_id.clone(),
                integration.id.clone(),
                Trigger::Schedule,
                now,
            )
        };
        match self.store.create_run(&run).await {
            Ok(()) => {}
            // Another replica's tick took it, or a run just started.
            Err(StoreError::Conflict(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let msg_id = format!("delta:{}", run.id);
        self.queue(integration, &run, bus::Trigger::Schedule, &msg_id)
            .await?;
        tracing::debug!(integration = %integration.id, run = %run.id, "delta run queued");
        Ok(true)
    }

    /// Publishes the run's job under `msg_id`, so that a replayed request
    /// or slot never yields a second job.
    async fn queue(
        &self,
        integration: &IntegrationRecord,
        run: &RunRecord,
        trigger: bus::Trigger,
        msg_id: &str,
    ) -> anyhow::Result<()> {
        let run_id = &run.id;
        let mut job = job_for(integration, run_id, trigger as i32);
        if run.kind == RunKind::Delta {
            let now = self.clock.now();
            job.kind = bus::JobKind::Delta as i32;
            job.cursors = self
                .store
                .cursors(&integration.account_id, &integration.id)
                .await?
                .into_iter()
                .map(|c| bus::Cursor {
                    source: c.source,
                    server: c.server,
                    value: c.value,
                    age_seconds: (now - c.updated_at).max(0) / 1000,
                })
                .collect();
        }
        let partition = job.partition.clone();
        self.bus
            .publish(
                &Topic::Jobs {
                    partition: Some(partition.clone()),
                },
                msg_id,
                job.encode_to_vec().into(),
            )
            .await?;
        tracing::info!(run = %run_id, integration = %integration.id, %partition, "sync job queued");
        Ok(())
    }
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn job_for(integration: &IntegrationRecord, run_id: &str, trigger: i32) -> bus::SyncJob {
    let s = &integration.settings;
    let (directory_type, ldap_schema) = dirsync_convert::directory_to_bus(&s.directory);
    bus::SyncJob {
        account_id: integration.account_id.clone(),
        integration_id: integration.id.clone(),
        run_id: run_id.to_owned(),
        kind: bus::JobKind::Full as i32,
        trigger,
        connection: Some(bus::Connection {
            host: s.host.clone(),
            alternate_host: s.alternate_host.clone().unwrap_or_default(),
            port: u32::from(s.port),
            encrypt: s.encryption.is_some(),
            encryption_mode: match s.encryption {
                None => bus::EncryptionMode::Unspecified,
                Some(EncryptionMode::Strict) => bus::EncryptionMode::Strict,
                Some(EncryptionMode::Relaxed) => bus::EncryptionMode::Relaxed,
            } as i32,
            user_dn: s.user_dn.to_string(),
            password: integration
                .password
                .clone()
                .map(dirsync_convert::sealed_to_bus),
            root_dn: s.root_dn.to_string(),
            include_contacts: s.include_contacts,
            directory_type: directory_type as i32,
            ldap_schema,
            delta_method: match s.delta_method {
                DeltaMethod::DirSync => bus::DeltaMethod::Dirsync,
                DeltaMethod::UsnChanged => bus::DeltaMethod::UsnChanged,
            } as i32,
            allow_insecure_bind: s.allow_insecure_bind,
        }),
        partition: s.partition(),
        cursors: Vec::new(),
    }
}
