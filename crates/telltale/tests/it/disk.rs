//! The data dir on a full, read-only or missing disk: a real `telltale process` over a
//! small tmpfs the test mounts (CI runs as root). A full disk refuses ingest with 503 and
//! `Retry-After`, says why in `/metrics` and the log, keeps everything acknowledged, and
//! resumes without a restart once space is back; a read-only or missing data dir is one
//! clear error and a non-zero exit. The InfluxDB sink's spool on a full disk drops what
//! it cannot write, counts it and says so, without holding up ingest, and spools again
//! once space is back.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::http::{self, expect_healthy};
use crate::support::{
    LISTEN, Server, metric, process_command, query_json, telltale, wait_for_metric,
};

const EVENTS_PER_BATCH: usize = 20;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, options: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs -o {options} {}: {} (this test needs root, as CI has)",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// `telltale process --listen` over `data` with `toml` as its config file (written in
/// `dir`) and `env`, warnings on a piped stderr.
fn processor(data: &Path, dir: &Path, toml: &str, env: &[(&str, &str)]) -> Server {
    let config = dir.join("telltale.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = process_command(data);
    cmd.arg("--config")
        .arg(&config)
        .env("TELLTALE_LOG", "warn")
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start(&mut cmd)
}

fn batch(n: usize) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    (0..EVENTS_PER_BATCH)
        .map(|i| {
            format!(
                "{{\"service\":\"disk-test\",\"timestamp\":\"{now}\",\"status_code\":200,\"latency_ms\":{}}}\n",
                n * EVENTS_PER_BATCH + i
            )
        })
        .collect()
}

/// Writes `path` until the file system refuses (ENOSPC), in ever smaller pieces.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for size in [1 << 20, 4096, 1] {
        let chunk = vec![0u8; size];
        while f.write_all(&chunk).is_ok() {}
    }
}

#[test]
fn a_full_disk_refuses_with_503_keeps_what_was_acked_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "size=24m");
    let data = disk.path.join("data");
    let server = processor(&data, dir.path(), "[wal]\nsync = \"always\"\n", &[]);
    let addr = server.addr;
    expect_healthy(addr);
    let mut acked = Vec::new();
    let mut n = 0;
    let post = |n: &mut usize| {
        let r = http::request(addr, "POST", "/v1/events", &batch(*n))
            .expect("a whole answer, full disk or not");
        *n += 1;
        r
    };
    for _ in 0..5 {
        let r = post(&mut n);
        assert_eq!(r.status, Some(200), "{}", r.raw);
        acked.push(n - 1);
    }

    fill(&disk.path.join("filler"));
    // The log's last page may still hold a batch or two; then every batch is refused.
    let mut refused = None;
    for _ in 0..200 {
        let r = post(&mut n);
        match r.status {
            Some(200) => acked.push(n - 1),
            Some(503) => {
                refused = Some(r);
                break;
            }
            _ => panic!("neither an ack nor a 503 on a full disk: {}", r.raw),
        }
    }
    let refused = refused.expect("a 503 within 200 batches on a full disk");
    let head = refused.raw.to_ascii_lowercase();
    assert!(head.contains("retry-after: 5"), "{}", refused.raw);
    assert!(
        refused.raw.contains("disk full or failing"),
        "{}",
        refused.raw
    );
    assert!(crate::support::metric(addr, "telltale_wal_write_errors_total") >= 1.0);
    let again = post(&mut n);
    assert_eq!(again.status, Some(503), "still full: {}", again.raw);

    std::fs::remove_file(disk.path.join("filler")).unwrap();
    // Space is back: the next batch is logged and acknowledged, without a restart.
    for _ in 0..5 {
        let r = post(&mut n);
        assert_eq!(r.status, Some(200), "after space came back: {}", r.raw);
        acked.push(n - 1);
    }
    let out = server.sigterm_and_wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(
        stderr.contains("write-ahead log write failed"),
        "the log says why: {stderr}"
    );

    // Exactly the acknowledged batches are in the lake, each once; the lake reads whole.
    let rows = query_json(
        &data,
        "SELECT CAST(latency_ms AS BIGINT) AS seq, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    );
    let seqs: Vec<u64> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["n"], 1, "stored twice: {r}");
            r["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), acked.len() * EVENTS_PER_BATCH);
    let batches: BTreeSet<usize> = seqs
        .iter()
        .map(|s| *s as usize / EVENTS_PER_BATCH)
        .collect();
    assert_eq!(
        batches,
        acked.into_iter().collect(),
        "the lake holds exactly the acknowledged batches"
    );
}

#[test]
fn a_read_only_data_dir_is_one_clear_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("ro"), "size=1m,ro");
    let out = telltale()
        .arg("process")
        .args(LISTEN)
        .arg("--data-dir")
        .arg(&disk.path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(
        stderr.contains(&disk.path.display().to_string()),
        "names the path: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no address printed: it never listened"
    );
}

#[test]
fn a_data_dir_that_cannot_be_created_is_one_clear_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = telltale()
        .arg("process")
        .args(LISTEN)
        .arg("--data-dir")
        .arg(file.join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("creating data dir"), "{stderr}");
    assert!(stderr.contains("Not a directory"), "{stderr}");
}

/// Lines of `service` one a second over the last `minutes`, ending now: every 10-second
/// window but the newest closes on arrival, so each batch gives the sink points.
fn history(service: &str, minutes: i64, offset: u64) -> String {
    let now = chrono::Utc::now();
    (0..minutes * 60)
        .map(|s| {
            let ts = (now - chrono::Duration::seconds(minutes * 60 - s)).to_rfc3339();
            format!(
                "{{\"service\":\"{service}\",\"timestamp\":\"{ts}\",\"status_code\":200,\"latency_ms\":{}}}\n",
                offset + s as u64
            )
        })
        .collect()
}

#[test]
fn a_full_spool_disk_drops_counts_and_says_so_without_holding_up_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Only the spool is on the small disk: the log and the lake have room.
    let spool = Tmpfs::mount(&data.join("spool"), "size=1m");
    // InfluxDB is down: a port nothing listens on. A tiny memory buffer makes the sink
    // spill to the spool at once.
    let influx = format!("http://{}", crate::support::closed_port());
    let server = processor(
        &data,
        dir.path(),
        "[influx]\napi = \"v1\"\ndatabase = \"telltale\"\nbatch_max_bytes = 1024\n\
         buffer_max_bytes = 1024\nspool_max_bytes = 65536\nretry_initial_backoff = \"50ms\"\n\
         retry_max_backoff = \"100ms\"\n",
        &[("INFLUX_URL", &influx)],
    );
    let addr = server.addr;
    expect_healthy(addr);
    fill(&spool.path.join("filler"));
    let r = http::request(addr, "POST", "/v1/events", &history("spool-a", 10, 0)).unwrap();
    assert_eq!(
        r.status,
        Some(200),
        "ingest does not wait for InfluxDB: {}",
        r.raw
    );
    let limit = std::time::Duration::from_secs(60);
    let dropped = wait_for_metric(addr, "telltale_influx_points_dropped_total", limit, |v| {
        v > 0.0
    });
    assert_eq!(metric(addr, "telltale_influx_points_spilled_total"), 0.0);
    // Still answering ingest while the spool is full.
    let r = http::request(addr, "POST", "/v1/events", &history("spool-b", 2, 0)).unwrap();
    assert_eq!(r.status, Some(200), "{}", r.raw);

    // Space is back: the next points are spooled (and wait there for InfluxDB).
    std::fs::remove_file(spool.path.join("filler")).unwrap();
    let r = http::request(addr, "POST", "/v1/events", &history("spool-c", 10, 0)).unwrap();
    assert_eq!(r.status, Some(200), "{}", r.raw);
    wait_for_metric(addr, "telltale_influx_points_spilled_total", limit, |v| {
        v > 0.0
    });
    assert!(metric(addr, "telltale_influx_points_dropped_total") >= dropped);
    assert!(metric(addr, "telltale_influx_spooled_bytes") > 0.0);

    let out = server.sigterm_and_wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(
        stderr.contains("could not write them to the spool")
            && stderr.contains("No space left on device"),
        "the log says what was dropped and why: {stderr}"
    );
    // The lake has every event, whatever became of the points.
    let rows = query_json(&data, "SELECT count(*) AS n FROM events");
    assert_eq!(rows[0]["n"], 600 + 120 + 600);
}
