//! The store on a SQL database: [`DirectoryStore`] over a pool of
//! dialect `D` (PostgreSQL or SQLite), each call handed to the module of
//! the part of the store it belongs to.

use async_trait::async_trait;

use dirsync_core::plan::{Current, Removal};
use dirsync_core::returning::{Adoption, Aliases, Returning};
use dirsync_core::{ObjectGuid, SealedSecret, UnixMillis};

use crate::dialect::Dialect;
use crate::row::query;
use crate::{
    AccountRecord, ChangeRecord, CursorRecord, DirectoryStore, IntegrationRecord, ObjectQuery,
    Result, RunRecord, SessionRecord, SettledMark, SignInLimits, StagedBatch, StoredObject,
    TokenRecord,
};
use crate::{
    accounts, apply, directory, integrations, plan_inputs, removals, returning, runs, staging,
};

/// The store on a database of dialect `D`.
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pub pool: sqlx::Pool<D>,
}

#[async_trait]
impl<D: Dialect> DirectoryStore for SqlStore<D> {
    async fn healthy(&self) -> bool {
        query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    async fn ensure_account(&self, account_id: &str, now: UnixMillis) -> Result<()> {
        accounts::ensure_account(&self.pool, account_id, now).await
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<()> {
        accounts::create_token(&self.pool, t).await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        accounts::token(&self.pool, id).await
    }

    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        accounts::list_tokens(&self.pool, account_id).await
    }

    async fn revoke_token(&self, account_id: &str, id: &str, now: UnixMillis) -> Result<()> {
        accounts::revoke_token(&self.pool, account_id, id, now).await
    }

    async fn create_session(&self, t: &SessionRecord) -> Result<()> {
        accounts::create_session(&self.pool, t).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        accounts::session(&self.pool, id).await
    }

    async fn end_session(&self, id: &str, now: UnixMillis) -> Result<()> {
        accounts::end_session(&self.pool, id, now).await
    }

    async fn password_key_ids(&self) -> Result<Vec<String>> {
        integrations::password_key_ids(&self.pool).await
    }

    async fn password_key_counts(&self) -> Result<Vec<(String, u64)>> {
        integrations::password_key_counts(&self.pool).await
    }

    async fn passwords_not_sealed_with(&self, key_id: &str) -> Result<Vec<IntegrationRecord>> {
        integrations::passwords_not_sealed_with(&self.pool, key_id).await
    }

    async fn reseal_password(
        &self,
        account_id: &str,
        integration_id: &str,
        from: &SealedSecret,
        to: &SealedSecret,
    ) -> Result<bool> {
        integrations::reseal_password(&self.pool, account_id, integration_id, from, to).await
    }

    async fn get_account(&self, account_id: &str) -> Result<AccountRecord> {
        accounts::get_account(&self.pool, account_id).await
    }

    async fn update_account(&self, account: &AccountRecord, now: UnixMillis) -> Result<()> {
        accounts::update_account(&self.pool, account, now).await
    }

    async fn scheduled_integrations(&self) -> Result<Vec<(IntegrationRecord, AccountRecord)>> {
        integrations::scheduled_integrations(&self.pool).await
    }

    async fn fail_stuck_runs(
        &self,
        before: UnixMillis,
        reason: &str,
        now: UnixMillis,
    ) -> Result<Vec<String>> {
        runs::fail_stuck_runs(&self.pool, before, reason, now).await
    }

    async fn last_success(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<Option<RunRecord>> {
        runs::last_success(&self.pool, account_id, integration_id).await
    }

    async fn create_integration(&self, rec: &IntegrationRecord) -> Result<()> {
        integrations::create_integration(&self.pool, rec).await
    }

    async fn get_integration(
        &self,
        account_id: &str,
        id_or_name: &str,
    ) -> Result<IntegrationRecord> {
        integrations::get_integration(&self.pool, account_id, id_or_name).await
    }

    async fn list_integrations(&self, account_id: &str) -> Result<Vec<IntegrationRecord>> {
        integrations::list_integrations(&self.pool, account_id).await
    }

    async fn update_integration(&self, rec: &IntegrationRecord) -> Result<()> {
        integrations::update_integration(&self.pool, rec).await
    }

    async fn delete_integration(&self, account_id: &str, id: &str, now: UnixMillis) -> Result<()> {
        removals::delete_integration(&self.pool, account_id, id, now).await
    }

    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        runs::create_run(&self.pool, run).await
    }

    async fn get_run(&self, account_id: &str, run_id: &str) -> Result<RunRecord> {
        runs::get_run(&self.pool, account_id, run_id).await
    }

    async fn list_runs(
        &self,
        account_id: &str,
        integration_id: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        runs::list_runs(&self.pool, account_id, integration_id, limit).await
    }

    async fn active_run(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<Option<RunRecord>> {
        runs::active_run(&self.pool, account_id, integration_id).await
    }

    async fn run_started(
        &self,
        run_id: &str,
        attempt: u32,
        host: &str,
        now: UnixMillis,
    ) -> Result<bool> {
        runs::run_started(&self.pool, run_id, attempt, host, now).await
    }

    async fn fail_run(
        &self,
        run_id: &str,
        attempt: u32,
        error: &str,
        now: UnixMillis,
    ) -> Result<bool> {
        runs::fail_run(&self.pool, run_id, attempt, error, now).await
    }

    async fn stage_batch(
        &self,
        run_id: &str,
        attempt: u32,
        sequence: u32,
        entries: u64,
        payload: &[u8],
        lz4: bool,
    ) -> Result<()> {
        staging::stage_batch(&self.pool, run_id, attempt, sequence, entries, payload, lz4).await
    }

    async fn settled_mark(&self, account_id: &str, run_id: &str) -> Result<SettledMark> {
        runs::settled_mark(&self.pool, account_id, run_id).await
    }

    async fn admit_sign_in(
        &self,
        account_id: &str,
        address: &str,
        now: UnixMillis,
        limits: &SignInLimits,
    ) -> Result<bool> {
        accounts::admit_sign_in(&self.pool, account_id, address, now, limits).await
    }

    async fn sign_in_failed(&self, account_id: &str, address: &str, now: UnixMillis) -> Result<()> {
        accounts::sign_in_failed(&self.pool, account_id, address, now).await
    }

    async fn sign_in_succeeded(&self, account_id: &str, address: &str) -> Result<()> {
        accounts::sign_in_succeeded(&self.pool, account_id, address).await
    }

    async fn returning_users(&self, account_id: &str) -> Result<Returning> {
        returning::returning_users(&self.pool, account_id).await
    }

    async fn anchor_aliases(&self, account_id: &str) -> Result<Aliases> {
        returning::anchor_aliases(&self.pool, account_id).await
    }

    async fn adopt(&self, run: &RunRecord, adoptions: &[Adoption], now: UnixMillis) -> Result<()> {
        returning::adopt(&self.pool, run, adoptions, now).await
    }

    async fn restarted_since(&self, at: UnixMillis) -> Result<bool> {
        staging::restarted_since(&self.pool, at).await
    }

    async fn staged_totals(&self, run_id: &str, attempt: u32) -> Result<(u64, u64)> {
        staging::staged_totals(&self.pool, run_id, attempt).await
    }

    async fn staged_batches(
        &self,
        run_id: &str,
        attempt: u32,
        from: u32,
        limit: u32,
    ) -> Result<Vec<StagedBatch>> {
        staging::staged_batches(&self.pool, run_id, attempt, from, limit).await
    }

    async fn current_objects(
        &self,
        account_id: &str,
        integration_id: &str,
        with_members: bool,
    ) -> Result<Current> {
        plan_inputs::current_objects(&self.pool, account_id, integration_id, with_members).await
    }

    async fn cursors(&self, account_id: &str, integration_id: &str) -> Result<Vec<CursorRecord>> {
        plan_inputs::cursors(&self.pool, account_id, integration_id).await
    }

    async fn delta_stored(
        &self,
        account_id: &str,
        integration_id: &str,
        anchors: &[ObjectGuid],
    ) -> Result<dirsync_core::delta::Stored> {
        plan_inputs::delta_stored(&self.pool, account_id, integration_id, anchors).await
    }

    async fn delta_removals_since_full(
        &self,
        account_id: &str,
        integration_id: &str,
    ) -> Result<u64> {
        plan_inputs::delta_removals_since_full(&self.pool, account_id, integration_id).await
    }

    async fn begin_apply(
        &self,
        run: &RunRecord,
        now: UnixMillis,
    ) -> Result<Option<Box<dyn crate::Apply>>> {
        apply::begin_apply(&self.pool, run, now).await
    }

    async fn paused_by(&self, account_id: &str, integration_id: &str) -> Result<Vec<String>> {
        directory::paused_by(&self.pool, account_id, integration_id).await
    }

    async fn pending_removals(
        &self,
        account_id: &str,
        run_id: &str,
    ) -> Result<Vec<(Removal, Option<StoredObject>)>> {
        removals::pending_removals(&self.pool, account_id, run_id).await
    }

    async fn approve_removals(
        &self,
        account_id: &str,
        run_id: &str,
        expected: Option<u64>,
        now: UnixMillis,
    ) -> Result<RunRecord> {
        removals::approve_removals(&self.pool, account_id, run_id, expected, now).await
    }

    async fn list_changes(
        &self,
        account_id: &str,
        run_id: Option<&str>,
        anchor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        directory::list_changes(&self.pool, account_id, run_id, anchor, limit).await
    }

    async fn list_objects(
        &self,
        account_id: &str,
        query: &ObjectQuery,
    ) -> Result<Vec<StoredObject>> {
        directory::list_objects(&self.pool, account_id, query).await
    }

    async fn lookup_address(&self, account_id: &str, address: &str) -> Result<StoredObject> {
        directory::lookup_address(&self.pool, account_id, address).await
    }
}
