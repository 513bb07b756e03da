//! What the store returns.

use dirsync_core::{
    IntegrationSettings, ObjectKind, ObjectRecord, RunCounts, RunKind, RunState, SealedSecret,
    Trigger, UnixMillis,
};

#[derive(Debug, Clone)]
pub struct IntegrationRecord {
    pub id: String,
    pub account_id: String,
    pub settings: IntegrationSettings,
    pub password: Option<SealedSecret>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub account_id: String,
    pub integration_id: String,
    pub state: RunState,
    pub trigger: Trigger,
    pub attempt: u32,
    pub host: String,
    pub error: String,
    /// Why the run's removals were held (deletion guard or pause).
    pub hold_reason: String,
    pub warnings: Vec<String>,
    pub counts: RunCounts,
    pub created_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    /// The schedule slot of a scheduled run (`2026-07-01T08:00`).
    pub slot: Option<String>,
    /// Full or delta: what was read (a delta that could not be read runs
    /// in full, `full_reason` saying why).
    pub kind: RunKind,
    pub full_reason: String,
}

impl RunRecord {
    pub fn new(
        id: String,
        account_id: String,
        integration_id: String,
        trigger: Trigger,
        now: UnixMillis,
    ) -> Self {
        Self {
            id,
            account_id,
            integration_id,
            state: RunState::Queued,
            trigger,
            attempt: 0,
            host: String::new(),
            error: String::new(),
            hold_reason: String::new(),
            warnings: Vec::new(),
            counts: RunCounts::default(),
            created_at: now,
            started_at: None,
            finished_at: None,
            slot: None,
            kind: RunKind::Full,
            full_reason: String::new(),
        }
    }
}

/// Where an integration's last applied run left a directory's change
/// stream, on one domain controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRecord {
    /// `dirsync`.
    pub source: String,
    /// The domain controller's invocationId.
    pub server: String,
    pub value: Vec<u8>,
    /// The run that applied up to it.
    pub run_id: String,
    pub updated_at: UnixMillis,
}

/// A directory object as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub integration_id: String,
    pub record: ObjectRecord,
    pub managed: bool,
}

impl StoredObject {
    pub fn kind(&self) -> ObjectKind {
        self.record.kind
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied {
        counts: RunCounts,
        warnings: Vec<String>,
    },
    /// The run was already settled, or the attempt is not the latest.
    AlreadySettled,
}

/// One change log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub run_id: String,
    pub change: dirsync_core::change::Change,
    pub at: UnixMillis,
}

/// An account's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    /// IANA name.
    pub time_zone: String,
    /// Default times of day, `08:00,13:00,23:00`.
    pub schedule: String,
    /// End users may sign in with their AD password.
    pub ldap_sign_in: bool,
}

/// An API token; the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

/// Where the account's other runs stand: it moves whenever one of them
/// settles (applied, failed) or has its held removals approved, the only
/// ways the store's objects change outside a run's own apply. Compared
/// before and after a collection, it tells that what was read of the
/// store at the start still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettledMark {
    pub settled: i64,
    pub latest: i64,
    pub blocked: i64,
}

/// A staged batch as it is read back for planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBatch {
    pub sequence: u32,
    /// An encoded `ObjectBatch`, or (`lz4`) one compressed as an LZ4 block
    /// (`dirsync_proto::lz4`).
    pub payload: Vec<u8>,
    pub lz4: bool,
}

/// A signed-in admin console session. The store keeps a SHA-256 of its
/// secret, never the secret; it acts for its account through the API
/// token it was opened with, and ends when that token is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub secret_hash: String,
    pub account_id: String,
    pub token_id: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub ended_at: Option<UnixMillis>,
}

/// Which directory objects to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQuery {
    pub kind: ObjectKind,
    /// Case-insensitive text the display name or primary address contains
    /// (or the DN, when the text holds `=`, e.g. `ou=london`); empty:
    /// every object.
    pub search: String,
    /// Only these anchors; empty: any.
    pub anchors: Vec<String>,
    /// The (display name, anchor) of the last object of the page before.
    pub after: Option<(String, String)>,
    /// At most this many objects; `None`: all.
    pub limit: Option<u32>,
}

impl ObjectQuery {
    /// Every object of a kind, by display name.
    pub fn all(kind: ObjectKind) -> Self {
        Self {
            kind,
            search: String::new(),
            anchors: Vec::new(),
            after: None,
            limit: None,
        }
    }
}

/// How many sign-ins the gateways let through, counted in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failed sign-ins allowed per address within `address_window_ms`.
    pub address_failures: u32,
    pub address_window_ms: i64,
    /// Attempts allowed per account within `account_window_ms`.
    pub account_attempts: u32,
    pub account_window_ms: i64,
}
