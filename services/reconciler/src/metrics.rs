//! What runs count: the run metrics (see `dirsync_telemetry::metrics`).

use std::collections::HashMap;

use dirsync_core::plan::{self, Writes};
use dirsync_core::{ObjectKind, RunKind, Trigger};
use dirsync_telemetry::metrics::{RunLabels, metrics};

/// Adds and updates written per kind, for the metrics.
#[derive(Default)]
pub(crate) struct Synced(HashMap<(&'static str, ObjectKind), u64>);

impl Synced {
    pub(crate) fn count(&mut self, writes: &Writes) {
        for (operation, upserts) in [("add", &writes.adds), ("update", &writes.updates)] {
            for u in upserts {
                *self.0.entry((operation, u.record.kind)).or_default() += 1;
            }
        }
    }
}

/// What an apply's end did: counted (see [`run_applied`]) and logged.
pub(crate) fn settled(
    run: &dirsync_store::RunRecord,
    plan: &plan::Plan,
    synced: &Synced,
    outcome: &dirsync_store::ApplyOutcome,
    now: dirsync_core::UnixMillis,
) {
    match outcome {
        dirsync_store::ApplyOutcome::Applied { counts, warnings } => {
            run_applied(run, plan, synced, now);
            tracing::info!(
                run = %run.id,
                kind = run.kind.as_str(),
                added = counts.added,
                updated = counts.updated,
                removed = counts.removed,
                unchanged = counts.unchanged,
                pending = counts.pending,
                warnings = warnings.len(),
                "run applied"
            );
        }
        dirsync_store::ApplyOutcome::AlreadySettled => {
            tracing::info!(run = %run.id, "run already settled; nothing applied");
        }
    }
}

/// A run failed.
pub(crate) fn run_failed(integration: &str, kind: RunKind) {
    metrics()
        .runs
        .get_or_create(&RunLabels {
            integration: integration.to_owned(),
            outcome: "failed".to_owned(),
            run_kind: kind.as_str().to_owned(),
        })
        .inc();
}

/// Counts what an applied (or previewed) run did.
fn run_applied(
    run: &dirsync_store::RunRecord,
    plan: &plan::Plan,
    synced: &Synced,
    now: dirsync_core::UnixMillis,
) {
    use dirsync_telemetry::metrics::{IntegrationLabels, SyncLabels};
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
