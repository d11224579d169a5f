//! Against a real PostgreSQL (Debian's server, `initdb` in a temp dir, a port of the
//! test's own): the schema and its migrations, exactly-once inserts, the spool across a
//! `kill -9` of the server and a restart of the sink, TLS, and the monitor list.

use std::time::{Duration, Instant};

use telltale_core::config::PostgresConfig;
use telltale_postgres::testing::{PASSWORD, TestPostgres};
use telltale_postgres::{CheckRow, ConnectSettings, PgStats, PostgresSink, SinkSettings, monitors};

fn config(url: &str) -> PostgresConfig {
    PostgresConfig {
        url: url.to_owned(),
        flush_interval: Duration::from_millis(50),
        retry_max_backoff: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(5),
        ..PostgresConfig::default()
    }
    .with_env(|k| (k == "POSTGRES_PASSWORD").then(|| PASSWORD.to_owned()))
}

fn row(monitor: &str, n: i64) -> CheckRow {
    CheckRow {
        monitor_id: monitor.to_owned(),
        url: format!("https://{monitor}.example/health"),
        frequency_min: 1,
        start_us: 1_764_000_000_000_000 + n * 60_000_000,
        http_status: Some(if n % 5 == 0 { 503 } else { 200 }),
        duration_ms: 20.0 + n as f64,
        dns_ms: Some(1.5),
        connect_ms: Some(2.5),
        tls_ms: Some(7.0),
        ttfb_ms: Some(9.0),
        transfer_ms: Some(0.5),
        redirects: 0,
        body_bytes: Some(42),
        cert_expiry_days: Some(80.5),
        final_url: None,
        error: None,
        error_message: None,
        up: n % 5 != 0,
    }
}

async fn connect(pg: &TestPostgres) -> tokio_postgres::Client {
    let settings = ConnectSettings::from_config(&config(&pg.url("disable")))
        .unwrap()
        .unwrap();
    settings.connect().await.unwrap()
}

/// Polls the sink's stats until `done` holds (bounded; a poll interval, not a wait for an
/// outcome).
async fn wait_for(sink: &PostgresSink, what: &str, done: impl Fn(&PgStats) -> bool) -> PgStats {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = sink.stats();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} within 60 s: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_schema_is_created_once_and_checks_what_it_holds() {
    let pg = TestPostgres::start();
    let mut client = connect(&pg).await;
    let applied = telltale_postgres::migrate(&mut client).await.unwrap();
    assert_eq!(applied, ["V1__monitors"]);
    // Safe to run twice: nothing applied the second time.
    assert!(
        telltale_postgres::migrate(&mut client)
            .await
            .unwrap()
            .is_empty()
    );
    let views = pg.psql(
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.views \
         WHERE table_schema = 'public'",
    );
    assert_eq!(views, "view_10m,view_1m,view_20m,view_2m,view_30m,view_5m");
    // The frequency check refuses a 3-minute monitor.
    let refused = client
        .execute(
            "INSERT INTO urltargets (monitor_id, urltarget, monitor_frequency) VALUES ('x', 'http://x/', 3)",
            &[],
        )
        .await
        .unwrap_err();
    let db = refused.as_db_error().expect("the server's refusal");
    assert_eq!(
        db.code(),
        &tokio_postgres::error::SqlState::CHECK_VIOLATION,
        "{db}"
    );
    assert_eq!(
        pg.psql("SELECT character_maximum_length FROM information_schema.columns WHERE table_name = 'urltargets' AND column_name = 'urltarget'"),
        "1024"
    );
}

#[tokio::test]
async fn a_batch_written_twice_is_stored_once_and_the_views_join_it() {
    let pg = TestPostgres::start();
    let mut client = connect(&pg).await;
    telltale_postgres::migrate(&mut client).await.unwrap();
    let rows: Vec<CheckRow> = (0..10).map(|n| row("aaaa000000000001", n)).collect();
    assert_eq!(
        telltale_postgres::insert(&mut client, &rows).await.unwrap(),
        10
    );
    assert_eq!(
        telltale_postgres::insert(&mut client, &rows).await.unwrap(),
        0
    );
    assert_eq!(pg.psql("SELECT count(*) FROM monitor_results"), "10");
    assert_eq!(
        pg.psql("SELECT count(*), min(http_status), bool_and(up) FROM view_1m WHERE urltarget = 'https://aaaa000000000001.example/health'"),
        "10|200|f"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM view_5m"), "0");
}

/// The issue's durability test: results keep coming while PostgreSQL is killed (-9) and
/// started again, and the sink itself is restarted on its spool: every result is in the
/// table exactly once.
#[tokio::test]
async fn results_survive_a_killed_postgres_and_a_restarted_sink_exactly_once() {
    let mut pg = TestPostgres::start();
    let data = tempfile::tempdir().unwrap();
    let url = pg.url("disable");
    let settings = || {
        SinkSettings::from_config(&config(&url), data.path())
            .unwrap()
            .unwrap()
    };
    let (sink, _task) = PostgresSink::start(settings()).unwrap();
    sink.send((0..40).map(|n| row("bbbb000000000001", n)));
    wait_for(&sink, "the first 40 inserted", |s| s.inserted == 40).await;

    pg.kill();
    sink.send((40..80).map(|n| row("bbbb000000000001", n)));
    let s = wait_for(&sink, "the next 40 spooled", |s| s.spooled == 40).await;
    assert!(s.failures > 0 && !s.connected, "{s:?}");
    // The sink stops while the server is down: what it holds stays in the spool.
    let s = sink.shutdown().await;
    assert_eq!((s.inserted, s.spooled), (40, 40), "{s:?}");

    pg.restart();
    let (sink, _task) = PostgresSink::start(settings()).unwrap();
    // A replay of results already written (as after a crash before a checkpoint).
    sink.send((30..50).map(|n| row("bbbb000000000001", n)));
    sink.send((80..100).map(|n| row("bbbb000000000001", n)));
    let s = wait_for(&sink, "spool and new results written", |s| {
        s.spooled == 0 && s.queued == 0 && s.inserted == 60
    })
    .await;
    assert_eq!(s.duplicates, 20, "{s:?}");
    assert_eq!(
        pg.psql("SELECT count(*), count(DISTINCT start_time) FROM monitor_results"),
        "100|100"
    );
    // Written in the order they came: the ids follow the start times.
    assert_eq!(
        pg.psql("SELECT bool_and(ordered) FROM (SELECT start_time >= lag(start_time) OVER (ORDER BY monitor_results_pk) AS ordered FROM monitor_results) o WHERE ordered IS NOT NULL"),
        "t"
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn tls_is_verified_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = telltale_tls::testing::TestCa::new("postgres test CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "pg", &["127.0.0.1"]);
    let pg = TestPostgres::start_with_tls(Some((&pair.cert, &pair.key)));
    let mut cfg = config(&pg.url("require"));
    cfg.tls.ca_file = Some(ca_file.display().to_string());
    let settings = ConnectSettings::from_config(&cfg).unwrap().unwrap();
    let client = settings.connect().await.unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the session is encrypted");
    // Without the CA the certificate is not trusted: no connection, no password sent.
    let untrusted = ConnectSettings::from_config(&config(&pg.url("require")))
        .unwrap()
        .unwrap();
    let e = untrusted.connect().await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");
}

#[tokio::test]
async fn monitors_are_added_listed_and_removed_keeping_their_results() {
    let pg = TestPostgres::start();
    let mut client = connect(&pg).await;
    telltale_postgres::migrate(&mut client).await.unwrap();
    let m = monitors::StoredMonitor {
        monitor_id: "cccc000000000001".into(),
        url: "https://c.example/".into(),
        frequency_min: 5,
    };
    assert!(monitors::add(&client, &m).await.unwrap());
    assert!(!monitors::add(&client, &m).await.unwrap(), "already there");
    assert_eq!(monitors::list(&client).await.unwrap(), vec![m.clone()]);
    let mut r = row("cccc000000000001", 1);
    r.url = m.url.clone();
    r.frequency_min = 5;
    telltale_postgres::insert(&mut client, &[r]).await.unwrap();
    assert!(monitors::remove(&client, &m.monitor_id).await.unwrap());
    assert!(!monitors::remove(&client, &m.monitor_id).await.unwrap());
    assert!(monitors::list(&client).await.unwrap().is_empty());
    assert_eq!(pg.psql("SELECT count(*) FROM view_5m"), "1", "results kept");
    assert!(monitors::add(&client, &m).await.unwrap(), "added again");
    assert_eq!(monitors::list(&client).await.unwrap().len(), 1);
}
