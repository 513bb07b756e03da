//! Prometheus metrics of a dirsync process, served as text on
//! `GET /metrics`. Labels carry ids and kinds, never secrets.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub integration: String,
    pub kind: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub integration: String,
    pub outcome: String,
    /// `full` or `delta`.
    pub run_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntegrationLabels {
    pub integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

type HistogramFamily = Family<RunLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    /// Objects written by runs, by integration, kind and operation.
    pub objects_synced: Family<SyncLabels, Counter>,
    /// Settled runs by integration and outcome.
    pub runs: Family<RunLabels, Counter>,
    pub run_duration_seconds: HistogramFamily,
    /// Runs whose removals the deletion guard held.
    pub runs_blocked: Family<IntegrationLabels, Counter>,
    /// Entries resyncs recognised unchanged by their digests, not decoded
    /// again.
    pub entries_recognised: Family<IntegrationLabels, Counter>,
    /// Unix time of the last successful sync per integration.
    pub last_success_seconds: Family<IntegrationLabels, Gauge>,
    /// Collections that failed on the directory, by reason.
    pub ldap_errors: Family<ErrorLabels, Counter>,
    /// Hosts a collection left for the alternate one (unreachable, or
    /// failed mid-read), by integration.
    pub failovers: Family<IntegrationLabels, Counter>,
    /// Bus messages delivered more than once, by topic.
    pub redelivered: Family<TopicLabels, Counter>,
    /// Messages waiting for this process's consumer, as of its last pull.
    pub pending: Family<TopicLabels, Gauge>,
    registry: Registry,
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("dirsync");
        let m = Self {
            objects_synced: Family::default(),
            runs: Family::default(),
            run_duration_seconds: Family::new_with_constructor(run_histogram),
            runs_blocked: Family::default(),
            entries_recognised: Family::default(),
            last_success_seconds: Family::default(),
            ldap_errors: Family::default(),
            failovers: Family::default(),
            redelivered: Family::default(),
            pending: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "objects_synced",
            "Directory objects written by sync runs",
            m.objects_synced.clone(),
        );
        registry.register("runs", "Settled sync runs", m.runs.clone());
        registry.register(
            "run_duration_seconds",
            "Duration of sync runs, from request to settlement",
            m.run_duration_seconds.clone(),
        );
        registry.register(
            "runs_blocked",
            "Runs whose removals the deletion guard held",
            m.runs_blocked.clone(),
        );
        registry.register(
            "entries_recognised",
            "Collected entries recognised unchanged by their digests and not decoded again",
            m.entries_recognised.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful sync",
            m.last_success_seconds.clone(),
        );
        registry.register(
            "ldap_errors",
            "Collections that failed on the directory",
            m.ldap_errors.clone(),
        );
        registry.register(
            "failovers",
            "Collections that left a host for the alternate one",
            m.failovers.clone(),
        );
        registry.register(
            "bus_redelivered",
            "Bus messages delivered more than once",
            m.redelivered.clone(),
        );
        registry.register(
            "bus_pending",
            "Messages waiting for the consumer, as of its last pull",
            m.pending.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Serves `GET /metrics` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                metrics().render(),
            )
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
