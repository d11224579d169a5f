//! The `telltale-query` binary on a lake written by the lake writer: its arguments, its
//! three output formats and its errors. (`telltale query`, which runs this binary, is
//! tested in `crates/telltale/tests/it/cli.rs`; an integration test here also makes
//! `cargo test --workspace` build the binary those tests run.)

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Instant;

use telltale_lake::fixtures::{DAY0, event};
use telltale_lake::store::LocalDisk;
use telltale_lake::writer::{LakeWriter, WriterOptions};

fn write_lake(root: &Path) {
    let mut w = LakeWriter::new(Arc::new(LocalDisk::new(root)), WriterOptions::default()).unwrap();
    let events = ["checkout", "a/b"]
        .into_iter()
        .flat_map(|s| (0..3).map(move |i| event(s, DAY0 + i * 1_000_000, 10.0 * (i + 1) as f64)))
        .collect();
    w.append_events(events, Instant::now()).unwrap();
    w.flush_all().unwrap();
}

fn query(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telltale-query"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "telltale-query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn answers_sql_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    write_lake(dir.path());
    let sql = "SELECT service, count(*) AS n, max(latency_ms) AS worst \
               FROM events GROUP BY service ORDER BY service";
    insta::assert_snapshot!("table", stdout(query(dir.path(), &[sql])));
    insta::assert_snapshot!("csv", stdout(query(dir.path(), &["--format", "csv", sql])));
    insta::assert_snapshot!(
        "json",
        stdout(query(dir.path(), &["--format", "json", sql]))
    );
}

#[test]
fn a_bad_statement_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_lake(dir.path());
    let out = query(dir.path(), &["SELECT nope FROM events"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("nope"), "names the unknown column: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_format_is_refused_with_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = query(dir.path(), &["--format", "xml", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for valid in ["table", "csv", "json"] {
        assert!(err.contains(valid), "lists {valid}: {err}");
    }
}
