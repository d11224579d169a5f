//! The hardened nginx recipe (`deploy/nginx/`, issue #14) with Debian's real nginx in front
//! of a real `telltale run`: a certificate from a CA made here, a basic-auth user, the
//! recipe rendered by its own `render.sh` with this test's ports and paths. Each claim of
//! the recipe is checked with curl: TLS terminates (and only modern TLS does), the admin
//! paths need basic auth and then still telltale's admin token, ingest is rate-limited per
//! client address, and the access log is JSON without a secret in it.
//!
//! Every address is on the loopback; curl is told to ignore proxy settings.

use std::cell::Cell;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{LISTEN, Server, describe, repo_root, telltale};

/// telltale's tokens (`TELLTALE_INGEST_TOKENS`, `TELLTALE_ADMIN_TOKENS`).
const INGEST_TOKEN: &str = "ingest-token-4c1f9e";
const ADMIN_TOKEN: &str = "admin-token-9b27d3";
/// The basic-auth login of the admin paths.
const ADMIN_USER: &str = "ops";
const ADMIN_PASSWORD: &str = "basic-pw-71e0aa";
/// The ingest limit: one request a minute and a burst of two, so the first three requests
/// pass and the next ones get 429 whatever the machine's speed (the bucket drains one
/// request in 60 s, and this test sends its ingest requests within seconds).
const INGEST_RATE: &str = "1r/m";
const INGEST_BURST: usize = 2;
/// How long nginx may take to listen, and to stop.
const NGINX_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn the_nginx_recipe_terminates_tls_guards_admin_paths_limits_ingest_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = Server::start(
        telltale()
            .args(["run", "--rate", "5", "--seed", "1", "--no-incidents"])
            .args(LISTEN)
            .arg("--data-dir")
            .arg(dir.path().join("lake"))
            .env("TELLTALE_INGEST_TOKENS", INGEST_TOKEN)
            .env("TELLTALE_ADMIN_TOKENS", ADMIN_TOKEN)
            .stderr(Stdio::null()),
    );
    let nginx = Nginx::start(&dir.path().join("nginx"), run.addr);

    tls_terminates(&nginx);
    admin_paths_need_basic_auth_then_the_admin_token(&nginx);
    ingest_is_rate_limited(&nginx);
    the_access_log_is_json_without_secrets(&nginx);

    nginx.stop();
    assert!(run.sigterm_and_wait().status.success());
}

/// HTTPS with the CA made here reaches telltale; the certificate is checked; TLS 1.2 and
/// 1.3 work, TLS 1.1 and a CBC cipher do not; HSTS is sent; plain HTTP on the TLS port gets
/// nginx's 400 at once, and the plain-HTTP server only redirects.
fn tls_terminates(nginx: &Nginx) {
    let r = nginx.curl(&[], "/healthz").unwrap();
    assert_eq!(r.status, 200, "GET /healthz over TLS: {r:?}");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000"),
        "HSTS: {r:?}"
    );
    for (version, max) in [("--tlsv1.2", "1.2"), ("--tlsv1.3", "1.3")] {
        let r = nginx
            .curl(&[version, "--tls-max", max], "/healthz")
            .unwrap();
        assert_eq!(r.status, 200, "TLS {max}: {r:?}");
    }

    // No request gets through without a verified certificate, an old protocol or a weak
    // cipher. (Debian's OpenSSL refuses TLS 1.1 at its default security level too; the
    // cipher list is the recipe's alone: without it nginx would take this CBC suite.)
    let refused = |args: &[&str], says: &str| {
        let e = nginx.curl_raw(args, &nginx.https("/healthz")).unwrap_err();
        assert!(
            e.contains(says),
            "{args:?} was not refused with {says:?}: {e}"
        );
    };
    let other_ca = nginx.dir.join("other-ca.pem");
    refused(&["--cacert", other_ca.to_str().unwrap()], "(60)");
    refused(
        &[
            "--tlsv1.1",
            "--tls-max",
            "1.1",
            "--ciphers",
            "DEFAULT@SECLEVEL=0",
        ],
        "(35)",
    );
    refused(
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-SHA",
        ],
        "(35)",
    );

    let url = format!("http://localhost:{}/healthz", nginx.https_port);
    let r = nginx.curl_raw(&[], &url).unwrap();
    assert_eq!(r.status, 400, "plain HTTP on the TLS port: {r:?}");
    assert!(
        r.body
            .contains("The plain HTTP request was sent to HTTPS port"),
        "{r:?}"
    );

    let url = format!("http://localhost:{}/status?x=1", nginx.http_port);
    let r = nginx.curl_raw(&[], &url).unwrap();
    assert_eq!(r.status, 301, "plain HTTP: {r:?}");
    assert_eq!(
        r.header("location"),
        Some(nginx.https("/status?x=1").as_str()),
        "{r:?}"
    );
}

/// `/control` and everything under it need the basic-auth login (nginx's 401 with
/// `WWW-Authenticate: Basic`), whatever bearer token comes along; with it the request
/// reaches telltale, whose own admin token still applies (telltale's 401 with
/// `WWW-Authenticate: Bearer` without it). Other paths need no login.
fn admin_paths_need_basic_auth_then_the_admin_token(nginx: &Nginx) {
    let login = format!("{ADMIN_USER}:{ADMIN_PASSWORD}");
    let wrong = format!("{ADMIN_USER}:not-the-password");
    let admin_bearer = format!("X-Telltale-Authorization: Bearer {ADMIN_TOKEN}");
    let bearer_header = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let spike = ["-H", "Content-Type: application/json"];
    let spike_body = ["--data", r#"{"factor": 3, "duration": "60s"}"#];
    let nginx_401 = |r: &Reply, what: &str| {
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Basic realm="telltale admin""#),
            "{what}: {r:?}"
        );
    };

    nginx_401(&nginx.curl(&[], "/control").unwrap(), "GET /control");
    // nginx matches locations on the normalised path: these are /control too.
    for path in [
        "//control",
        "/%63ontrol",
        "/x/../control",
        "/control/../control/spike",
    ] {
        let r = nginx.curl(&["--path-as-is"], path).unwrap();
        nginx_401(&r, &format!("GET {path}"));
    }
    nginx_401(
        &nginx.curl(&["-u", &wrong], "/control").unwrap(),
        "GET /control, wrong password",
    );
    nginx_401(
        &nginx
            .curl(
                &[&spike[..], &spike_body, &["-H", &admin_bearer]].concat(),
                "/control/spike",
            )
            .unwrap(),
        "POST /control/spike with the admin token but no login",
    );
    nginx_401(
        &nginx
            .curl(
                &[&spike[..], &spike_body, &["-H", &bearer_header]].concat(),
                "/control/spike",
            )
            .unwrap(),
        "POST /control/spike with the admin token as Authorization",
    );

    let r = nginx.curl(&["-u", &login], "/control").unwrap();
    assert_eq!(r.status, 200, "GET /control with the login: {r:?}");
    let plan: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(plan["spike"].is_null(), "{plan}");

    let r = nginx
        .curl(
            &[&spike[..], &spike_body, &["-u", &login]].concat(),
            "/control/spike",
        )
        .unwrap();
    assert_eq!(r.status, 401, "login but no admin token: {r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer"),
        "telltale's 401, not nginx's: {r:?}"
    );

    let ingest_bearer = format!("X-Telltale-Authorization: Bearer {INGEST_TOKEN}");
    let r = nginx
        .curl(
            &[
                &spike[..],
                &spike_body,
                &["-u", &login, "-H", &ingest_bearer],
            ]
            .concat(),
            "/control/spike",
        )
        .unwrap();
    assert_eq!(r.status, 403, "login and an ingest token: {r:?}");

    let r = nginx
        .curl(
            &[
                &spike[..],
                &spike_body,
                &["-u", &login, "-H", &admin_bearer],
            ]
            .concat(),
            "/control/spike",
        )
        .unwrap();
    assert_eq!(r.status, 200, "login and admin token: {r:?}");
    let r = nginx.curl(&["-u", &login], "/control").unwrap();
    let plan: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(plan["spike"]["factor"], 3.0, "{plan}");

    for path in ["/", "/api/v1/slo", "/healthz"] {
        let r = nginx.curl(&[], path).unwrap();
        assert_eq!(r.status, 200, "GET {path} without a login: {r:?}");
    }
}

/// `POST /v1/events` through nginx: telltale's ingest token still applies; the rate and
/// the burst pass (an event is accepted and counted by telltale), the next requests get
/// nginx's 429 and never reach telltale.
fn ingest_is_rate_limited(nginx: &Nginx) {
    let line = format!(
        r#"{{"service":"nginx-recipe","timestamp":"{}","status_code":200,"latency_ms":12.5}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let auth = format!("Authorization: Bearer {INGEST_TOKEN}");
    let ndjson = "Content-Type: application/x-ndjson";
    let post = |token: bool| {
        let mut args = vec!["-H", ndjson, "--data-binary", &line];
        if token {
            args.extend(["-H", &auth]);
        }
        nginx.curl(&args, "/v1/events").unwrap()
    };

    // The rate's request and the burst: one without a token (telltale refuses it), the
    // others accepted.
    let mut accepted = 0;
    for n in 0..=INGEST_BURST {
        let token = n != 1;
        let r = post(token);
        if token {
            assert_eq!(r.status, 200, "ingest request {n}: {r:?}");
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["accepted"], 1, "{body}");
            accepted += 1;
        } else {
            assert_eq!(r.status, 401, "ingest request {n} without a token: {r:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{r:?}");
        }
    }
    for n in 0..2 {
        let r = post(true);
        assert_eq!(r.status, 429, "ingest request {n} over the burst: {r:?}");
        assert!(r.body.contains("nginx"), "nginx's answer: {r:?}");
    }

    // telltale saw the accepted ones and the refused one, never the 429s.
    let metrics = nginx.curl(&[], "/metrics").unwrap().body;
    let sample = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map(|v| v.trim().parse::<f64>().unwrap())
    };
    assert_eq!(
        sample(r#"telltale_lines_received_total{source="http"}"#),
        Some(accepted as f64),
        "{metrics}"
    );
    let responses = |code: &str| {
        sample(&format!(
            r#"telltale_http_ingest_responses_total{{code="{code}"}}"#
        ))
    };
    assert_eq!(responses("200"), Some(accepted as f64), "{metrics}");
    assert_eq!(responses("401"), Some(1.0), "{metrics}");
    assert!(responses("429").is_none_or(|v| v == 0.0), "{metrics}");
}

/// Every line of the access log is a JSON object with the recipe's fields (the answers of
/// every request this test made: the 400, the 401s, the 429s, the 200s), and none holds a
/// token, the password or the basic-auth header.
fn the_access_log_is_json_without_secrets(nginx: &Nginx) {
    // A user agent with a quote and a backslash: only escape=json keeps the line JSON.
    let agent = r#"telltale-test "quoted" \ agent"#;
    let r = nginx.curl(&["-A", agent], "/healthz").unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // nginx writes a request's line after the answer: wait until every one is there.
    let expected = nginx.answered.get();
    let start = Instant::now();
    let text = loop {
        let text = fs::read_to_string(&nginx.access_log).unwrap_or_default();
        if text.lines().count() >= expected || start.elapsed() > NGINX_LIMIT {
            break text;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    };
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(
        lines.len(),
        expected,
        "one line per answered request:\n{text}"
    );

    for (l, raw) in lines.iter().zip(text.lines()) {
        for key in [
            "time",
            "request_method",
            "uri",
            "upstream_response_time",
            "http_user_agent",
        ] {
            assert!(l[key].is_string(), "{key} in {raw}");
        }
        for key in ["status", "request_time", "body_bytes_sent"] {
            assert!(l[key].is_number(), "{key} in {raw}");
        }
        chrono::DateTime::parse_from_rfc3339(l["time"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("time in {raw}: {e}"));
        assert_eq!(l["remote_addr"], "127.0.0.1", "{raw}");
    }
    let find = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        lines
            .iter()
            .find(|l| f(l))
            .unwrap_or_else(|| panic!("no line of {what}:\n{text}"))
    };
    let is = |l: &serde_json::Value, method: &str, uri: &str, status: u16| {
        l["request_method"] == method && l["uri"] == uri && l["status"] == status
    };
    let ok = find("GET /healthz 200", &|l| is(l, "GET", "/healthz", 200));
    assert_eq!(ok["upstream_status"], "200", "{ok}");
    assert!(
        ok["upstream_response_time"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .is_ok(),
        "{ok}"
    );
    let denied = find("GET /control 401", &|l| is(l, "GET", "/control", 401));
    assert_eq!(denied["upstream_status"], "", "nginx answered: {denied}");
    find("POST /v1/events 429", &|l| is(l, "POST", "/v1/events", 429));
    find("POST /v1/events 200", &|l| is(l, "POST", "/v1/events", 200));
    find("plain HTTP 400", &|l| l["status"] == 400);
    find("the login's user", &|l| {
        is(l, "POST", "/control/spike", 200) && l["remote_user"] == ADMIN_USER
    });
    find("the quoted user agent", &|l| l["http_user_agent"] == agent);

    let basic = String::from_utf8(
        Command::new("base64")
            .args(["-w", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{ADMIN_USER}:{ADMIN_PASSWORD}").as_bytes())?;
                c.wait_with_output()
            })
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(basic.len() > 10, "{basic:?}");
    for secret in [
        INGEST_TOKEN,
        ADMIN_TOKEN,
        ADMIN_PASSWORD,
        &basic,
        "Bearer",
        "Basic",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} in the access log:\n{text}"
        );
    }
}

/// An answer curl printed with `-i`.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// `name: value` lines, as sent.
    headers: String,
    body: String,
}

impl Reply {
    /// The value of header `name` (in any case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Debian's nginx serving the rendered recipe from `dir`, stopped (and its workers with
/// it) when dropped.
struct Nginx {
    master: Option<Child>,
    dir: PathBuf,
    https_port: u16,
    http_port: u16,
    ca: PathBuf,
    access_log: PathBuf,
    error_log: PathBuf,
    /// Requests nginx answered (one access-log line each).
    answered: Cell<usize>,
}

impl Nginx {
    /// Makes the CA, the certificate, the htpasswd file and the config in `dir`, starts
    /// nginx and waits until both its ports accept connections.
    fn start(dir: &Path, upstream: SocketAddr) -> Self {
        fs::create_dir_all(dir.join("tmp")).unwrap();
        make_certificates(dir);
        let hash = run(Command::new("openssl").args(["passwd", "-apr1", ADMIN_PASSWORD]));
        fs::write(
            dir.join("htpasswd"),
            format!("{ADMIN_USER}:{}\n", hash.trim()),
        )
        .unwrap();
        // As root, nginx's workers run as nobody: they read the htpasswd file on every
        // request, so it, `dir` and the test's temporary directory above it (0700 when
        // made) must be readable to others. The key is read by the master, as root.
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path, mode| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        };
        mode(dir.parent().unwrap(), 0o755);
        mode(dir, 0o755);
        mode(&dir.join("htpasswd"), 0o644);

        // nginx cannot report a port it picked, so they are chosen here; a port taken in
        // between is retried with new ones.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (https_port, http_port) = (free_port(), free_port());
            let mut nginx = Self::spawn(dir, upstream, https_port, http_port);
            match nginx.wait_listening() {
                Ok(()) => return nginx,
                Err(log) if attempts < 3 && log.contains("Address already in use") => {
                    drop(nginx);
                }
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
    }

    fn spawn(dir: &Path, upstream: SocketAddr, https_port: u16, http_port: u16) -> Self {
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let recipe = repo_root().join("deploy/nginx");
        let out = Command::new("bash")
            .arg(recipe.join("render.sh"))
            .env("TELLTALE_PROXY_SERVER_NAME", "localhost")
            .env(
                "TELLTALE_PROXY_PUBLIC_URL",
                format!("https://localhost:{https_port}"),
            )
            .env(
                "TELLTALE_PROXY_HTTPS_LISTEN",
                format!("127.0.0.1:{https_port}"),
            )
            .env(
                "TELLTALE_PROXY_HTTP_LISTEN",
                format!("127.0.0.1:{http_port}"),
            )
            .env("TELLTALE_PROXY_UPSTREAM", upstream.to_string())
            .env("TELLTALE_PROXY_CERT", path("server.pem"))
            .env("TELLTALE_PROXY_CERT_KEY", path("server.key"))
            .env("TELLTALE_PROXY_HTPASSWD", path("htpasswd"))
            .env("TELLTALE_PROXY_INGEST_RATE", INGEST_RATE)
            .env("TELLTALE_PROXY_INGEST_BURST", INGEST_BURST.to_string())
            .env("TELLTALE_PROXY_ACCESS_LOG", path("access.log"))
            .output()
            .unwrap();
        assert!(out.status.success(), "render.sh: {}", describe(&out));
        fs::write(dir.join("telltale.conf"), &out.stdout).unwrap();

        // What Debian's /etc/nginx/nginx.conf gives a conf.d file, minus its default site,
        // with every file nginx writes in `dir`.
        let user = if is_root() {
            "user nobody nogroup;"
        } else {
            ""
        };
        let tmp = path("tmp");
        fs::write(
            dir.join("nginx.conf"),
            format!(
                "{user}\nworker_processes 1;\npid {pid};\nerror_log {err} notice;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 \x20   client_body_temp_path {tmp}/body;\n\
                 \x20   proxy_temp_path {tmp}/proxy;\n\
                 \x20   fastcgi_temp_path {tmp}/fastcgi;\n\
                 \x20   uwsgi_temp_path {tmp}/uwsgi;\n\
                 \x20   scgi_temp_path {tmp}/scgi;\n\
                 \x20   include {conf};\n\
                 }}\n",
                pid = path("nginx.pid"),
                err = path("error.log"),
                conf = path("telltale.conf"),
            ),
        )
        .unwrap();
        let _ = fs::remove_file(dir.join("error.log"));
        let _ = fs::remove_file(dir.join("access.log"));
        let stderr = fs::File::create(dir.join("nginx.stderr")).unwrap();
        let master = Command::new(nginx_binary())
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            // nginx takes listening sockets from this variable (a binary upgrade).
            .env_remove("NGINX")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("nginx (Debian package nginx; tests/run.sh installs it)");
        Self {
            master: Some(master),
            dir: dir.to_owned(),
            https_port,
            http_port,
            ca: dir.join("ca.pem"),
            access_log: dir.join("access.log"),
            error_log: dir.join("error.log"),
            answered: Cell::new(0),
        }
    }

    /// Polls both ports until they accept a connection (at most [`NGINX_LIMIT`]); the
    /// logs when nginx exited instead.
    fn wait_listening(&mut self) -> Result<(), String> {
        let start = Instant::now();
        for port in [self.https_port, self.http_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = self.master.as_mut().unwrap().try_wait().unwrap() {
                    return Err(format!("nginx exited: {status}\n{}", self.logs()));
                }
                assert!(
                    start.elapsed() < NGINX_LIMIT,
                    "nginx not listening on {port} within {NGINX_LIMIT:?}:\n{}",
                    self.logs()
                );
                // Poll interval, not a wait for an outcome: the loop re-checks the port.
                std::thread::park_timeout(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// nginx's stderr and error log, for failure messages.
    fn logs(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!(
            "stderr:\n{}\nerror.log:\n{}",
            read(&self.dir.join("nginx.stderr")),
            read(&self.error_log)
        )
    }

    /// `https://localhost:PORT{path}`.
    fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https_port)
    }

    /// curl on `https://localhost:PORT{path}` with `args`; see [`Nginx::curl_raw`].
    fn curl(&self, args: &[&str], path: &str) -> Result<Reply, String> {
        self.curl_raw(args, &self.https(path))
    }

    /// curl on `url` (a `localhost` URL, resolved to 127.0.0.1 by curl itself) with the CA
    /// made here, no proxy, no config file and `args`: the answer, or curl's error.
    fn curl_raw(&self, args: &[&str], url: &str) -> Result<Reply, String> {
        let resolve = |port: u16| format!("localhost:{port}:127.0.0.1");
        let out = Command::new("curl")
            .args(["-q", "-sS", "-i", "--noproxy", "*", "--max-time", "30"])
            .arg("--resolve")
            .arg(resolve(self.https_port))
            .arg("--resolve")
            .arg(resolve(self.http_port))
            .arg("--cacert")
            .arg(&self.ca)
            .args(args)
            .arg(url)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!("curl {args:?} {url}: {}", describe(&out)));
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {text:?}"));
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        self.answered.set(self.answered.get() + 1);
        Ok(Reply {
            status,
            headers: headers.replace("\r\n", "\n"),
            body: body.to_owned(),
        })
    }

    /// SIGQUIT (graceful shutdown): nginx must exit 0 within [`NGINX_LIMIT`].
    fn stop(mut self) {
        let status = self.shut_down("QUIT");
        assert!(
            status.is_some_and(|s| s.success()),
            "nginx after SIGQUIT: {status:?}\n{}",
            self.logs()
        );
    }

    /// Sends `SIG<signal>` to the master and waits for it; past [`NGINX_LIMIT`], SIGKILL to
    /// the master and the workers it had. The exit status when it exited in time.
    fn shut_down(&mut self, signal: &str) -> Option<std::process::ExitStatus> {
        let mut master = self.master.take()?;
        let workers = children_of(master.id());
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(master.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < NGINX_LIMIT {
            if let Some(status) = master.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        // A worker outlives a SIGKILLed master: kill those it had too, by pid.
        let _ = master.kill();
        let _ = master.wait();
        for pid in workers {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        None
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.shut_down("TERM");
    }
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it (P-256, two days), in
/// `dir`: `ca.pem`, `server.pem`, `server.key`; and `other-ca.pem`, a CA that signed
/// nothing.
fn make_certificates(dir: &Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for name in ["ca", "other-ca"] {
        run(Command::new("openssl")
            .current_dir(dir)
            .args(["req", "-x509", "-new", "-days", "2"])
            .arg("-subj")
            .arg(format!("/CN=telltale test {name}"))
            .args(key)
            .arg("-keyout")
            .arg(format!("{name}.key"))
            .arg("-out")
            .arg(format!("{name}.pem"))
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    }
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-new", "-subj", "/CN=localhost"])
        .args(key)
        .args(["-keyout", "server.key", "-out", "server.csr"]));
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]));
}

/// Runs `cmd`, which must succeed; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A loopback port nobody listens on now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `/usr/sbin/nginx` (not on a non-root PATH), else `nginx` on the PATH.
fn nginx_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// The pids whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}
