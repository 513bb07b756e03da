//! The collector: pulls a `SyncJob`, binds to the integration's directory,
//! pages through its Root DN and publishes `ObjectBatch`es (each compressed
//! as an LZ4 block) followed by a `CollectionEnd` with the totals.
//! Stateless: it holds the master key to open the job's sealed bind
//! password, and nothing else.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use prost::Message;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use dirsync_bus::{Bus, Delivery, Topic};
use dirsync_core::secret::password_aad;
use dirsync_core::{Clock, DirectorySchema, Dn, EncryptionMode, Keyring, SealedSecret};
use dirsync_ldap::delta::{DeltaError, DirSyncMode, DomainController, USN_SOURCE};
use dirsync_ldap::syncrepl::SYNCREPL_SOURCE;
use dirsync_ldap::timestamp::TIMESTAMP_SOURCE;
use dirsync_ldap::{Endpoint, LdapError, Target, Timeouts};
use dirsync_proto::bus::{self, collector_event::Event};

/// Entries per `ObjectBatch`, at most: a search page's worth ([`PAGE_SIZE`]).
pub const BATCH_ENTRIES: usize = 1000;
/// Encoded bytes per `ObjectBatch`, at most (entries permitting): half of
/// NATS' default 1 MB max_payload, which its LZ4 block stays under however
/// little it compresses.
pub const BATCH_BYTES: usize = 512 * 1024;
/// A group entry larger than this travels in parts (`member_part`).
pub const PART_BYTES: usize = 256 * 1024;

/// Splits an entry too large for one bus message into the entry with its
/// first members and continuations carrying the rest (`member_part` 1, 2,
/// …). Other entries come back as they are.
pub fn split_entry(mut e: bus::DirectoryEntry, part_bytes: usize) -> Vec<bus::DirectoryEntry> {
    if e.encoded_len() <= part_bytes || e.member_dns.len() < 2 {
        return vec![e];
    }
    // A delta's member GUIDs follow their DNs into the same parts.
    let with_guids = e.member_guids.len() == e.member_dns.len();
    let mut guids = if with_guids {
        std::mem::take(&mut e.member_guids)
    } else {
        Vec::new()
    }
    .into_iter();
    let mut members = std::mem::take(&mut e.member_dns).into_iter().peekable();
    let mut parts = Vec::new();
    let mut current = e;
    let mut part = 0u32;
    loop {
        // Fill this part up to the budget (at least one member per part),
        // counting what each member adds: its bytes, their length prefix
        // and a field tag of at most two bytes.
        let mut size = current.encoded_len();
        while let Some(m) = members.peek() {
            let mut grows = m.len() + prost::length_delimiter_len(m.len()) + 2;
            if with_guids {
                grows += 36 + 1 + 2;
            }
            if !current.member_dns.is_empty() && size + grows > part_bytes {
                break;
            }
            size += grows;
            current.member_dns.extend(members.next());
            current.member_guids.extend(guids.next());
        }
        let guid = current.object_guid.clone();
        let kind = current.kind;
        let delta = current.delta;
        parts.push(current);
        if members.peek().is_none() {
            return parts;
        }
        part += 1;
        current = bus::DirectoryEntry {
            kind,
            object_guid: guid,
            member_part: part,
            delta,
            ..Default::default()
        };
    }
}
/// LDAP page size (RFC 2696): AD's default MaxPageSize; a server with a
/// lower limit returns smaller pages.
pub const PAGE_SIZE: i32 = 1000;

pub struct Collector {
    pub bus: Bus,
    /// Opens the jobs' bind passwords.
    pub keys: Arc<Keyring>,
    /// `None`: every partition.
    pub partition: Option<String>,
    pub timeouts: Timeouts,
    /// CA certificates trusted in Strict mode besides the system's.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Where modifyTimestamp polling takes its time when the directory
    /// tells none, and how long its reads take.
    pub clock: Arc<dyn Clock>,
}

/// What a job reads under its Root DN.
struct Scope {
    directory: DirectorySchema,
    include_contacts: bool,
    /// Active Directory: poll uSNChanged rather than DirSync.
    poll_usn: bool,
}

/// Changes a delta holds in memory, at most: beyond, a full read is
/// cheaper than re-reading each changed object.
pub const MAX_DELTA_ENTRIES: usize = 50_000;

/// What a collection reads: what changed, read ahead of publishing, or
/// the whole Root DN.
enum Reading {
    Delta {
        entries: Vec<bus::DirectoryEntry>,
        summary: dirsync_ldap::CollectionSummary,
    },
    Full {
        /// Why a delta job reads in full.
        reason: String,
        /// What the run should say about its deltas.
        notes: Vec<String>,
    },
}

/// Restarts on another host within one delivery of a job.
const PASSES_PER_DELIVERY: u32 = 2;

/// The attempt number of a collection: every delivery of the job, and every
/// restart on another host within a delivery, is a new attempt, numbered
/// upwards. Batches of earlier attempts never count.
pub fn attempt_number(delivered: u32, pass: u32) -> u32 {
    delivered.saturating_sub(1) * PASSES_PER_DELIVERY + pass.min(PASSES_PER_DELIVERY - 1) + 1
}

/// Why a job's collection failed, as the run will show it.
#[derive(Debug, thiserror::Error)]
enum CollectError {
    #[error("{0}")]
    Job(String),
    #[error(transparent)]
    Ldap(#[from] LdapError),
    #[error("publishing to the bus failed: {0}")]
    Bus(#[from] dirsync_bus::BusError),
}

impl Collector {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(partition = ?self.partition, "collector started");
        let topic = Topic::Jobs {
            partition: self.partition.clone(),
        };
        dirsync_bus::consume(&self.bus, topic, shutdown, |d| self.handle(d)).await?;
        tracing::info!("collector stopped");
        Ok(())
    }

    async fn handle(&self, delivery: Delivery) {
        let job = match bus::SyncJob::decode(delivery.payload.clone()) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "dropping a job that is not a SyncJob message");
                let _ = delivery.ack().await;
                return;
            }
        };
        let span = tracing::info_span!("collect", run = %job.run_id, delivery = delivery.delivered);
        if let Err(e) = self.collect(&job, &delivery).instrument(span).await {
            // The bus is where results go: retry the whole job.
            tracing::warn!(error = %e, "bus unavailable during collection; the job will be redelivered");
            let _ = delivery.nak(Duration::from_secs(5)).await;
            return;
        }
        if let Err(e) = delivery.ack().await {
            tracing::warn!(error = %e, "acknowledging the job failed");
        }
    }

    async fn publish(
        &self,
        job: &bus::SyncJob,
        attempt: u32,
        id: &str,
        event: Event,
    ) -> Result<(), dirsync_bus::BusError> {
        let msg = bus::CollectorEvent {
            account_id: job.account_id.clone(),
            integration_id: job.integration_id.clone(),
            run_id: job.run_id.clone(),
            attempt,
            event: Some(event),
        };
        self.bus
            .publish(
                &Topic::Events,
                &format!("{}:{attempt}:{id}", job.run_id),
                msg.encode_to_vec().into(),
            )
            .await
    }

    fn target(&self, job: &bus::SyncJob) -> Result<(Target, Dn, Scope), CollectError> {
        let c = job
            .connection
            .as_ref()
            .ok_or_else(|| CollectError::Job("the job carries no connection settings".into()))?;
        let sealed: SealedSecret = dirsync_convert::sealed_from_bus(
            c.password
                .clone()
                .ok_or_else(|| CollectError::Job("the integration has no bind password".into()))?,
        );
        let password = self
            .keys
            .open(&sealed, &password_aad(&job.account_id, &job.integration_id))
            .map_err(|e| CollectError::Job(format!("the bind password cannot be opened: {e}")))?;
        let root_dn = Dn::parse(&c.root_dn)
            .map_err(|e| CollectError::Job(format!("root DN {:?}: {e}", c.root_dn)))?;
        let encryption = match bus::EncryptionMode::try_from(c.encryption_mode) {
            _ if !c.encrypt => None,
            Ok(bus::EncryptionMode::Relaxed) => Some(EncryptionMode::Relaxed),
            _ => Some(EncryptionMode::Strict),
        };
        let port = u16::try_from(c.port)
            .map_err(|_| CollectError::Job(format!("port {} is out of range", c.port)))?;
        let directory =
            dirsync_convert::directory_from_bus(c.directory_type, c.ldap_schema.as_ref())
                .map_err(CollectError::Job)?;
        Ok((
            Target {
                host: c.host.clone(),
                alternate_host: Some(c.alternate_host.clone()).filter(|h| !h.is_empty()),
                port,
                encryption,
                allow_insecure_bind: c.allow_insecure_bind,
                bind_dn: c.user_dn.clone(),
                password,
                extra_roots: self.extra_roots.clone(),
                timeouts: self.timeouts,
            },
            root_dn,
            Scope {
                directory,
                include_contacts: c.include_contacts,
                poll_usn: bus::DeltaMethod::try_from(c.delta_method)
                    == Ok(bus::DeltaMethod::UsnChanged),
            },
        ))
    }

    /// Collects the job and reports the outcome on the bus; only a bus
    /// failure is returned (the job must then be delivered again).
    ///
    /// Hosts are tried in order, primary first. A host that cannot be
    /// reached is skipped; a host that fails in the middle of a collection
    /// makes the collection restart on the next host as a new attempt, so
    /// that the partial read can never be taken for a result.
    async fn collect(
        &self,
        job: &bus::SyncJob,
        delivery: &Delivery,
    ) -> Result<(), dirsync_bus::BusError> {
        let mut pass = 0;
        let failure = match self.target(job) {
            Err(e) => e,
            Ok((target, root_dn, scope)) => {
                let endpoints = target.endpoints();
                let mut last = None;
                let mut unreachable = Vec::new();
                // What the run says of hosts it left for the next one.
                let mut failover = Vec::new();
                for (i, endpoint) in endpoints.iter().enumerate() {
                    let next = endpoints.get(i + 1);
                    let session = match dirsync_ldap::connect_host(&target, endpoint).await {
                        Ok(s) => s,
                        Err(e) if e.is_connection_failure() && next.is_some() => {
                            tracing::warn!(%endpoint, error = %e, "host unreachable; trying the alternate host");
                            unreachable.push(e.to_string());
                            failover.push(failed_over(
                                job,
                                endpoint,
                                next,
                                "could not be reached",
                                &e,
                            ));
                            continue;
                        }
                        Err(e) => {
                            last = Some(e.into());
                            break;
                        }
                    };
                    let attempt = attempt_number(delivery.delivered, pass);
                    match self
                        .read(
                            job, attempt, delivery, session, &target, endpoint, &root_dn, &scope,
                            &failover,
                        )
                        .await
                    {
                        Ok(()) => return Ok(()),
                        Err(CollectError::Bus(e)) => return Err(e),
                        Err(CollectError::Ldap(e))
                            if e.is_connection_failure() && next.is_some() =>
                        {
                            tracing::warn!(%endpoint, error = %e, "host failed mid-collection; restarting on the alternate host");
                            failover.push(failed_over(
                                job,
                                endpoint,
                                next,
                                "failed in the middle of the read",
                                &e,
                            ));
                            pass += 1;
                        }
                        Err(e) => {
                            last = Some(e);
                            break;
                        }
                    }
                }
                match last {
                    // Say why every host failed, not only the last one.
                    Some(e) if !unreachable.is_empty() => {
                        CollectError::Job(format!("{}; then {e}", unreachable.join("; ")))
                    }
                    Some(e) => e,
                    None => CollectError::Job("no host could be reached".into()),
                }
            }
        };
        tracing::warn!(error = %failure, "collection failed");
        if let CollectError::Ldap(e) = &failure {
            dirsync_telemetry::metrics::metrics()
                .ldap_errors
                .get_or_create(&dirsync_telemetry::metrics::ErrorLabels {
                    code: e.code().to_owned(),
                })
                .inc();
        }
        let end = bus::CollectionEnd {
            error: failure.to_string(),
            kind: job.kind,
            ..Default::default()
        };
        let attempt = attempt_number(delivery.delivered, pass);
        self.publish(job, attempt, "end", Event::End(end)).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn read(
        &self,
        job: &bus::SyncJob,
        attempt: u32,
        delivery: &Delivery,
        mut session: dirsync_ldap::Session,
        target: &Target,
        endpoint: &Endpoint,
        root_dn: &Dn,
        scope: &Scope,
        failover: &[String],
    ) -> Result<(), CollectError> {
        let host = if endpoint.port == target.port {
            session.host.clone()
        } else {
            endpoint.to_string()
        };
        let memberships_unavailable = scope.directory.is_global_catalog(endpoint.port);
        let delta_job = bus::JobKind::try_from(job.kind) == Ok(bus::JobKind::Delta);
        let (reading, cursor) = self
            .plan_reading(
                job,
                &mut session,
                root_dn,
                scope,
                delta_job,
                memberships_unavailable,
            )
            .await?;
        let kind = match reading {
            Reading::Delta { .. } => bus::JobKind::Delta,
            Reading::Full { .. } => bus::JobKind::Full,
        };
        tracing::info!(%host, attempt, kind = kind.as_str_name(), "bound; collecting");
        self.publish(
            job,
            attempt,
            "start",
            Event::Started(bus::CollectionStarted {
                host: host.clone(),
                memberships_unavailable,
                kind: kind as i32,
            }),
        )
        .await?;

        // LDAP reading and publishing overlap: entries flow through a
        // bounded channel to the batcher, so memory stays flat.
        let (tx, rx) = mpsc::channel::<bus::DirectoryEntry>(BATCH_ENTRIES * 2);
        let batcher = async move {
            let mut rx = rx;
            let mut sequence = 0u32;
            let mut bytes = 0usize;
            let mut entries = 0u64;
            let mut batch = Vec::with_capacity(BATCH_ENTRIES);
            let mut last_progress = Instant::now();
            // A long collection tells the bus it is still working, well
            // within the ack deadline.
            let progress_every = self.bus.ack_wait() / 3;
            loop {
                let next = rx.recv().await;
                let done = next.is_none();
                // Batches close at BATCH_ENTRIES entries or BATCH_BYTES; a
                // large group arrives in parts that each fit.
                let mut full = Vec::new();
                for piece in next.map(|e| split_entry(e, PART_BYTES)).unwrap_or_default() {
                    let size = piece.encoded_len() + 4;
                    if !batch.is_empty()
                        && (bytes + size > BATCH_BYTES || batch.len() >= BATCH_ENTRIES)
                    {
                        full.push(std::mem::take(&mut batch));
                        bytes = 0;
                    }
                    bytes += size;
                    batch.push(piece);
                }
                if done && !batch.is_empty() {
                    full.push(std::mem::take(&mut batch));
                }
                for b in full {
                    entries += b.iter().filter(|e| e.member_part == 0).count() as u64;
                    let b = bus::ObjectBatch {
                        sequence,
                        entries: b,
                    };
                    let block = dirsync_proto::lz4::compress(&b.encode_to_vec());
                    self.publish(
                        job,
                        attempt,
                        &format!("b{sequence}"),
                        Event::BatchLz4(block),
                    )
                    .await?;
                    sequence += 1;
                    if last_progress.elapsed() > progress_every {
                        delivery.in_progress().await?;
                        last_progress = Instant::now();
                    }
                }
                if done {
                    return Ok::<_, CollectError>((sequence, entries));
                }
            }
        };
        let mut full_reason = String::new();
        let mut full_notes = Vec::new();
        let reader = async {
            let summary = match reading {
                Reading::Delta { entries, summary } => {
                    for e in entries {
                        if tx.send(e).await.is_err() {
                            break;
                        }
                    }
                    Ok(summary)
                }
                Reading::Full { reason, notes } => {
                    full_reason = reason;
                    full_notes = notes;
                    session
                        .collect(
                            root_dn,
                            &scope.directory,
                            scope.include_contacts,
                            PAGE_SIZE,
                            |e| {
                                let tx = tx.clone();
                                async move {
                                    tx.send(e).await.map_err(|_| {
                                        LdapError::Search("the batcher stopped".into())
                                    })
                                }
                            },
                        )
                        .await
                }
            };
            drop(tx);
            summary
        };
        let (summary, batched) = tokio::join!(reader, batcher);
        session.unbind().await;
        let (batches, entries) = batched?;
        let summary = summary?;
        tracing::info!(
            batches,
            entries,
            referrals = summary.referrals,
            "collection complete"
        );
        let end = bus::CollectionEnd {
            batches,
            entries,
            complete: summary.incomplete_reasons.is_empty(),
            incomplete_reasons: summary.incomplete_reasons,
            error: String::new(),
            host,
            referrals: summary.referrals,
            memberships_unavailable,
            kind: kind as i32,
            full_reason,
            cursor,
            warnings: failover
                .iter()
                .cloned()
                .chain(summary.notes)
                .chain(full_notes)
                .collect(),
        };
        self.publish(job, attempt, "end", Event::End(end)).await?;
        Ok(())
    }
}

impl Collector {
    /// Decides what the collection reads, and reads a delta ahead: a
    /// delta job reads what changed since the cursor of the domain
    /// controller it reached, and in full when there is none or the
    /// directory refuses it. A full read of Active Directory takes a
    /// DirSync cookie first, where the next delta starts: a change made
    /// during the read is then in that delta too.
    async fn plan_reading(
        &self,
        job: &bus::SyncJob,
        session: &mut dirsync_ldap::Session,
        root_dn: &Dn,
        scope: &Scope,
        delta_job: bool,
        memberships_unavailable: bool,
    ) -> Result<(Reading, Option<bus::Cursor>), CollectError> {
        let full = |reason: String| Reading::Full {
            reason,
            notes: Vec::new(),
        };
        if let DirectorySchema::Ldap(schema) = &scope.directory {
            return plan_ldap(
                job,
                session,
                root_dn,
                scope,
                schema,
                delta_job,
                self.clock.as_ref(),
            )
            .await;
        }
        if memberships_unavailable {
            // A Global Catalog port: no DirSync over it, and a full run
            // keeps stored members anyway.
            let reason = if delta_job {
                "a Global Catalog port offers no delta reads; the run read in full".to_owned()
            } else {
                String::new()
            };
            return Ok((full(reason), None));
        }
        let dc = match session.domain_controller().await {
            Ok(dc) => dc,
            Err(e) if e.is_connection_failure() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "the domain controller cannot be identified; no delta cursor");
                let reason = if delta_job {
                    format!(
                        "the domain controller could not be identified for a delta ({e}); the run read in full"
                    )
                } else {
                    String::new()
                };
                return Ok((full(reason), None));
            }
        };
        if !delta_job {
            return baseline(session, &dc, scope.poll_usn, String::new()).await;
        }
        // Under uSNChanged polling, only its own cursors; under DirSync,
        // also those of a fallback to polling.
        let found = job.cursors.iter().find(|c| {
            c.server == dc.invocation_id
                && (c.source == USN_SOURCE
                    || (!scope.poll_usn && DirSyncMode::from_source(&c.source).is_some()))
        });
        let Some(stored) = found else {
            let reason = if job.cursors.is_empty() {
                NO_CURSOR.to_owned()
            } else if job.cursors.iter().any(|c| c.server == dc.invocation_id) {
                "the stored delta cursor is DirSync's and the settings ask for uSNChanged polling; the run read in full".to_owned()
            } else {
                format!(
                    "the delta cursor was taken on another domain controller than {} (invocationId {}); the run read in full",
                    session.host, dc.invocation_id
                )
            };
            return baseline(session, &dc, scope.poll_usn, reason).await;
        };
        if let Some(reason) = outlived_tombstones(session, &dc, stored).await? {
            return baseline(session, &dc, scope.poll_usn, reason).await;
        }
        let mut entries = Vec::new();
        let mut too_many = false;
        let mut notes = Vec::new();
        let read = if stored.source == USN_SOURCE {
            match dirsync_ldap::delta::usn_of(&stored.value) {
                Some(since) => {
                    if !session.sees_tombstones(&dc.naming_context).await {
                        notes.push(dirsync_ldap::delta::USN_NO_TOMBSTONES_NOTE.to_owned());
                    }
                    session
                        .collect_usn_delta(
                            root_dn,
                            &dc,
                            scope.include_contacts,
                            since,
                            hold(&mut entries, &mut too_many),
                        )
                        .await
                }
                None => Err(DeltaError::Unavailable(
                    "the stored uSNChanged cursor is not a number".into(),
                )),
            }
        } else {
            let mode = DirSyncMode::from_source(&stored.source).unwrap_or(DirSyncMode::Replication);
            if mode == DirSyncMode::ObjectSecurity {
                notes.push(dirsync_ldap::delta::OBJECT_SECURITY_NOTE.to_owned());
            }
            session
                .collect_delta(
                    mode,
                    root_dn,
                    &dc.naming_context,
                    scope.include_contacts,
                    &stored.value,
                    hold(&mut entries, &mut too_many),
                )
                .await
        };
        match read {
            _ if too_many => baseline(session, &dc, scope.poll_usn, too_many_changes()).await,
            Ok(mut delta) => {
                delta.summary.notes.extend(notes);
                Ok((
                    Reading::Delta {
                        entries,
                        summary: delta.summary,
                    },
                    Some(bus::Cursor {
                        source: stored.source.clone(),
                        server: dc.invocation_id.clone(),
                        value: delta.cookie,
                        age_seconds: 0,
                    }),
                ))
            }
            Err(DeltaError::Ldap(e)) => Err(e.into()),
            Err(DeltaError::Unavailable(why) | DeltaError::NotPermitted(why)) => {
                tracing::warn!(reason = %why, "delta unavailable; reading in full");
                baseline(
                    session,
                    &dc,
                    scope.poll_usn,
                    format!("{why}; the run read in full"),
                )
                .await
            }
        }
    }
}

/// What a run says of a host it left for the next one, counted in the
/// failover metric.
fn failed_over(
    job: &bus::SyncJob,
    endpoint: &Endpoint,
    next: Option<&Endpoint>,
    what: &str,
    e: &LdapError,
) -> String {
    dirsync_telemetry::metrics::metrics()
        .failovers
        .get_or_create(&dirsync_telemetry::metrics::IntegrationLabels {
            integration: job.integration_id.clone(),
        })
        .inc();
    match next {
        Some(n) => {
            format!("the host {endpoint} {what} ({e}); the run went on at the alternate host {n}")
        }
        None => format!("the host {endpoint} {what} ({e})"),
    }
}

/// Why a delta job reads in full when it finds no cursor of its own.
const NO_CURSOR: &str = "no delta cursor is stored (no full sync since the settings changed, or delta reads were refused); the run read in full";

/// Why a delta job reads in full past [`MAX_DELTA_ENTRIES`] changes.
fn too_many_changes() -> String {
    format!(
        "more than {MAX_DELTA_ENTRIES} objects changed: a full read is cheaper; the run read in full"
    )
}

/// A delta's sink: holds its entries in memory, up to
/// [`MAX_DELTA_ENTRIES`]; beyond, it says so in `too_many` and stops the
/// read.
fn hold<'a>(
    entries: &'a mut Vec<bus::DirectoryEntry>,
    too_many: &'a mut bool,
) -> impl FnMut(bus::DirectoryEntry) -> std::future::Ready<Result<(), LdapError>> + 'a {
    move |e| {
        let over = entries.len() >= MAX_DELTA_ENTRIES;
        *too_many |= over;
        if !over {
            entries.push(e);
        }
        std::future::ready(if over {
            Err(LdapError::Search("too many changes".into()))
        } else {
            Ok(())
        })
    }
}

/// [`Collector::plan_reading`] of a generic LDAP directory: content
/// synchronization (RFC 4533) from the cursor of the server this session
/// reached, or modifyTimestamp polling where the directory offers none; a
/// full read with the next delta's cursor taken before it.
async fn plan_ldap(
    job: &bus::SyncJob,
    session: &mut dirsync_ldap::Session,
    root_dn: &Dn,
    scope: &Scope,
    schema: &dirsync_core::LdapSchema,
    delta_job: bool,
    clock: &dyn Clock,
) -> Result<(Reading, Option<bus::Cursor>), CollectError> {
    let server = session.host.clone();
    let found = job.cursors.iter().find(|c| {
        (c.source == SYNCREPL_SOURCE || c.source == TIMESTAMP_SOURCE) && c.server == server
    });
    let reason = match (delta_job, found) {
        (false, _) => String::new(),
        (true, None) if job.cursors.is_empty() => NO_CURSOR.to_owned(),
        (true, None) => format!(
            "the delta cursor was taken on another server than {server}; the run read in full"
        ),
        (true, Some(stored)) => {
            let mut entries = Vec::new();
            let mut too_many = false;
            let read = if stored.source == TIMESTAMP_SOURCE {
                session
                    .collect_modified(
                        schema,
                        root_dn,
                        scope.include_contacts,
                        &stored.value,
                        clock,
                        MAX_DELTA_ENTRIES,
                        hold(&mut entries, &mut too_many),
                    )
                    .await
            } else {
                session
                    .collect_syncrepl(
                        schema,
                        root_dn,
                        scope.include_contacts,
                        &stored.value,
                        hold(&mut entries, &mut too_many),
                    )
                    .await
            };
            match read {
                _ if too_many => too_many_changes(),
                Ok(delta) => {
                    return Ok((
                        Reading::Delta {
                            entries,
                            summary: delta.summary,
                        },
                        Some(bus::Cursor {
                            source: stored.source.clone(),
                            server,
                            value: delta.cookie,
                            age_seconds: 0,
                        }),
                    ));
                }
                Err(DeltaError::Ldap(e)) => return Err(e.into()),
                Err(DeltaError::Unavailable(why) | DeltaError::NotPermitted(why)) => {
                    tracing::warn!(reason = %why, "delta unavailable; reading in full");
                    format!("{why}; the run read in full")
                }
            }
        }
    };
    let cursor = |source: &str, value: Vec<u8>| bus::Cursor {
        source: source.to_owned(),
        server: server.clone(),
        value,
        age_seconds: 0,
    };
    let refused = match session.syncrepl_baseline(root_dn).await {
        Ok(cookie) => {
            let full = Reading::Full {
                reason,
                notes: Vec::new(),
            };
            return Ok((full, Some(cursor(SYNCREPL_SOURCE, cookie))));
        }
        Err(DeltaError::Ldap(e)) if e.is_connection_failure() => return Err(e.into()),
        Err(e) => e,
    };
    // No content synchronization: deltas poll modifyTimestamp.
    tracing::info!(error = %refused, "no content synchronization cookie: delta syncs poll modifyTimestamp");
    match session.timestamp_baseline(clock.now()).await {
        Ok(baseline) => {
            let mut notes = vec![format!(
                "content synchronization is unavailable ({refused})"
            )];
            notes.extend(baseline.notes);
            Ok((
                Reading::Full { reason, notes },
                Some(cursor(TIMESTAMP_SOURCE, baseline.cursor)),
            ))
        }
        Err(e) if e.is_connection_failure() => Err(e.into()),
        Err(e) => Ok((
            Reading::Full {
                reason,
                notes: vec![format!(
                    "delta syncs cannot run: content synchronization is unavailable ({refused}) and the directory's time cannot be read ({e})"
                )],
            },
            None,
        )),
    }
}

/// Cursors last applied longer ago than this have the domain's tombstone
/// lifetime (2 days at the least AD allows) read to judge them.
const TOMBSTONE_CHECK_AFTER_SECS: i64 = 2 * 86_400;

/// Why a cursor may no longer be read from: last applied longer ago than
/// the domain keeps tombstones, it may have missed deletions.
async fn outlived_tombstones(
    session: &mut dirsync_ldap::Session,
    dc: &DomainController,
    cursor: &bus::Cursor,
) -> Result<Option<String>, CollectError> {
    if cursor.age_seconds < TOMBSTONE_CHECK_AFTER_SECS {
        return Ok(None);
    }
    let days = match session.tombstone_lifetime_days(dc).await {
        Ok(days) => days,
        Err(e) if e.is_connection_failure() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "the tombstone lifetime cannot be read; taking Windows' default");
            dirsync_ldap::delta::DEFAULT_TOMBSTONE_LIFETIME_DAYS
        }
    };
    Ok((cursor.age_seconds >= i64::from(days) * 86_400).then(|| {
        format!(
            "the delta cursor was last applied {} days ago, longer than the domain keeps deleted objects (tombstone lifetime {days} days): deletions since may be gone; the run read in full",
            cursor.age_seconds / 86_400
        )
    }))
}

/// A full read, with the cursor of the next delta taken before it: a
/// DirSync cookie, or the DC's highestCommittedUSN under uSNChanged polling
/// (`poll_usn`, or where the directory refuses DirSync). With neither,
/// delta syncs do not run.
async fn baseline(
    session: &mut dirsync_ldap::Session,
    dc: &DomainController,
    poll_usn: bool,
    reason: String,
) -> Result<(Reading, Option<bus::Cursor>), CollectError> {
    let mut notes = Vec::new();
    if !poll_usn {
        match session.dirsync_baseline(&dc.naming_context).await {
            Ok((mode, cookie)) => {
                if mode == DirSyncMode::ObjectSecurity {
                    notes.push(dirsync_ldap::delta::OBJECT_SECURITY_NOTE.to_owned());
                }
                let cursor = bus::Cursor {
                    source: mode.source().to_owned(),
                    server: dc.invocation_id.clone(),
                    value: cookie,
                    age_seconds: 0,
                };
                return Ok((Reading::Full { reason, notes }, Some(cursor)));
            }
            Err(DeltaError::Ldap(e)) if e.is_connection_failure() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "DirSync refused: delta syncs poll uSNChanged");
                notes.push(format!(
                    "the domain controller refuses DirSync ({e}): delta syncs poll uSNChanged instead"
                ));
            }
        }
    }
    let Some(usn) = dc.highest_committed_usn else {
        notes.push("delta syncs cannot run: the rootDSE names no highestCommittedUSN".to_owned());
        return Ok((Reading::Full { reason, notes }, None));
    };
    if !session.sees_tombstones(&dc.naming_context).await {
        notes.push(dirsync_ldap::delta::USN_NO_TOMBSTONES_NOTE.to_owned());
    }
    let cursor = bus::Cursor {
        source: USN_SOURCE.to_owned(),
        server: dc.invocation_id.clone(),
        value: usn.to_string().into_bytes(),
        age_seconds: 0,
    };
    Ok((Reading::Full { reason, notes }, Some(cursor)))
}

#[cfg(test)]
mod tests {
    use super::{attempt_number, split_entry};
    use dirsync_proto::bus;
    use prost::Message;

    #[test]
    fn large_groups_travel_in_parts() {
        let members: Vec<String> = (0..20_000)
            .map(|i| format!("uid=u{i:07},ou=people,dc=example,dc=com"))
            .collect();
        let group = bus::DirectoryEntry {
            kind: bus::ObjectKind::Group as i32,
            object_guid: "00112233-4455-6677-8899-aabbccddeeff".into(),
            dn: "cn=all,dc=example,dc=com".into(),
            display_name: "all".into(),
            member_dns: members.clone(),
            ..Default::default()
        };
        let parts = split_entry(group.clone(), 64 * 1024);
        assert!(parts.len() > 5, "{} parts", parts.len());
        for (n, p) in parts.iter().enumerate() {
            assert!(p.encoded_len() <= 64 * 1024);
            assert_eq!(p.member_part, n as u32);
            assert_eq!(p.object_guid, group.object_guid);
            assert_eq!(p.dn.is_empty(), n > 0, "only the first part is the entry");
        }
        for p in &parts[..parts.len() - 1] {
            assert!(p.encoded_len() > 60 * 1024, "parts are filled");
        }
        let rejoined: Vec<String> = parts.into_iter().flat_map(|p| p.member_dns).collect();
        assert_eq!(rejoined, members);
        let small = bus::DirectoryEntry {
            member_dns: members[..3].to_vec(),
            ..group
        };
        assert_eq!(split_entry(small.clone(), 64 * 1024), vec![small]);
    }

    #[test]
    fn attempts_grow_with_deliveries_and_restarts() {
        assert_eq!(attempt_number(1, 0), 1);
        assert_eq!(attempt_number(1, 1), 2);
        assert_eq!(attempt_number(2, 0), 3);
        assert_eq!(attempt_number(2, 1), 4);
        assert!(attempt_number(3, 0) > attempt_number(2, 1));
    }
}
