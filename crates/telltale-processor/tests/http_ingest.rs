//! The HTTP contract of `POST /v1/events`, `/healthz` and `/metrics`, against the real
//! server on a loopback port, writing a real lake in a temp dir.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use telltale_core::slo::{SloEngine, SloSettings};
use telltale_core::{PipelineConfig, ServiceCatalog};
use telltale_lake::store::LocalDisk;
use telltale_processor::api::router;
use telltale_processor::outputs::{Outputs, SloView};
use telltale_processor::sources::http::HttpSettings;
use telltale_processor::{Metrics, Pipeline, PipelineSettings};

const CATALOG: &str = r#"
[services.auth-service]
team = "identity"
latency_threshold_ms = 250.0
"#;

struct Server {
    base: String,
    pipeline: Pipeline,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(dir: &Path, tokens: Vec<String>, max_body_bytes: usize) -> Self {
        let catalog = Arc::new(ServiceCatalog::from_toml_str(CATALOG, "test").unwrap());
        let slo = SloEngine::new(&catalog, SloSettings::default()).unwrap();
        let settings = PipelineSettings::from_config(&PipelineConfig::default(), catalog);
        let view = Arc::new(SloView::default());
        let outputs = Outputs::new(slo, Vec::new(), Arc::clone(&view));
        let pipeline = Pipeline::start(
            settings,
            Arc::new(LocalDisk::new(dir)),
            Arc::new(Metrics::new()),
            Some(outputs),
        )
        .unwrap();
        let app = router(
            pipeline.clone(),
            HttpSettings {
                tokens: telltale_core::auth::Tokens::new(tokens, Vec::new()),
                max_body_bytes,
                ..HttpSettings::default()
            },
            view,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            base,
            pipeline,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap();
        let p = self.pipeline.clone();
        tokio::task::spawn_blocking(move || p.shutdown())
            .await
            .unwrap()
            .unwrap();
    }

    async fn post(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = telltale_tls::client_builder()
            .build()
            .unwrap()
            .post(format!("{}/v1/events", self.base))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn good_line(service: &str, status: u16, latency: f64) -> String {
    format!(
        r#"{{"service":"{service}","timestamp":"{}","status_code":{status},"latency_ms":{latency}}}"#,
        now_rfc3339()
    )
}

/// One row of the events table, as read back from the lake's Parquet files.
#[derive(Debug)]
struct StoredEvent {
    service: String,
    team: String,
    is_error: bool,
    is_slow: bool,
}

/// Every file of `table` under `dir`, decoded (the processor's tests read the lake with the
/// parquet crate; SQL is `telltale-query`'s, which only the binary links).
fn table_batches(dir: &Path, table: &str) -> Vec<(String, arrow::array::RecordBatch)> {
    use telltale_lake::store::LakeStore;
    let store = LocalDisk::new(dir);
    let mut out = Vec::new();
    for f in store.list(table).unwrap() {
        if !f.rel_path.ends_with(".parquet") {
            continue;
        }
        let key = telltale_lake::PartitionKey::from_rel_path(&f.rel_path)
            .unwrap()
            .key;
        let decoded =
            telltale_lake::parquet_io::decode(store.read(&f.rel_path).unwrap(), true, "test")
                .unwrap();
        out.extend(decoded.batches.into_iter().map(|b| (key.clone(), b)));
    }
    out
}

fn stored_events(dir: &Path) -> Vec<StoredEvent> {
    use arrow::array::AsArray;
    let mut out = Vec::new();
    for (service, b) in table_batches(dir, "events") {
        let team = b.column_by_name("team").unwrap();
        let team = arrow::compute::cast(team, &arrow::datatypes::DataType::Utf8).unwrap();
        let team = team.as_string::<i32>();
        let is_error = b.column_by_name("is_error").unwrap().as_boolean();
        let is_slow = b.column_by_name("is_slow").unwrap().as_boolean();
        for i in 0..b.num_rows() {
            out.push(StoredEvent {
                service: service.clone(),
                team: team.value(i).to_owned(),
                is_error: is_error.value(i),
                is_slow: is_slow.value(i),
            });
        }
    }
    out
}

fn count(dir: &Path, keep: impl Fn(&StoredEvent) -> bool) -> usize {
    stored_events(dir).iter().filter(|e| keep(e)).count()
}

fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let root = dir.join("deadletter");
    let Ok(dates) = std::fs::read_dir(&root) else {
        return out;
    };
    for d in dates {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "ndjson") {
                for l in std::fs::read_to_string(&p).unwrap().lines() {
                    out.push(serde_json::from_str(l).unwrap());
                }
            }
        }
    }
    out.sort_by_key(|v| v["line"].as_u64());
    out
}

#[tokio::test]
async fn mixed_batch_keeps_good_lines_and_dead_letters_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 1 << 20).await;
    let body = [
        good_line("auth-service", 200, 12.0),
        "{not json".to_owned(),
        good_line("auth-service", 503, 300.0),
        r#"{"service":"auth-service","timestamp":"2025-01-01T00:00:00Z","status_code":700,"latency_ms":1}"#.to_owned(),
        good_line("brand-new-service", 200, 1.0),
    ]
    .join("\n");
    let (status, json) = server
        .post(body, &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("mixed_batch_response", json);
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("telltale_events_rejected_total{reason=\"malformed_json\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("telltale_events_rejected_total{reason=\"out_of_range\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("telltale_events_ingested_total{kind=\"service\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("telltale_unknown_service_events_total 1"),
        "{metrics}"
    );
    server.stop().await;

    assert_eq!(count(dir.path(), |_| true), 3);
    assert_eq!(
        count(dir.path(), |e| e.service == "auth-service"
            && e.is_error
            && e.is_slow
            && e.team == "identity"),
        1
    );
    assert_eq!(
        count(dir.path(), |e| e.service == "brand-new-service"
            && e.team == "unowned"),
        1
    );
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["line"], 2);
    assert_eq!(dead[0]["reason"], "malformed_json");
    assert_eq!(dead[0]["raw"], "{not json");
    assert_eq!(dead[0]["source"], "http");
    assert_eq!(dead[1]["line"], 4);
    assert_eq!(dead[1]["field"], "status_code");
    assert_eq!(
        dead[1]["message"],
        "700 is out of range: must be from 100 to 599"
    );
}

#[tokio::test]
async fn all_bad_batch_is_a_400_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 1 << 20).await;
    let (status, json) = server.post("[]\n\"x\"\n", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(json["accepted"], 0);
    assert_eq!(json["rejected"], 2);
    assert_eq!(
        json["errors"][1]["message"],
        "expected a JSON object, got a string"
    );
    server.stop().await;
}

#[tokio::test]
async fn empty_body_is_accepted_as_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 1 << 20).await;
    let (status, json) = server.post("", &[]).await;
    assert_eq!(
        (status, json["accepted"].as_u64(), json["rejected"].as_u64()),
        (200, Some(0), Some(0))
    );
    server.stop().await;
}

#[tokio::test]
async fn gzip_bodies_are_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 1 << 20).await;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for _ in 0..10 {
        writeln!(enc, "{}", good_line("auth-service", 200, 1.0)).unwrap();
    }
    let (status, json) = server
        .post(enc.finish().unwrap(), &[("content-encoding", "gzip")])
        .await;
    assert_eq!((status, json["accepted"].as_u64()), (200, Some(10)));
    let (status, json) = server.post("x", &[("content-encoding", "br")]).await;
    assert_eq!(status, 415);
    assert_eq!(
        json["error"],
        "unsupported Content-Encoding \"br\": send gzip or no encoding"
    );
    server.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_compressed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 4096).await;
    let big = good_line("auth-service", 200, 1.0).repeat(100);
    let (status, json) = server.post(big.clone(), &[]).await;
    assert_eq!(status, 413);
    assert_eq!(
        json["error"],
        "request body is over the limit of 4096 bytes: send smaller batches"
    );
    // Small on the wire, large once inflated.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(big.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 4096);
    let (status, _) = server.post(gz, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, 413);
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec!["s3cret".into()], 1 << 20).await;
    let line = good_line("auth-service", 200, 1.0);
    let (status, json) = server.post(line.clone(), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        json["error"],
        "missing or invalid bearer token: send `Authorization: Bearer <token>`"
    );
    let (status, _) = server
        .post(line.clone(), &[("authorization", "Bearer wrong")])
        .await;
    assert_eq!(status, 401);
    let (status, json) = server
        .post(line, &[("authorization", "Bearer s3cret")])
        .await;
    assert_eq!((status, json["accepted"].as_u64()), (200, Some(1)));
    // Health and metrics stay open for probes and scrapers.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_writing_to_the_same_lake() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let server = Server::start(dir.path(), vec![], 1 << 20).await;
        let body: Vec<String> = (0..50)
            .map(|i| good_line("auth-service", 200, f64::from(i)))
            .collect();
        let (status, _) = server.post(body.join("\n"), &[]).await;
        assert_eq!(status, 200, "round {round}");
        server.stop().await;
    }
    assert_eq!(count(dir.path(), |_| true), 100);
    // Rollups of both runs are there too: every event is counted in some window.
    let total: i64 = table_batches(dir.path(), "rollups")
        .iter()
        .map(|(_, b)| {
            use arrow::array::AsArray;
            let c = b.column_by_name("count").unwrap();
            c.as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(total, 100);
}

#[tokio::test]
async fn slo_api_and_status_page_show_the_burning_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 1 << 20).await;
    let now = chrono::Utc::now();
    let at = |secs_ago: i64| {
        (now - chrono::Duration::seconds(secs_ago))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    // Three minutes of a total outage of auth-service (200 errors a minute, over the
    // default min_events), then a healthy line now, which moves the watermark past them.
    let mut lines = Vec::new();
    for s in 0..600 {
        lines.push(format!(
            r#"{{"service":"auth-service","timestamp":"{}","status_code":503,"latency_ms":5}}"#,
            at(240 - s * 180 / 600)
        ));
    }
    lines.push(format!(
        r#"{{"service":"auth-service","timestamp":"{}","status_code":200,"latency_ms":5}}"#,
        at(0)
    ));
    let (status, _) = server.post(lines.join("\n"), &[]).await;
    assert_eq!(status, 200);
    let client = telltale_tls::client_builder().build().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let snapshot = loop {
        let v: serde_json::Value = serde_json::from_str(
            &client
                .get(format!("{}/api/v1/slo", server.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        if !v["evaluated_at"].is_null() {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no SLO evaluation: {v}"
        );
        // Poll interval; the loop re-checks the condition.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let svc = &snapshot["services"][0];
    assert_eq!(svc["service"], "auth-service", "{snapshot}");
    assert_eq!(svc["team"], "identity");
    assert_eq!(
        svc["state"], "red",
        "a total outage exhausts the budget: {snapshot}"
    );
    let availability = svc["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sli"] == "availability")
        .unwrap();
    assert_eq!(availability["alert"], "page", "{availability}");
    assert!(
        availability["budget_remaining"].as_f64().unwrap() < 0.0,
        "{availability}"
    );
    let page = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("/api/v1/slo"));
    server.stop().await;
}
