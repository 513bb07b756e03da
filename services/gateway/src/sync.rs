//! SyncService: start runs and report on them.

use prost::Message;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use dirsync_bus::Topic;
use dirsync_core::plan::RemovalAction;
use dirsync_core::{EmailAddress, RunKind, Trigger};
use dirsync_proto::api::{self, sync_service_server::SyncService};
use dirsync_proto::bus;
use dirsync_store::{RunRecord, StoreError};

use crate::error::status_of;
use crate::{Gateway, convert, required};

impl Gateway {
    /// Starts a run of one integration (or returns its active run).
    async fn start_run(
        &self,
        account: &str,
        integration: &str,
        trigger: Trigger,
        kind: RunKind,
    ) -> Result<Response<api::Run>, Status> {
        let which = required("integration", integration)?;
        let integration = self
            .store
            .get_integration(account, which)
            .await
            .map_err(status_of)?;
        if !integration.settings.enabled {
            return Err(Status::failed_precondition(format!(
                "integration {:?} is disabled; enable it to sync",
                integration.settings.name
            )));
        }
        // At most one active run per integration: a second Sync now returns it.
        if let Some(active) = self.active_run(account, &integration.id).await? {
            return Ok(Response::new(active));
        }
        let now = self.clock.now();
        let run = RunRecord {
            kind,
            ..RunRecord::new(
                uuid::Uuid::new_v4().to_string(),
                account.to_owned(),
                integration.id.clone(),
                trigger,
                now,
            )
        };
        match self.store.create_run(&run).await {
            Ok(()) => {}
            // Another request started one in between.
            Err(StoreError::Conflict(_)) => {
                return match self.active_run(account, &integration.id).await? {
                    Some(active) => Ok(Response::new(active)),
                    None => Err(Status::aborted("a run was starting concurrently; retry")),
                };
            }
            Err(e) => return Err(status_of(e)),
        }
        let request = bus::SyncRequest {
            account_id: account.to_owned(),
            integration_id: integration.id.clone(),
            run_id: run.id.clone(),
            trigger: match trigger {
                Trigger::Preview => bus::Trigger::Preview,
                Trigger::SyncAll => bus::Trigger::SyncAll,
                Trigger::Schedule => bus::Trigger::Schedule,
                Trigger::SyncNow => bus::Trigger::SyncNow,
            } as i32,
        };
        if let Err(e) = self
            .bus
            .publish(
                &Topic::Requests,
                &format!("req:{}", run.id),
                request.encode_to_vec().into(),
            )
            .await
        {
            tracing::error!(error = %e, run = %run.id, "cannot queue the run");
            let _ = self
                .store
                .fail_run(
                    &run.id,
                    0,
                    "the message bus was unavailable when the run was queued",
                    now,
                )
                .await;
            return Err(Status::unavailable(
                "the message bus is unavailable; retry later",
            ));
        }
        tracing::info!(account, integration = %integration.id, run = %run.id, "sync requested");
        Ok(Response::new(convert::run(&run)))
    }

    async fn active_run(
        &self,
        account: &str,
        integration: &str,
    ) -> Result<Option<api::Run>, Status> {
        let active = self
            .store
            .active_run(account, integration)
            .await
            .map_err(status_of)?;
        Ok(active.as_ref().map(convert::run))
    }
}

/// W3C trace context sent by the caller, if any.
fn trace_headers<T>(request: &Request<T>) -> Vec<(String, String)> {
    ["traceparent", "tracestate"]
        .iter()
        .filter_map(|k| {
            request
                .metadata()
                .get(*k)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*k).to_owned(), v.to_owned()))
        })
        .collect()
}

pub type RunStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::Run, Status>> + Send>>;

/// How often WatchRun looks at the run; it also looks as soon as the
/// reconciler announces the run settled.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

#[tonic::async_trait]
impl SyncService for Gateway {
    type WatchRunStream = RunStream;

    async fn watch_run(
        &self,
        request: Request<api::GetRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let (account, req) = self.authorize(request).await?;
        let id = required("run_id", &req.run_id)?.to_owned();
        // NOT_FOUND now rather than in the stream.
        self.store.get_run(&account, &id).await.map_err(status_of)?;
        let store = self.store.clone();
        // Before the first look, so that no announcement falls between.
        let mut announced = match self.bus.settled_runs().await {
            Ok(announced) => Some(announced),
            Err(e) => {
                tracing::debug!(error = %e, "watching without announcements");
                None
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let run = match store.get_run(&account, &id).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(status_of(e))).await;
                        return;
                    }
                };
                let mut out = convert::run(&run);
                if run.state == dirsync_core::RunState::Collecting
                    && let Ok((_, entries)) = store.staged_totals(&run.id, run.attempt).await
                    && let Some(c) = out.counts.as_mut()
                {
                    c.collected = entries;
                }
                let settled = !run.state.is_active();
                if last.as_ref() != Some(&out) {
                    if tx.send(Ok(out.clone())).await.is_err() {
                        return; // the caller went away
                    }
                    last = Some(out);
                }
                if settled {
                    return;
                }
                match announced.as_mut() {
                    Some(announced) => {
                        tokio::select! {
                            () = tokio::time::sleep(WATCH_EVERY) => {}
                            () = announced.wait_for(&id) => {}
                        }
                    }
                    None => tokio::time::sleep(WATCH_EVERY).await,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn sync_now(
        &self,
        request: Request<api::SyncNowRequest>,
    ) -> Result<Response<api::Run>, Status> {
        let parent = trace_headers(&request);
        let (account, req) = self.authorize(request).await?;
        let span =
            tracing::info_span!("sync_now", account = %account, integration = %req.integration);
        dirsync_telemetry::set_parent(&span, &parent);
        let kind = run_kind(req.kind)?;
        self.start_run(&account, &req.integration, Trigger::SyncNow, kind)
            .instrument(span)
            .await
    }

    async fn sync_all(
        &self,
        request: Request<api::SyncAllRequest>,
    ) -> Result<Response<api::SyncAllResponse>, Status> {
        let (account, _) = self.authorize(request).await?;
        let account = account.as_str();
        let integrations = self
            .store
            .list_integrations(account)
            .await
            .map_err(status_of)?;
        let mut runs = Vec::new();
        for i in integrations.iter().filter(|i| i.settings.enabled) {
            let run = self
                .start_run(account, &i.id, Trigger::SyncAll, RunKind::Full)
                .await?;
            runs.push(run.into_inner());
        }
        Ok(Response::new(api::SyncAllResponse { runs }))
    }

    async fn preview_sync(
        &self,
        request: Request<api::SyncNowRequest>,
    ) -> Result<Response<api::Run>, Status> {
        let (account, req) = self.authorize(request).await?;
        let kind = run_kind(req.kind)?;
        self.start_run(&account, &req.integration, Trigger::Preview, kind)
            .await
    }

    async fn list_changes(
        &self,
        request: Request<api::ListChangesRequest>,
    ) -> Result<Response<api::ListChangesResponse>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let mut anchor = (!req.object_id.is_empty()).then(|| req.object_id.clone());
        if !req.address.is_empty() {
            let address = EmailAddress::parse(&req.address)
                .map_err(|e| Status::invalid_argument(format!("address: {e}")))?;
            let owner = self
                .store
                .lookup_address(account, address.as_str())
                .await
                .map_err(status_of)?;
            anchor = Some(owner.record.anchor.to_string());
        }
        let run_id = (!req.run_id.is_empty()).then_some(req.run_id.as_str());
        if run_id.is_none() && anchor.is_none() {
            return Err(Status::invalid_argument(
                "run_id, object_id or address: give at least one",
            ));
        }
        let limit = if req.limit == 0 { 1000 } else { req.limit };
        let changes = self
            .store
            .list_changes(account, run_id, anchor.as_deref(), limit)
            .await
            .map_err(status_of)?;
        Ok(Response::new(api::ListChangesResponse {
            changes: changes.iter().map(convert::change).collect(),
        }))
    }

    async fn list_pending_removals(
        &self,
        request: Request<api::ListPendingRemovalsRequest>,
    ) -> Result<Response<api::ListPendingRemovalsResponse>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let id = required("run_id", &req.run_id)?;
        // NOT_FOUND for another account's run.
        self.store.get_run(account, id).await.map_err(status_of)?;
        let pending = self
            .store
            .pending_removals(account, id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(api::ListPendingRemovalsResponse {
            removals: pending
                .iter()
                .map(|(r, o)| api::PendingRemoval {
                    action: match r.action {
                        RemovalAction::Delete => api::RemovalAction::Delete,
                        RemovalAction::Demote => api::RemovalAction::Demote,
                    } as i32,
                    object: Some(o.as_ref().map(convert::object).unwrap_or_else(|| {
                        api::DirectoryObject {
                            id: r.anchor.to_string(),
                            ..Default::default()
                        }
                    })),
                })
                .collect(),
        }))
    }

    async fn approve_removals(
        &self,
        request: Request<api::ApproveRemovalsRequest>,
    ) -> Result<Response<api::Run>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let id = required("run_id", &req.run_id)?;
        let expected = (req.expected_count > 0).then_some(req.expected_count);
        let run = self
            .store
            .approve_removals(account, id, expected, self.clock.now())
            .await
            .map_err(status_of)?;
        tracing::info!(account, run = %run.id, removed = run.counts.removed, "pending removals approved");
        Ok(Response::new(convert::run(&run)))
    }

    async fn get_run(
        &self,
        request: Request<api::GetRunRequest>,
    ) -> Result<Response<api::Run>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let id = required("run_id", &req.run_id)?;
        let run = self.store.get_run(account, id).await.map_err(status_of)?;
        Ok(Response::new(convert::run(&run)))
    }

    async fn list_runs(
        &self,
        request: Request<api::ListRunsRequest>,
    ) -> Result<Response<api::ListRunsResponse>, Status> {
        let (account, req) = self.authorize(request).await?;
        let account = account.as_str();
        let which = required("integration", &req.integration)?;
        let integration = self
            .store
            .get_integration(account, which)
            .await
            .map_err(status_of)?;
        let limit = if req.limit == 0 { 20 } else { req.limit };
        let runs = self
            .store
            .list_runs(account, &integration.id, limit)
            .await
            .map_err(status_of)?;
        Ok(Response::new(api::ListRunsResponse {
            runs: runs.iter().map(convert::run).collect(),
        }))
    }
}

/// The kind a SyncNow asks for: full unless it says delta.
fn run_kind(kind: i32) -> Result<RunKind, Status> {
    match api::RunKind::try_from(kind) {
        Ok(api::RunKind::Unspecified | api::RunKind::Full) => Ok(RunKind::Full),
        Ok(api::RunKind::Delta) => Ok(RunKind::Delta),
        Err(_) => Err(Status::invalid_argument(format!(
            "kind: {kind} is not a run kind; use RUN_KIND_FULL (1) or RUN_KIND_DELTA (2)"
        ))),
    }
}
