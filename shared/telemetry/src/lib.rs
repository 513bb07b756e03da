//! Logging, tracing and metrics set-up: `RUST_LOG`-style filtering (env
//! `DIRSYNC_LOG`, default `info`), text or JSON lines on standard error,
//! OTLP traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and trace context
//! carried across the bus (see [`inject`] and [`set_parent`]).

pub mod metrics;

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Flushes traces when dropped (or on [`Telemetry::shutdown`]).
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the global subscriber. CLI commands log warnings only, unless
/// `DIRSYNC_LOG` says otherwise; `service` names a service process, whose
/// spans go to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(format: &str, service: Option<&str>) -> Telemetry {
    let default = if service.is_some() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("DIRSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if format == "json" {
        Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        )
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr),
        )
    };
    let mut telemetry = Telemetry::default();
    let mut otel = None;
    if let (Some(service), Ok(endpoint)) = (service, std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        match otlp_provider(service, &endpoint) {
            Ok(provider) => {
                opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
                otel = Some(tracing_opentelemetry::layer().with_tracer(provider.tracer("dirsync")));
                telemetry.provider = Some(provider);
            }
            Err(e) => eprintln!("OTLP export to {endpoint} is off: {e}"),
        }
    }
    let result = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter)
        .try_init();
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
    telemetry
}

fn otlp_provider(service: &str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// The current span's trace context as headers (`traceparent`, …).
pub fn inject() -> Vec<(String, String)> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    map.into_iter().collect()
}

/// Makes `span` a child of the trace context in `headers`, if any.
pub fn set_parent(span: &tracing::Span, headers: &[(String, String)]) {
    let map: HashMap<String, String> = headers.iter().cloned().collect();
    if map.is_empty() {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&map));
    let _ = span.set_parent(cx);
}
