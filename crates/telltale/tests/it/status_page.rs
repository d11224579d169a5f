//! The status page as a person sees it: `telltale run` with an hour of backfilled history,
//! loaded in Debian's headless Chromium, which runs the page's JavaScript against
//! `/api/v1/slo`. The rendered DOM must show every catalogued service with a state.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::get;
use crate::support::{LISTEN, Server, repo_root, telltale};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `url`; `args` add `--dump-dom` or `--screenshot=…`.
fn chromium(url: &str, profile: &Path, args: &[String]) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1500,1000",
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
    // Wait until the SLO engine has evaluated the backfilled hour.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(r) = get(run.addr, "/api/v1/slo")
            && r.raw.contains("\"evaluated_at\":\"")
            && r.raw.contains("auth-service")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no SLO evaluation within 120 s");
        std::thread::park_timeout(Duration::from_millis(200));
    }

    let url = format!("{}/", run.url());
    let out = chromium(
        &url,
        &dir.path().join("profile"),
        &["--dump-dom".to_owned()],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let catalogue = std::fs::read_to_string(repo.join("config/services.toml")).unwrap();
    let services: Vec<&str> = catalogue
        .lines()
        .filter_map(|l| {
            l.strip_prefix("[services.")
                .and_then(|r| r.strip_suffix(']'))
        })
        .collect();
    assert!(services.len() >= 15);
    for s in &services {
        let row = format!("data-service=\"{s}\" data-sli=\"availability\"");
        assert!(
            dom.contains(&row),
            "{s} has no availability row in the rendered page:\n{dom}"
        );
    }
    for state in ["data-state=\"green\"", "class=\"pill "] {
        assert!(dom.contains(state), "{state} missing:\n{dom}");
    }
    // The script fills in the evaluation time (the dump also holds the script's own text,
    // so look at the rendered element, not for the placeholder string).
    assert!(
        dom.contains("<span id=\"evaluated\">20"),
        "the page never loaded data:\n{dom}"
    );

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
