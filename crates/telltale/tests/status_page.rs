//! The status page as a person sees it: `telltale run` with an hour of backfilled history,
//! loaded in Debian's headless Chromium, which runs the page's JavaScript against
//! `/api/v1/slo`. The rendered DOM must show every catalogued service with a state.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

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
    let port = free_port();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let _run = Running(
        Command::new(env!("CARGO_BIN_EXE_telltale"))
            .current_dir(&repo)
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
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("lake"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the SLO engine has evaluated the backfilled hour.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(r) = get(port, "/api/v1/slo")
            && r.contains("\"evaluated_at\":\"")
            && r.contains("auth-service")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no SLO evaluation within 120 s");
        std::thread::park_timeout(Duration::from_millis(200));
    }

    let url = format!("http://127.0.0.1:{port}/");
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
