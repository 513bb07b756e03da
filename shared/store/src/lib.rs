//! The directory store: accounts, integrations (password sealed), runs,
//! staged batches, directory objects, addresses and member edges.
//!
//! One trait, [`DirectoryStore`], implemented by one store over either
//! database (`SqlStore<D: Dialect>`): the same SQL for both (both accept
//! `$N` placeholders, `ON CONFLICT` and `RETURNING`), where they differ
//! named in `dialect::Dialect`. All SQL of dirsync is here.
//!
//! A module per part of the store: `accounts` (accounts, API tokens,
//! sessions, sign-in limits), `integrations`, `runs`, `staging` (a run's
//! batches as collected); a run's `apply`, with the address `claims`, the
//! `changes` log and `removals` (the deletion guard's approvals too); what
//! a plan reads (`plan_inputs`, and `returning` users); what the API reads
//! (`directory`). `store` hands each call of [`DirectoryStore`] to its
//! module; `row` runs a statement and reads its rows, `bulk` writes many
//! rows at once.

mod accounts;
mod apply;
mod bulk;
mod changes;
mod claims;
mod dialect;
mod directory;
mod integrations;
mod plan_inputs;
mod records;
mod removals;
mod returning;
mod row;
mod runs;
mod sieve;
mod staging;
mod store;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use dirsync_core::plan::{Current, Plan, Removal, Upsert};
use dirsync_core::returning::{Adoption, Aliases, Returning};
use dirsync_core::{ObjectGuid, SealedSecret, UnixMillis};

pub use records::{
    AccountRecord, ApplyOutcome, ChangeRecord, CursorRecord, IntegrationRecord, ObjectQuery,
    RunRecord, SessionRecord, SettledMark, SignInLimits, StagedBatch, StoredObject, TokenRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The operation does not apply to the object's current state.
    #[error("{0}")]
    Precondition(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open the store at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Self::Conflict(db.message().to_owned());
        }
        Self::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored value that cannot be read back.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// A count as the database keeps it (BIGINT).
pub(crate) fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count the database keeps, never negative.
pub(crate) fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A transaction on a database of dialect `D`.
pub(crate) type Tx<'t, D> = sqlx::Transaction<'t, D>;

/// A value as the JSON the store keeps it in.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A shared handle on the store.
pub type Store = Arc<dyn DirectoryStore>;

#[async_trait]
pub trait DirectoryStore: Send + Sync + std::fmt::Debug {
    /// Whether the database answers (for readiness).
    async fn healthy(&self) -> bool;

    async fn ensure_account(&self, account_id: &str, now: UnixMillis) -> Result<()>;
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// A token by id, revoked or not.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>>;
    async fn revoke_token(&self, account_id: &str, id: &str, now: UnixMillis) -> Result<()>;
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// A console session by id, ended or not.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Ends a session (sign-out); ending an ended one is a no-op.
    async fn end_session(&self, id: &str, now: UnixMillis) -> Result<()>;
    /// Ids of the master keys stored passwords are sealed with.
    async fn password_key_ids(&self) -> Result<Vec<String>>;
    /// How many stored passwords each master key seals, by key id.
    async fn password_key_counts(&self) -> Result<Vec<(String, u64)>>;
    /// The integrations whose password is sealed with a key other than
    /// `key_id`: what a key rotation re-seals.
    async fn passwords_not_sealed_with(&self, key_id: &str) -> Result<Vec<IntegrationRecord>>;
    /// Replaces an integration's sealed password with `to` while it is
    /// still `from` (an edit since wins, and is left as it is); whether it
    /// was replaced. Settings and times are not touched.
    async fn reseal_password(
        &self,
        account_id: &str,
        integration_id: &str,
        from: &SealedSecret,
        to: &SealedSecret,
    ) -> Result<bool>;
    async fn get_account(&self, account_id: &str) -> Result<AccountRecord>;
    /// Sets the account's time zone and default schedule (creating the
    /// account when needed).
    async fn update_account(&self, account: &AccountRecord, now: UnixMillis) -> Result<()>;
    /// Every integration of every account, with its account: the
    /// scheduler's view.
    async fn scheduled_integrations(&self) -> Result<Vec<(IntegrationRecord, AccountRecord)>>;
    /// Fails every run still active that was created before `before`.
    /// Returns the ids failed.
    async fn fail_stuck_runs(
        &self,
        before: UnixMillis,
        reason: &str,
        now: UnixMillis,
    ) -> Result<Vec<String>>;
    /// The integration's latest run that succeeded.
    async fn last_success(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<Option<RunRecord>>;

    /// Fails with `Conflict` when the account has an integration of that name.
    async fn create_integration(&self, rec: &IntegrationRecord) -> Result<()>;
    /// By id or by name.
    async fn get_integration(
        &self,
        account_id: &str,
        id_or_name: &str,
    ) -> Result<IntegrationRecord>;
    async fn list_integrations(&self, account_id: &str) -> Result<Vec<IntegrationRecord>>;
    async fn update_integration(&self, rec: &IntegrationRecord) -> Result<()>;
    /// Deletes the integration and its runs; its objects stay, unmanaged.
    async fn delete_integration(&self, account_id: &str, id: &str, now: UnixMillis) -> Result<()>;

    /// Fails with `Conflict` when the integration already has an active
    /// run, or a run for the same schedule slot.
    async fn create_run(&self, run: &RunRecord) -> Result<()>;
    async fn get_run(&self, account_id: &str, run_id: &str) -> Result<RunRecord>;
    /// Newest first.
    async fn list_runs(
        &self,
        account_id: &str,
        integration_id: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>>;
    /// The run's active run, if one is queued, collecting or reconciling.
    async fn active_run(&self, account_id: &str, integration_id: &str)
    -> Result<Option<RunRecord>>;
    /// A collector started `attempt`. Returns false when the run is settled
    /// or a later attempt already started (the event is stale).
    async fn run_started(
        &self,
        run_id: &str,
        attempt: u32,
        host: &str,
        now: UnixMillis,
    ) -> Result<bool>;
    /// See [`SettledMark`]: of the account's runs other than `run_id`.
    async fn settled_mark(&self, account_id: &str, run_id: &str) -> Result<SettledMark>;
    /// Marks an unsettled run failed. Returns false when it was settled.
    async fn fail_run(
        &self,
        run_id: &str,
        attempt: u32,
        error: &str,
        now: UnixMillis,
    ) -> Result<bool>;

    /// Counts a sign-in attempt against `limits`, as every gateway sees
    /// them; false (and not counted) when the address has had too many
    /// failures, or the account too many attempts, within their windows.
    async fn admit_sign_in(
        &self,
        account_id: &str,
        address: &str,
        now: UnixMillis,
        limits: &SignInLimits,
    ) -> Result<bool>;
    /// A sign-in of the address failed.
    async fn sign_in_failed(&self, account_id: &str, address: &str, now: UnixMillis) -> Result<()>;
    /// A sign-in of the address succeeded: its failures are forgotten.
    async fn sign_in_succeeded(&self, account_id: &str, address: &str) -> Result<()>;

    /// The account's unmanaged users, by primary address: what a new user
    /// may adopt (see `dirsync_core::returning`).
    async fn returning_users(&self, account_id: &str) -> Result<Returning>;
    /// The account's adopted objectGUIDs and the anchors they stand for.
    async fn anchor_aliases(&self, account_id: &str) -> Result<Aliases>;
    /// Records adoptions of `run`, in one transaction: each new objectGUID
    /// stands for the kept account from now on, the account moves to the
    /// run's integration (still unmanaged until the run applies), and the
    /// change log says so. An account managed meanwhile is left alone.
    async fn adopt(&self, run: &RunRecord, adoptions: &[Adoption], now: UnixMillis) -> Result<()>;

    /// Whether the database server started after `at`: PostgreSQL then
    /// lost the staged batches of runs in flight (staging writes no WAL,
    /// so recovery empties it). Never for SQLite, whose staging is kept.
    async fn restarted_since(&self, at: UnixMillis) -> Result<bool>;

    /// Stages one batch, an encoded `ObjectBatch` or (`lz4`) one
    /// compressed as an LZ4 block; a redelivered batch is a no-op.
    async fn stage_batch(
        &self,
        run_id: &str,
        attempt: u32,
        sequence: u32,
        entries: u64,
        payload: &[u8],
        lz4: bool,
    ) -> Result<()>;
    /// (batches, entries) staged for the attempt.
    async fn staged_totals(&self, run_id: &str, attempt: u32) -> Result<(u64, u64)>;
    /// Up to `limit` staged batches from sequence `from` on, in sequence
    /// order: a run's batches are read a page at a time.
    async fn staged_batches(
        &self,
        run_id: &str,
        attempt: u32,
        from: u32,
        limit: u32,
    ) -> Result<Vec<StagedBatch>>;

    /// What the store holds for an integration's objects; groups' member
    /// edges only `with_members` (a plan needs them only when the source
    /// cannot read memberships).
    async fn current_objects(
        &self,
        account_id: &str,
        integration_id: &str,
        with_members: bool,
    ) -> Result<Current>;
    /// Starts applying a run: one transaction, written a chunk at a time
    /// (see [`Apply`]). A preview run only logs what it would change.
    /// `None` when the run is settled or this attempt superseded.
    async fn begin_apply(&self, run: &RunRecord, now: UnixMillis)
    -> Result<Option<Box<dyn Apply>>>;
    /// The integration's cursors, one per source and domain controller.
    async fn cursors(&self, account_id: &str, integration_id: &str) -> Result<Vec<CursorRecord>>;
    /// What a delta plan reads of the store (see
    /// [`dirsync_core::delta::Stored`]): the integration's objects among
    /// `anchors`, and those of its objects that link to them (groups with
    /// them as members, objects they manage).
    async fn delta_stored(
        &self,
        account_id: &str,
        integration_id: &str,
        anchors: &[ObjectGuid],
    ) -> Result<dirsync_core::delta::Stored>;
    /// Accounts that delta runs of the integration removed since its last
    /// applied full run: what the deletion guard counts with a delta's own.
    async fn delta_removals_since_full(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<u64>;
    /// Applies a plan held whole, logs its changes and settles the run, in
    /// one transaction. Settled runs and stale attempts are left alone
    /// (`ApplyOutcome::AlreadySettled`).
    async fn apply(
        &self,
        run: &RunRecord,
        plan: &Plan,
        collected: u64,
        now: UnixMillis,
    ) -> Result<ApplyOutcome> {
        let Some(mut apply) = self.begin_apply(run, now).await? else {
            return Ok(ApplyOutcome::AlreadySettled);
        };
        apply.upserts(&plan.adds, &plan.updates).await?;
        apply
            .finish(plan, collected, &dirsync_core::FixedClock::new(now))
            .await
    }
    /// Change log entries, newest first: of one run, of one object, or both.
    /// An object's history leaves out preview runs unless one is named.
    async fn list_changes(
        &self,
        account_id: &str,
        run_id: Option<&str>,
        anchor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>>;

    /// Names of the account's other integrations whose latest settled run
    /// failed or is blocked: while there are any, removals are paused.
    async fn paused_by(&self, account_id: &str, integration_id: &str) -> Result<Vec<String>>;
    /// The removals a blocked run holds, with the objects as stored.
    async fn pending_removals(
        &self,
        account_id: &str,
        run_id: &str,
    ) -> Result<Vec<(Removal, Option<StoredObject>)>>;
    /// Applies exactly the removals a blocked run holds, in one
    /// transaction, and settles the run. Refused (`Precondition`) when the
    /// run is not blocked, a later run of its integration exists, or
    /// `expected` is given and differs from the number held.
    async fn approve_removals(
        &self,
        account_id: &str,
        run_id: &str,
        expected: Option<u64>,
        now: UnixMillis,
    ) -> Result<RunRecord>;

    /// Objects of a kind by display name (then anchor), as `query` says.
    async fn list_objects(
        &self,
        account_id: &str,
        query: &ObjectQuery,
    ) -> Result<Vec<StoredObject>>;
    async fn lookup_address(&self, account_id: &str, address: &str) -> Result<StoredObject>;
}

/// A run's apply in progress, in one transaction: adds and updates are
/// written as the plan produces them, so that a large run's records are
/// never all held in memory; [`Apply::finish`] applies the removals, works
/// out address owners, logs, settles the run and commits. Dropped before
/// that, nothing of it is kept.
#[async_trait]
pub trait Apply: Send {
    /// Writes adds and updates and logs them (a preview only logs them).
    /// Adds of objects another integration of the account already manages
    /// are left to it, with a warning.
    async fn upserts(&mut self, adds: &[Upsert], updates: &[Upsert]) -> Result<()>;
    /// Brings unchanged records' entry digests up to date (see
    /// [`dirsync_core::plan::Plan::entry_digests`]); a preview writes none.
    async fn entry_digests(
        &mut self,
        digests: &[(dirsync_core::ObjectGuid, Option<dirsync_core::ShortHash>)],
    ) -> Result<()>;
    /// The rest of the plan: its removals (or the removals held for
    /// approval), its entry digests and context, the unchanged count and
    /// warnings; its adds and updates count only as far as they went
    /// through [`Apply::upserts`]. The run's end (`finished_at`) is
    /// `clock`'s now when the run settles, after the apply's writes.
    async fn finish(
        self: Box<Self>,
        plan: &Plan,
        collected: u64,
        clock: &dyn dirsync_core::Clock,
    ) -> Result<ApplyOutcome>;
    /// Moves the integration's cursor for the cursor's source and server
    /// to `cursor`, in the apply's transaction: it moves only if the run
    /// applies. A full run's cursor replaces every other of the
    /// integration (they predate it).
    async fn set_cursor(&mut self, cursor: &CursorRecord, full: bool) -> Result<()>;
}

/// Opens the store at `url` (`postgres://…` or `sqlite://…`) and runs its
/// migrations.
pub async fn connect(url: &str) -> Result<Store> {
    Ok(match open(url, i64::MAX).await? {
        Pool::Postgres(pool) => Arc::new(store::SqlStore::<sqlx::Postgres> { pool }),
        Pool::Sqlite(pool) => Arc::new(store::SqlStore::<sqlx::Sqlite> { pool }),
    })
}

/// Migrates the store at `url` up to `version` only, as an older release
/// left it: for tests of what a later migration does with its rows.
#[doc(hidden)]
pub async fn migrate_to(url: &str, version: i64) -> Result<()> {
    match open(url, version).await? {
        Pool::Postgres(pool) => pool.close().await,
        Pool::Sqlite(pool) => pool.close().await,
    }
    Ok(())
}

enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Connects to `url` and runs the migrations up to `version`.
async fn open(url: &str, version: i64) -> Result<Pool> {
    let connect_err = |e: sqlx::Error| StoreError::Connect {
        url: redact_url(url),
        message: e.to_string(),
    };
    let up_to = |all: &'static [(i64, &'static str, &'static str)]| {
        &all[..all.partition_point(|(v, _, _)| *v <= version)]
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(connect_err)?;
        migrator(up_to(PG_MIGRATIONS))
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Pool::Postgres(pool))
    } else if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(connect_err)?;
        migrator(up_to(SQLITE_MIGRATIONS))
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Pool::Sqlite(pool))
    } else {
        Err(StoreError::Connect {
            url: redact_url(url),
            message: "unsupported scheme; use postgres://… or sqlite://…".to_owned(),
        })
    }
}

/// Every migration, once; each has a PostgreSQL and an SQLite file of the
/// same name.
macro_rules! migrations {
    ($($version:literal $name:literal $file:literal),* $(,)?) => {
        const PG_MIGRATIONS: &[(i64, &str, &str)] = &[$(
            ($version, $name, include_str!(concat!("../migrations/postgres/", $file))),
        )*];
        const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[$(
            ($version, $name, include_str!(concat!("../migrations/sqlite/", $file))),
        )*];
    };
}

migrations!(
    1 "init" "0001_init.sql",
    2 "one active run" "0002_one_active_run.sql",
    3 "pending removals" "0003_pending_removals.sql",
    4 "address claims" "0004_address_claims.sql",
    5 "change log" "0005_change_log.sql",
    6 "schedule" "0006_schedule.sql",
    7 "sign-in" "0007_sign_in.sql",
    8 "address claims table" "0008_address_claims_table.sql",
    9 "api tokens" "0009_api_tokens.sql",
    10 "unlogged staging" "0010_unlogged_staging.sql",
    11 "contested addresses" "0011_contested_addresses.sql",
    12 "no addresses by anchor" "0012_no_addresses_by_anchor.sql",
    13 "staged batches in lz4" "0013_staged_lz4.sql",
    14 "owners on claims" "0014_owners_on_claims.sql",
    15 "no claims by anchor" "0015_no_claims_by_anchor.sql",
    16 "entry digests" "0016_entry_digests.sql",
    17 "staged lz4 blocks" "0017_staged_lz4_blocks.sql",
    18 "console sessions" "0018_console_sessions.sql",
    19 "search by address" "0019_search_by_address.sql",
    20 "delta sync" "0020_delta_sync.sql",
    21 "manager anchor" "0021_manager_anchor.sql",
    22 "anchor aliases" "0022_anchor_aliases.sql",
    23 "sign-in events" "0023_sign_in_events.sql",
);

fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(super::redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
