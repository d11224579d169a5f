//! Alert delivery through a real Alertmanager (Debian's `prometheus-alertmanager`), routed
//! to a webhook receiver in this test: what a user's Alertmanager would do with our alerts.

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use telltale_processor::sinks::alertmanager::{AlertUpdate, Notifier, NotifierSettings};
use tokio::sync::mpsc;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

struct Alertmanager {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_alertmanager(webhook: &str) -> Alertmanager {
    assert!(
        std::path::Path::new(BINARY).exists(),
        "{BINARY} is missing: install it with `apt-get install prometheus-alertmanager` (./tests/run.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'service', 'sli']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let am = Alertmanager {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{}/-/ready", am.base)).send().await
            && r.status().is_success()
        {
            return am;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the next webhook notification (bounded).
async fn next(rx: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a webhook notification within 30 s")
        .expect("webhook server alive")
}

#[tokio::test]
async fn firing_and_resolved_alerts_reach_the_receiver_through_alertmanager() {
    let (tx, mut rx) = mpsc::unbounded_channel::<serde_json::Value>();
    let hook = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let am = start_alertmanager(&hook_url).await;
    let (notifier, _task) = Notifier::start(NotifierSettings {
        url: am.base.clone(),
        resend_interval: Duration::from_secs(60),
        generator_url: "http://127.0.0.1:8080/".into(),
    });
    let labels: BTreeMap<String, String> = [
        ("alertname", "SLOErrorBudgetBurn"),
        ("service", "auth-service"),
        ("team", "identity"),
        ("sli", "availability"),
        ("severity", "page"),
        ("tier", "page"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let annotations = BTreeMap::from([(
        "summary".to_owned(),
        "auth-service burns its availability budget 14.4x".to_owned(),
    )]);
    let since = chrono::Utc::now().timestamp_micros();
    notifier.send(AlertUpdate::Firing {
        labels: labels.clone(),
        annotations,
        since_us: since,
    });

    let n = next(&mut rx).await;
    assert_eq!(n["status"], "firing", "{n}");
    assert_eq!(n["alerts"][0]["labels"]["service"], "auth-service", "{n}");
    assert_eq!(n["alerts"][0]["labels"]["team"], "identity", "{n}");
    assert_eq!(n["alerts"][0]["labels"]["severity"], "page", "{n}");
    assert_eq!(
        n["alerts"][0]["annotations"]["summary"],
        "auth-service burns its availability budget 14.4x"
    );

    notifier.send(AlertUpdate::Resolved {
        labels,
        at_us: chrono::Utc::now().timestamp_micros(),
    });
    let n = next(&mut rx).await;
    assert_eq!(n["status"], "resolved", "{n}");
    assert_eq!(n["alerts"][0]["labels"]["sli"], "availability", "{n}");
    assert_eq!(
        notifier
            .stats()
            .posts_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
