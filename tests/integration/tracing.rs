//! One sync run is one trace across the four services: OTLP export to an
//! in-process receiver, context carried in gRPC metadata and NATS headers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use dirsync_proto::api as pb;
use dirsync_tests::{Distributed, FIXTURE_PASSWORD, Fixture, create_integration, sync};

/// trace id → services that sent spans of it; and every span's name and
/// attribute values, to check that no secret is exported.
#[derive(Default, Clone)]
struct Receiver(
    Arc<Mutex<BTreeMap<Vec<u8>, BTreeSet<String>>>>,
    Arc<Mutex<Vec<String>>>,
);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut traces = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let mut texts = self.1.lock().unwrap();
                    texts.push(span.name.clone());
                    let events = span.events.iter().flat_map(|e| &e.attributes);
                    for a in span.attributes.iter().chain(events) {
                        texts.push(format!("{}={:?}", a.key, a.value));
                    }
                    traces
                        .entry(span.trace_id)
                        .or_default()
                        .insert(service.clone());
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn one_sync_run_is_one_trace_across_the_services() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let fx = Fixture::seed();
    let stack = Distributed::start_traced(&endpoint).await;
    let mut client = stack.client("acme").await;
    let i = create_integration(&mut client, fx.settings("Fixture AD"), FIXTURE_PASSWORD).await;
    let run = sync(&mut client, &i.id).await;
    assert_eq!(run.state, pb::RunState::Succeeded as i32, "{}", run.error);

    let wanted: BTreeSet<String> = ["gateway", "scheduler", "collector", "reconciler"]
        .iter()
        .map(|r| format!("dirsync-{r}"))
        .collect();
    let started = std::time::Instant::now();
    loop {
        let traces = receiver.0.lock().unwrap().clone();
        if traces.values().any(|services| wanted.is_subset(services)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no trace spans all four services: {:?}",
            traces.values().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let exported = receiver.1.lock().unwrap().join("\n");
    assert!(!exported.is_empty());
    assert!(
        !exported.contains(FIXTURE_PASSWORD),
        "a span carries the password"
    );
    // Container logs are JSON lines.
    let log = stack.log("gateway");
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('{') && first.contains("\"level\""),
        "{first}"
    );
    server.abort();
}
