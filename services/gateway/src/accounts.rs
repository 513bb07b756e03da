//! AccountService: the time zone and default schedule of an account, and
//! the status the admin console shows per integration.

use tonic::{Request, Response, Status};

use dirsync_core::schedule::{DEFAULT_TIMES, Schedule};
use dirsync_core::{RunState, UnixMillis};
use dirsync_proto::api::{self, account_service_server::AccountService};
use dirsync_store::{AccountRecord, IntegrationRecord, StoreError};

use crate::error::status_of;
use crate::{Gateway, convert};

fn to_api(a: &AccountRecord) -> api::Account {
    api::Account {
        id: a.id.clone(),
        time_zone: a.time_zone.clone(),
        schedule: a.schedule.clone(),
        ldap_sign_in: a.ldap_sign_in,
    }
}

impl Gateway {
    /// The account's settings; defaults for an account not stored yet.
    pub(crate) async fn account(&self, account: &str) -> Result<AccountRecord, Status> {
        match self.store.get_account(account).await {
            Ok(a) => Ok(a),
            Err(StoreError::NotFound(_)) => Ok(AccountRecord {
                id: account.to_owned(),
                time_zone: "UTC".to_owned(),
                schedule: DEFAULT_TIMES.to_owned(),
                ldap_sign_in: false,
            }),
            Err(e) => Err(status_of(e)),
        }
    }

    /// Last run, last success, next scheduled run and the pause.
    pub(crate) async fn status(
        &self,
        i: &IntegrationRecord,
        now: UnixMillis,
    ) -> Result<api::IntegrationStatus, Status> {
        // Four independent reads, at once.
        let (last, success, account, mut paused) = tokio::try_join!(
            async {
                self.store
                    .list_runs(&i.account_id, &i.id, 1)
                    .await
                    .map_err(status_of)
            },
            async {
                self.store
                    .last_success(&i.account_id, &i.id)
                    .await
                    .map_err(status_of)
            },
            self.account(&i.account_id),
            async {
                self.store
                    .paused_by(&i.account_id, &i.id)
                    .await
                    .map_err(status_of)
            },
        )?;
        let last = last.into_iter().next();
        let times = i.settings.schedule.clone().unwrap_or(account.schedule);
        let next = Schedule::parse(&account.time_zone, &times)
            .ok()
            .filter(|_| i.settings.enabled)
            .and_then(|s| s.next_after(now));
        if let Some(run) = last.as_ref().filter(|r| r.state == RunState::Blocked) {
            paused.insert(0, format!("this integration's run {} is blocked", run.id));
        }
        Ok(api::IntegrationStatus {
            last_run: last.as_ref().map(convert::run),
            last_success_at: success.and_then(|r| r.finished_at).map(convert::timestamp),
            next_run_at: next.map(|s| convert::timestamp(s.due)),
            destructive_changes_paused: !paused.is_empty(),
            paused_reason: paused.join("; "),
        })
    }
}

#[tonic::async_trait]
impl AccountService for Gateway {
    async fn get_account(
        &self,
        request: Request<api::GetAccountRequest>,
    ) -> Result<Response<api::Account>, Status> {
        let (account, _) = self.authorize(request).await?;
        let account = account.as_str();
        Ok(Response::new(to_api(&self.account(account).await?)))
    }

    async fn update_account(
        &self,
        request: Request<api::UpdateAccountRequest>,
    ) -> Result<Response<api::Account>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let current = self.account(account).await?;
        let time_zone = match req.time_zone.trim() {
            "" => current.time_zone.clone(),
            tz => tz.to_owned(),
        };
        let times = match req.schedule.trim() {
            "" => current.schedule.clone(),
            t => t.to_owned(),
        };
        let schedule = Schedule::parse(&time_zone, &times).map_err(|e| {
            let field = match e {
                dirsync_core::schedule::ScheduleError::TimeZone(_) => "time_zone",
                _ => "schedule",
            };
            Status::invalid_argument(format!("{field}: {e}"))
        })?;
        let record = AccountRecord {
            id: account.to_owned(),
            time_zone: schedule.tz.name().to_owned(),
            schedule: schedule.times_text(),
            ldap_sign_in: req.ldap_sign_in.unwrap_or(current.ldap_sign_in),
        };
        self.store
            .update_account(&record, self.clock.now())
            .await
            .map_err(status_of)?;
        tracing::info!(account, time_zone = %record.time_zone, schedule = %record.schedule, "account updated");
        Ok(Response::new(to_api(&record)))
    }
}
