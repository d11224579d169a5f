//! Real servers for integration tests (feature `testing`): Debian's `influxdb` (1.6,
//! `influxd`) and `victoria-metrics`, each started on a free loopback port with its data
//! in a temporary directory, waited for with a bounded deadline, and killed on drop.
//! Used by this crate's tests and by `crates/telltale/tests/it/grafana_queries.rs`.
//!
//! A missing binary fails the test with the command that installs it: these tests must
//! never pass without having talked to a server.
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;

/// How long a server may take to answer its health check after starting.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Polls `cond` every 25 ms until it returns true; panics with `what` after `deadline`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

fn find_binary(name: &str, package: &str) -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    let candidates: Vec<PathBuf> = from_path
        .chain([
            PathBuf::from("/usr/bin").join(name),
            PathBuf::from("/usr/sbin").join(name),
        ])
        .collect();
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found in PATH or /usr/bin: these tests start a real server. \
             Install it with `apt-get install {package}` (./tests/run.sh installs it for you)"
            )
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Influxd,
    VictoriaMetrics,
}

/// A running server process.
pub struct Server {
    kind: Kind,
    binary: PathBuf,
    args: Vec<String>,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The CA of the server's certificate when it serves https.
    tls_ca: Option<PathBuf>,
}

impl Server {
    /// InfluxDB 1.x (`influxd`) with a generated config: HTTP and RPC on free loopback
    /// ports, meta/data/wal in a temporary directory, reporting and monitoring off.
    pub async fn influxd() -> Self {
        Self::influxd_on(free_port()).await
    }

    /// As [`influxd`](Self::influxd), on a given HTTP port.
    pub async fn influxd_on(port: u16) -> Self {
        let binary = find_binary("influxd", "influxdb");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{meta}"
  logging-enabled = false
[data]
  dir = "{data}"
  wal-dir = "{wal}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[continuous_queries]
  enabled = false
"#,
            rpc = free_port(),
            meta = d.join("meta").display(),
            data = d.join("data").display(),
            wal = d.join("wal").display(),
        );
        let conf_path = d.join("influxdb.conf");
        std::fs::write(&conf_path, config).unwrap();
        let mut s = Self {
            kind: Kind::Influxd,
            binary,
            args: vec!["-config".into(), conf_path.display().to_string()],
            port,
            dir,
            child: None,
            tls_ca: None,
        };
        s.start().await;
        s
    }

    /// VictoriaMetrics single-node with its storage in a temporary directory.
    pub async fn victoria_metrics() -> Self {
        Self::victoria_metrics_with(None).await
    }

    /// VictoriaMetrics serving https only (`-tls`), with a certificate for 127.0.0.1 from
    /// a CA made for it; [`tls_ca`](Self::tls_ca) is that CA's file.
    pub async fn victoria_metrics_https() -> Self {
        Self::victoria_metrics_with(Some(())).await
    }

    async fn victoria_metrics_with(tls: Option<()>) -> Self {
        let binary = find_binary("victoria-metrics", "victoria-metrics");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let args = vec![
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            // Reads in the tests must see what was just written.
            "-search.latencyOffset=0s".into(),
        ];
        let mut args = args;
        let tls_ca = tls.map(|()| {
            let ca = telltale_tls::testing::TestCa::new("VictoriaMetrics test CA");
            let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1", "localhost"]);
            args.extend([
                "-tls".to_owned(),
                format!("-tlsCertFile={}", pair.cert.display()),
                format!("-tlsKeyFile={}", pair.key.display()),
            ]);
            ca.write_ca(&dir.path().join("ca.pem"))
        });
        let mut s = Self {
            kind: Kind::VictoriaMetrics,
            binary,
            args,
            port,
            dir,
            child: None,
            tls_ca,
        };
        s.start().await;
        s
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA file that verifies the server's certificate, when it serves https.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// A client for the server's own API (trusting its CA when it serves https).
    fn client(&self) -> reqwest::Client {
        let tls = telltale_core::config::ClientTlsConfig {
            ca_file: self.tls_ca.as_ref().map(|p| p.display().to_string()),
            ..Default::default()
        };
        telltale_tls::with_client_tls(telltale_tls::client_builder(), &tls, "test", "test")
            .unwrap()
            .build()
            .unwrap()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the process (again, on the same port and data) and waits until it answers
    /// its health endpoint.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        let health = match self.kind {
            Kind::Influxd => format!("{}/ping", self.url()),
            Kind::VictoriaMetrics => format!("{}/health", self.url()),
        };
        let client = self.client();
        let end = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Ok(r) = client.get(&health).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited with {status} while starting; log:\n{}",
                    self.binary.display(),
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < end,
                "{} did not answer {health} within {STARTUP_DEADLINE:?}; log:\n{}",
                self.binary.display(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no chance to flush anything: an outage as abrupt as they come.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The temporary directory holding the server's data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    // --- InfluxDB 1.x ------------------------------------------------------------------

    /// Runs an InfluxQL statement through `/query` (POST, so it may write) and returns
    /// the JSON answer; timestamps as epoch milliseconds.
    pub async fn influxql(&self, db: &str, q: &str) -> Value {
        let url = Url::parse_with_params(
            &format!("{}/query", self.url()),
            &[("db", db), ("q", q), ("epoch", "ms")],
        )
        .unwrap();
        let resp = self.client().post(url).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{q}: {status} {text}");
        let v = parse_json_exactly(&text);
        if let Some(err) = v["results"][0].get("error") {
            panic!("{q}: {err}");
        }
        v
    }

    /// `SELECT * FROM <measurement>` as rows of column → value (nulls left out).
    pub async fn select_all(
        &self,
        db: &str,
        measurement: &str,
    ) -> Vec<serde_json::Map<String, Value>> {
        let v = self
            .influxql(db, &format!("SELECT * FROM \"{measurement}\""))
            .await;
        let mut rows = Vec::new();
        for series in v["results"][0]["series"].as_array().into_iter().flatten() {
            let columns: Vec<&str> = series["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            for values in series["values"].as_array().unwrap() {
                let row = columns
                    .iter()
                    .zip(values.as_array().unwrap())
                    .filter(|(_, v)| !v.is_null())
                    .map(|(c, v)| ((*c).to_owned(), v.clone()))
                    .collect();
                rows.push(row);
            }
        }
        rows
    }

    /// Writes raw line protocol (millisecond timestamps) straight to `/write`.
    pub async fn write_raw(&self, db: &str, body: &str) -> (u16, String) {
        let url = Url::parse_with_params(
            &format!("{}/write", self.url()),
            &[("db", db), ("precision", "ms")],
        )
        .unwrap();
        let r = self
            .client()
            .post(url)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    // --- VictoriaMetrics ---------------------------------------------------------------

    /// Every series matching `selector`, as `/api/v1/export` returns them (one JSON
    /// object per series: `metric`, `values`, `timestamps`), after a forced flush.
    pub async fn export(&self, selector: &str) -> Vec<Value> {
        let client = self.client();
        let flush = client
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await
            .unwrap();
        assert!(flush.status().is_success());
        let url = Url::parse_with_params(
            &format!("{}/api/v1/export", self.url()),
            &[("match[]", selector)],
        )
        .unwrap();
        let text = client.get(url).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Marks a number that was quoted by [`parse_json_exactly`].
const NUM: &str = "@exact-number:";

/// Parses JSON with floats read exactly. serde_json's default float parser may be one
/// ulp off for 17-digit numbers (exactness is its `float_roundtrip` feature, which would
/// change the build of every crate here), and these tests compare floats exactly: numbers
/// are quoted before parsing and converted with `str::parse`, which is correctly rounded.
pub fn parse_json_exactly(text: &str) -> Value {
    let mut quoted = String::with_capacity(text.len() + 64);
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            quoted.push(c);
            match c {
                '\\' => quoted.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            quoted.push(c);
        } else if c == '-' || c.is_ascii_digit() {
            quoted.push('"');
            quoted.push_str(NUM);
            quoted.push(c);
            while let Some(&n) = chars.peek() {
                if !(n.is_ascii_digit() || matches!(n, '.' | 'e' | 'E' | '+' | '-')) {
                    break;
                }
                quoted.push(n);
                chars.next();
            }
            quoted.push('"');
        } else {
            quoted.push(c);
        }
    }
    fn unquote(v: &mut Value) {
        match v {
            Value::String(s) if s.starts_with(NUM) => {
                let t = &s[NUM.len()..];
                *v = if let Ok(i) = t.parse::<i64>() {
                    Value::from(i)
                } else {
                    Value::from(t.parse::<f64>().unwrap_or_else(|e| panic!("{t}: {e}")))
                };
            }
            Value::Array(a) => a.iter_mut().for_each(unquote),
            Value::Object(o) => o.values_mut().for_each(unquote),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(&quoted).unwrap_or_else(|e| panic!("{e}: {text}"));
    unquote(&mut v);
    v
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An SLO status as the engine reports it, red whatever `alert` says, with `burn` as the burn rates over
/// 5m, 30m, 1h, 2h, 6h, 1d and 3d, for tests of what is written to `slo_status`.
pub fn slo_status(
    service: &str,
    sli: telltale_core::slo::Sli,
    alert: telltale_core::slo::AlertLevel,
    burn: [f64; 7],
    at_us: i64,
) -> telltale_core::slo::SloStatus {
    use telltale_core::slo::{BurnRates, SloState, SloStatus};
    let [b5m, b30m, b1h, b2h, b6h, b1d, b3d] = burn;
    let state = SloState::Red;
    SloStatus {
        at_us,
        service: service.into(),
        team: "payments".into(),
        sli,
        objective: 0.999,
        window: "30days".into(),
        good: 9_971,
        total: 10_000,
        sli_value: 0.9971,
        budget_remaining: -0.25,
        burn_rates: BurnRates {
            burn_rate_5m: b5m,
            burn_rate_30m: b30m,
            burn_rate_1h: b1h,
            burn_rate_2h: b2h,
            burn_rate_6h: b6h,
            burn_rate_1d: b1d,
            burn_rate_3d: b3d,
        },
        alert,
        rule: None,
        state,
        service_state: state,
    }
}
