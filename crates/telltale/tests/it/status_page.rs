//! The status page as a person sees it: `telltale run` with an hour of backfilled history,
//! loaded in Debian's headless Chromium, which runs the page's JavaScript against
//! `/api/v1/slo`. The rendered DOM must show every catalogued service with a state, the
//! state the API gives, and follow the API live while the page stays open.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::browser::{CHROMIUM, HEADLESS_FLAGS, Page};
use crate::support::http::{self, get};
use crate::support::{LISTEN, Server, process_command, repo_root, telltale};

/// Runs headless Chromium on `url`; `args` add `--dump-dom` or `--screenshot=…`.
fn chromium(url: &str, profile: &Path, args: &[String]) -> std::process::Output {
    Command::new(CHROMIUM)
        .args(HEADLESS_FLAGS)
        .args([
            "--hide-scrollbars",
            // Lets the page's fetch of /api/v1/slo finish before the DOM is taken.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs")
}

#[test]
fn status_page_renders_every_service_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it with `apt-get install chromium` (./tests/run.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_root();
    let run = Server::start(
        telltale()
            .args([
                "--log",
                "warn",
                "run",
                "--seed",
                "11",
                "--rate",
                "200",
                "--backfill",
                "1h",
            ])
            .args(LISTEN)
            .arg("--data-dir")
            .arg(dir.path().join("lake"))
            .stderr(Stdio::null()),
    );
    // Wait until the SLO engine has evaluated the whole backfilled hour: its evaluation
    // is within a few minutes of now (before that it moves a minute at a time as the
    // backfill is read, and no page load could match it).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let recent = get(run.addr, "/api/v1/slo")
            .and_then(|r| r.body)
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| v["evaluated_at"].as_str().map(str::to_owned))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .is_some_and(|t| chrono::Utc::now().signed_duration_since(t).num_seconds() < 300);
        if recent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backfilled hour was not evaluated within 300 s"
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }

    let url = format!("{}/", run.url());
    let catalogue = std::fs::read_to_string(repo.join("config/services.toml")).unwrap();
    let services: Vec<&str> = catalogue
        .lines()
        .filter_map(|l| {
            l.strip_prefix("[services.")
                .and_then(|r| r.strip_suffix(']'))
        })
        .collect();
    assert!(services.len() >= 15);
    let rendered = rendered_as_the_api_says(run.addr, &url, dir.path());
    for s in &services {
        assert!(
            rendered
                .rows
                .contains_key(&(s.to_string(), "availability".to_owned())),
            "{s} has no availability row in the rendered page"
        );
    }

    // The screenshot in docs/ is refreshed with TELLTALE_UPDATE_SCREENSHOT=1.
    let shot = dir.path().join("status.png");
    let out = chromium(
        &url,
        &dir.path().join("profile2"),
        &[format!("--screenshot={}", shot.display())],
    );
    assert!(
        out.status.success(),
        "screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    if std::env::var_os("TELLTALE_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(repo.join("docs/status-page.png"), png).unwrap();
    }
}

/// Loads the page in Chromium and checks that what it rendered (each service's state pill,
/// each row's state) is what `/api/v1/slo` says for the same evaluation.
fn rendered_as_the_api_says(addr: std::net::SocketAddr, url: &str, dir: &Path) -> Rendered {
    // The page as rendered must show what /api/v1/slo says for the same evaluation. The
    // engine evaluates once a minute, so a new evaluation may land between the page's
    // fetch and the test's: then both are taken again.
    let mut attempts = 0;
    let (rendered, api) = loop {
        attempts += 1;
        let out = chromium(
            url,
            &dir.join(format!("profile-{attempts}")),
            &["--dump-dom".to_owned()],
        );
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dom = String::from_utf8_lossy(&out.stdout).into_owned();
        let rendered = Rendered::parse(&dom);
        let api: serde_json::Value =
            serde_json::from_str(&get(addr, "/api/v1/slo").unwrap().body.unwrap()).unwrap();
        if api["evaluated_at"].as_str() == Some(rendered.evaluated_at.as_str()) {
            break (rendered, api);
        }
        assert!(
            attempts < 5,
            "the page never showed the API's evaluation ({} vs {}):\n{dom}",
            rendered.evaluated_at,
            api["evaluated_at"]
        );
    };
    let mut compared = 0;
    for svc in api["services"].as_array().unwrap() {
        let name = svc["service"].as_str().unwrap();
        assert_eq!(
            rendered.pills.get(name).map(String::as_str),
            svc["state"].as_str(),
            "{name}: the state pill differs from the API"
        );
        for slo in svc["slos"].as_array().unwrap() {
            let key = (name.to_owned(), slo["sli"].as_str().unwrap().to_owned());
            assert_eq!(
                rendered.rows.get(&key).map(String::as_str),
                slo["state"].as_str(),
                "{key:?}: the rendered row's state differs from the API"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, rendered.rows.len(), "rows the API does not have");
    rendered
}

/// What the rendered DOM shows: each row's state by (service, SLI), each service's state
/// pill, and the evaluation time. Read from the elements the script built, not from the
/// page's own script text (which holds the same attribute names as a template).
struct Rendered {
    rows: BTreeMap<(String, String), String>,
    pills: BTreeMap<String, String>,
    evaluated_at: String,
}

impl Rendered {
    fn parse(dom: &str) -> Self {
        let body = dom
            .split_once("<tbody id=\"rows\">")
            .map(|(_, b)| b.split_once("</tbody>").map_or(b, |(b, _)| b))
            .unwrap_or_else(|| panic!("no rendered table body:\n{dom}"));
        let attr = |tag: &str, name: &str| {
            tag.split_once(&format!("{name}=\""))
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(v, _)| v.to_owned())
        };
        let (mut rows, mut pills) = (BTreeMap::new(), BTreeMap::new());
        for tr in body.split("<tr ").skip(1) {
            let (Some(service), Some(sli), Some(state)) = (
                attr(tr, "data-service"),
                attr(tr, "data-sli"),
                attr(tr, "data-state"),
            ) else {
                continue;
            };
            if let Some(pill) = tr.split_once("<span class=\"pill ").map(|(_, r)| r) {
                let state = pill.split('"').next().unwrap_or_default().to_owned();
                // The first row of a service carries its state pill.
                pills.entry(service.clone()).or_insert(state);
            }
            rows.insert((service, sli), state);
        }
        let evaluated_at = dom
            .split_once("<span id=\"evaluated\">")
            .and_then(|(_, r)| r.split_once('<'))
            .map(|(v, _)| v.to_owned())
            .unwrap_or_default();
        Self {
            rows,
            pills,
            evaluated_at,
        }
    }
}

#[test]
fn a_red_and_a_green_service_render_as_the_api_says() {
    // Known states, so a page that renders every service green cannot pass: `failing`
    // answers 503 for the last 30 of 90 minutes, `steady` never fails.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let now = chrono::Utc::now().timestamp_micros();
    let mut lines = String::new();
    for m in 0..90i64 {
        for i in 0..30i64 {
            let ts = chrono::DateTime::from_timestamp_micros(
                now - (90 - m) * 60_000_000 + i * 2_000_000,
            )
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            for (service, status) in [
                ("steady", 200),
                ("failing", if m >= 60 { 503 } else { 200 }),
            ] {
                lines.push_str(&format!(
                    "{{\"service\":\"{service}\",\"timestamp\":\"{ts}\",\"status_code\":{status},\"latency_ms\":5}}\n"
                ));
            }
        }
    }
    std::fs::write(&input, lines).unwrap();
    let server = Server::start(
        telltale()
            .args(["process", "--input"])
            .arg(&input)
            .args(LISTEN)
            .arg("--data-dir")
            .arg(dir.path().join("lake"))
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    // The input is read to its end: its newest minute is evaluated and `failing` is red.
    let failing_is_red = || {
        let body = get(server.addr, "/api/v1/slo")
            .and_then(|r| r.body)
            .unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| {
            v["services"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["service"] == "failing" && s["state"] == "red")
            })
        })
    };
    while !failing_is_red() {
        assert!(Instant::now() < deadline, "`failing` never turned red");
        std::thread::park_timeout(Duration::from_millis(100));
    }
    let rendered = rendered_as_the_api_says(server.addr, &format!("{}/", server.url()), dir.path());
    assert_eq!(rendered.pills["failing"], "red");
    assert_eq!(rendered.pills["steady"], "green");
    server.sigterm_and_expect_success();
}

/// `service`'s events a minute at a time, 30 a minute, from `from` to `to` minutes before
/// `now_us` (in µs), each answered with `status`.
fn minutes(service: &str, now_us: i64, from: i64, to: i64, status: u16) -> String {
    let mut out = String::new();
    for m in (to..from).rev() {
        for i in 0..30i64 {
            let ts = chrono::DateTime::from_timestamp_micros(
                now_us - (m + 1) * 60_000_000 + i * 2_000_000,
            )
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            out.push_str(&format!(
                "{{\"service\":\"{service}\",\"timestamp\":\"{ts}\",\"status_code\":{status},\"latency_ms\":5}}\n"
            ));
        }
    }
    out
}

/// The state `/api/v1/slo` gives `service`, and its evaluation time.
fn api_state(addr: std::net::SocketAddr, service: &str) -> (Option<String>, String) {
    let body = get(addr, "/api/v1/slo")
        .and_then(|r| r.body)
        .expect("GET /api/v1/slo answers");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let state = v["services"].as_array().and_then(|s| {
        s.iter()
            .find(|s| s["service"] == service)
            .and_then(|s| s["state"].as_str().map(str::to_owned))
    });
    (
        state,
        v["evaluated_at"].as_str().unwrap_or_default().to_owned(),
    )
}

/// What the open page shows for `flaky`: its state pill and the evaluation time, read from
/// the elements the page's script built.
const FLAKY_ON_THE_PAGE: &str = r#"JSON.stringify({
    pill: document.querySelector('#rows tr[data-service="flaky"] .pill')?.classList[1] ?? null,
    evaluated: document.getElementById("evaluated")?.textContent ?? null,
    loads: performance.getEntriesByType("navigation").length,
    marker: window.__still_the_same_page ?? false,
})"#;

#[test]
fn the_open_page_follows_a_service_from_green_to_red_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(process_command(&dir.path().join("lake")).stderr(Stdio::null()));
    let addr = server.addr;
    let now = chrono::Utc::now().timestamp_micros();
    let post = |body: String| {
        let r = http::request(addr, "POST", "/v1/events", &body).unwrap();
        assert_eq!(r.status, Some(200), "{}", r.raw);
    };
    let limit = Duration::from_secs(120);
    // An hour of `flaky` answering every request, ending 30 minutes ago: green.
    post(minutes("flaky", now, 90, 30, 200));
    let mut page = Page::open(&format!("{}/", server.url()), &dir.path().join("profile"));
    let shown = |page: &mut Page, state: &str| {
        let v = page.eval_until(FLAKY_ON_THE_PAGE, limit, |v| {
            let v: serde_json::Value = serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap();
            v["pill"] == state
                && api_state(addr, "flaky").1 == v["evaluated"].as_str().unwrap_or("")
        });
        serde_json::from_str::<serde_json::Value>(v.as_str().unwrap()).unwrap()
    };
    let green = shown(&mut page, "green");
    assert_eq!(api_state(addr, "flaky").0.as_deref(), Some("green"));
    page.eval("window.__still_the_same_page = true");

    // Then 30 minutes of nothing but 503s, up to now: the page turns red by itself.
    post(minutes("flaky", now, 30, 0, 503));
    let red = shown(&mut page, "red");
    assert_eq!(
        api_state(addr, "flaky").0.as_deref(),
        Some("red"),
        "the API says red too"
    );
    assert_ne!(red["evaluated"], green["evaluated"], "a later evaluation");
    assert_eq!(red["loads"], 1, "one navigation: the page was not reloaded");
    assert_eq!(red["marker"], true, "the same page, still open");
    drop(page);
    server.sigterm_and_expect_success();
}

/// Regression: a processor restarted on a lake showed no service at all (`services: []`,
/// `evaluated_at: null`) until new traffic came, although the SLO engine was primed from
/// the lake's rollups. The primed history is evaluated at once.
#[test]
fn regression_a_restarted_processor_shows_the_last_known_state_before_new_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lake) = (dir.path().join("events.ndjson"), dir.path().join("lake"));
    let now = chrono::Utc::now().timestamp_micros();
    // Minute by minute (rollups follow event time): `failing` answers 503 for the last 30.
    let mut lines = String::new();
    for m in (0..90).rev() {
        lines.push_str(&minutes("steady", now, m + 1, m, 200));
        lines.push_str(&minutes(
            "failing",
            now,
            m + 1,
            m,
            if m < 30 { 503 } else { 200 },
        ));
    }
    std::fs::write(&input, lines).unwrap();
    let out = telltale()
        .args(["process", "--input"])
        .arg(&input)
        .arg("--data-dir")
        .arg(&lake)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::describe(&out));

    // Restarted on the same lake, with nothing new to read.
    let server = Server::start(process_command(&lake).stderr(Stdio::null()));
    // Listening means started: the primed evaluation is already in place.
    assert_eq!(api_state(server.addr, "failing").0.as_deref(), Some("red"));
    assert_eq!(api_state(server.addr, "steady").0.as_deref(), Some("green"));
    let (_, evaluated) = api_state(server.addr, "steady");
    let at = chrono::DateTime::parse_from_rfc3339(&evaluated).expect("an evaluation time");
    let age = chrono::Utc::now().timestamp_micros() - at.timestamp_micros();
    assert!(
        // The minute after the newest rollup window, which may be the current minute.
        (-60_000_000..5 * 60_000_000).contains(&age),
        "evaluated at the end of the history, not at some other time: {evaluated}"
    );
    server.sigterm_and_expect_success();
}
