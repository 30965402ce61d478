//! OpenTelemetry tracing end to end (the `otel` feature): requests over real sockets through a
//! proxy with an s3s-fs origin, spans exported over OTLP/HTTP to a receiver bound by the test and
//! decoded from protobuf there.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use yatagarasu_testkit::{StubServer, TestOrigin, response};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).map(|a| {
        match a.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(AnyValue::StringValue(s)) => s.clone(),
            Some(AnyValue::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        }
    })
}

#[tokio::test]
async fn a_sampled_request_exports_its_span_tree_continuing_the_clients_trace() {
    let origin = TestOrigin::start("AKIDOTEL", "otel-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"traced");
    let receiver =
        StubServer::start(|_| response(200, &[("content-type", "application/x-protobuf")], ""))
            .await;
    // sample_ratio 0: only requests whose client decided to sample are traced (parent-based).
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDOTEL, secret_key: otel-secret}}
cache:
  cache_layers: [memory]
observability:
  tracing: {{enabled: true, otlp_endpoint: "{otlp}", sample_ratio: 0.0}}
"#,
        ep = origin.endpoint(),
        otlp = receiver.url()
    );
    let proxy = common::proxy_from_yaml(&yaml).await;
    let tracing = proxy.otel_tracing().unwrap().clone();
    let base = common::serve_on_loopback(proxy).await;
    let http = reqwest::Client::new();
    let get = |traceparent: Option<String>| {
        let mut r = http.get(format!("{base}/media/a.txt"));
        if let Some(t) = traceparent {
            r = r.header("traceparent", t);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        }
    };
    // Sampled by the client: traced (a miss: the origin is asked).
    assert_eq!(
        &get(Some(format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))).await[..],
        b"traced"
    );
    // No decision from the client, and a client that decided not to sample: not traced.
    get(None).await;
    get(Some(format!("00-{}-{CLIENT_SPAN}-00", "1".repeat(32)))).await;
    let flushed = tokio::task::spawn_blocking(move || tracing.flush())
        .await
        .unwrap();
    assert!(flushed, "the exporter reached the receiver");

    let requests = receiver.requests();
    assert!(!requests.is_empty());
    let mut spans = Vec::new();
    for r in &requests {
        assert_eq!(r.uri.path(), "/v1/traces");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        let export = ExportTraceServiceRequest::decode(r.body.clone()).unwrap();
        for rs in export.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|res| res.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value);
            assert_eq!(service, Some(AnyValue::StringValue("yatagarasu".into())));
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    // One trace: the client's.
    for s in &spans {
        assert_eq!(
            hex(&s.trace_id),
            TRACE_ID,
            "span {} is in another trace",
            s.name
        );
    }
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), s)).collect();
    assert_eq!(
        spans.len(),
        by_name.len(),
        "one span of each: {:?}",
        by_name.keys()
    );
    let server = by_name["GET /media"];
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(server, "yatagarasu.cache").as_deref(), Some("miss"));
    assert_eq!(attr(server, "yatagarasu.bucket").as_deref(), Some("media"));
    assert_eq!(
        attr(server, "http.response.body.size").as_deref(),
        Some("6")
    );
    for child in ["access_control", "cache_lookup", "s3 GetObject"] {
        let span = by_name
            .get(child)
            .unwrap_or_else(|| panic!("no {child} span among {:?}", by_name.keys()));
        assert_eq!(
            span.parent_span_id, server.span_id,
            "{child} is a child of the request"
        );
        assert!(span.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(span.end_time_unix_nano <= server.end_time_unix_nano);
    }
    assert_eq!(
        attr(by_name["s3 GetObject"], "aws.s3.key").as_deref(),
        Some("a.txt")
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
