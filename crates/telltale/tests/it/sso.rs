//! Single sign-on against a real OpenID Connect provider: the npm package `oidc-provider`
//! run by `tests/oidc/provider.mjs` (node; `tests/run.sh` installs the package with
//! `npm ci`). No browser is needed for the protocol: a client with a cookie jar per
//! origin follows the redirects by hand, so every step is asserted (302 to the provider,
//! the provider's login, the callback, the session cookie). Tried: sign-in and the role
//! its groups map to, CSRF on admin routes, bearer tokens beside sessions, sign-out (and
//! the old cookie replayed), a bad signature, an expired ID token, a wrong audience, a
//! user without a mapped group, and a provider that cannot be discovered.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::child::{ChildGuard, Server, closed_port};
use crate::support::{describe, repo_root, telltale};

const CLIENT_ID: &str = "telltale";
const CLIENT_SECRET: &str = "client-secret-of-the-test-41";
const ADMIN_TOKEN: &str = "admin-token-of-the-sso-test";

fn oidc_dir() -> PathBuf {
    repo_root().join("tests/oidc")
}

/// The provider script's own process, and its issuer URL.
struct Provider {
    issuer: String,
    _child: ChildGuard,
}

/// How long the provider may take to print its issuer. Node 20 was once seen to hang at
/// start (its main thread blocked on a lock before listening, under the full parallel
/// test run); such a start is killed and tried again, at most [`PROVIDER_STARTS`] times.
const PROVIDER_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
const PROVIDER_STARTS: usize = 3;

fn start_provider(extra: &[&str]) -> Provider {
    let dir = oidc_dir();
    assert!(
        dir.join("node_modules/oidc-provider/package.json").exists(),
        "tests/oidc/node_modules is missing: `npm ci --prefix tests/oidc` (./tests/run.sh does)"
    );
    for _ in 0..PROVIDER_STARTS {
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir)
            .arg("provider.mjs")
            .args(["--port", "0", "--client-id", CLIENT_ID])
            .args(["--client-secret", CLIENT_SECRET])
            .args(["--redirect-uri", "http://127.0.0.1/auth/callback"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => ChildGuard::new(c),
            Err(e) => panic!(
                "node is missing ({e}): `apt-get install nodejs npm` (./tests/run.sh checks for it)"
            ),
        };
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut issuer = String::new();
            let read = out.read_line(&mut issuer);
            let _ = tx.send(read.map(|_| issuer));
            // Keep draining so the provider never blocks on a full pipe.
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let Ok(read) = rx.recv_timeout(PROVIDER_START_LIMIT) else {
            // Dropping the guard kills the hung provider.
            continue;
        };
        let issuer = read.unwrap().trim().to_owned();
        assert!(
            issuer.starts_with("http://127.0.0.1:"),
            "provider said {issuer:?}"
        );
        return Provider {
            issuer,
            _child: child,
        };
    }
    panic!(
        "the OIDC provider did not start within {PROVIDER_START_LIMIT:?}, {PROVIDER_STARTS} times"
    );
}

/// `telltale run` with `[server.oidc]` for `issuer`, an admin token beside it. Its port is
/// chosen here (the redirect URL in its config names it; the provider accepts any port
/// of a loopback redirect); a port taken in between is retried with another.
fn start_telltale(dir: &Path, issuer: &str) -> Server {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    for _attempt in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("telltale.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server.oidc]
issuer_url = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{}"
redirect_url = "http://127.0.0.1:{port}/auth/callback"
admin_groups = ["telltale-admins"]
read_groups = ["telltale-readers"]
session_ttl = "1h"
"#,
                secret.display()
            ),
        )
        .unwrap();
        let stderr = dir.join("telltale.stderr");
        let mut child = ChildGuard::spawn(
            telltale()
                .args(["run", "--rate", "20", "--seed", "2", "--no-incidents"])
                .args(["--listen", &format!("127.0.0.1:{port}"), "--print-address"])
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.join("lake"))
                .env("TELLTALE_ADMIN_TOKENS", ADMIN_TOKEN)
                // Debug logs: what the sign-in logs is checked for secrets.
                .env("TELLTALE_LOG", "debug")
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&stderr).unwrap()),
        );
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if let Ok(addr) = line.trim().parse() {
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return Server { addr, child };
        }
        let status = child.wait_with_output().status;
        let log = std::fs::read_to_string(&stderr).unwrap();
        if !log.contains("is the port taken") {
            panic!("telltale run did not start ({status}):\n{log}");
        }
    }
    panic!("no free port in 3 attempts");
}

/// An answer, with what the test looks at.
#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// A browser as far as the protocol goes: cookies per origin (scheme, host and port),
/// no redirect followed on its own.
struct Browser {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    jar: HashMap<String, BTreeMap<String, String>>,
}

fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

impl Browser {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = {
            let _in = runtime.enter();
            telltale_tls::client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap()
        };
        Self {
            client,
            runtime,
            jar: HashMap::new(),
        }
    }

    /// `method url` with `headers` and a form or JSON `body`.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let url = reqwest::Url::parse(url).unwrap();
        let cookies = self.jar.entry(origin(&url)).or_default();
        let mut req = self
            .client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if !cookies.is_empty() {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", header.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = self.runtime.block_on(async { req.send().await }).unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| resp.url().join(v.to_str().unwrap()).unwrap().to_string());
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let gone = c.to_ascii_lowercase().contains("max-age=0")
                || c.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if gone {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let body = self.runtime.block_on(async { resp.text().await }).unwrap();
        Answer {
            status,
            location,
            set_cookies,
            body,
        }
    }

    fn get_page(&mut self, url: &str) -> Answer {
        self.send("GET", url, &[("accept", "text/html,*/*")], None)
    }

    fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).unwrap();
        self.jar.get(&origin(&url))?.get(name).cloned()
    }
}

/// Asks telltale's status page as a browser would, signs in at the provider as `user`
/// and comes back: the answer of telltale's `/auth/callback`.
fn sign_in(b: &mut Browser, telltale: &str, issuer: &str, user: &str) -> Answer {
    let first = b.get_page(&format!("{telltale}/"));
    assert_eq!(
        first.status, 302,
        "no session: sent to the provider: {first:?}"
    );
    let mut next = first.location.unwrap();
    assert!(
        next.starts_with(&format!("{issuer}/auth?")),
        "302 to the provider's authorization endpoint: {next}"
    );
    for param in [
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "scope=openid",
    ] {
        assert!(next.contains(param), "{param} in {next}");
    }
    for _ in 0..10 {
        if next.starts_with(&format!("{telltale}/auth/callback")) {
            return b.get_page(&next);
        }
        let page = b.get_page(&next);
        match (page.status, page.location) {
            (300..=399, Some(loc)) => next = loc,
            (200, None) if next.contains("/interaction/") => {
                let form = b.send(
                    "POST",
                    &next,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    Some(format!("login={user}")),
                );
                assert_eq!(form.status, 303, "the provider's login: {form:?}");
                next = form.location.unwrap();
            }
            (status, _) => panic!("at {next}: {status}: {}", page.body),
        }
    }
    panic!("the provider never sent the browser back to telltale");
}

fn spike(b: &mut Browser, telltale: &str, origin: Option<&str>) -> Answer {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    b.send(
        "POST",
        &format!("{telltale}/control/spike"),
        &headers,
        Some(r#"{"factor": 2, "duration": "10s"}"#.to_owned()),
    )
}

/// `POST /api/v1/monitors` as the status page's form sends it.
fn add_monitor(b: &mut Browser, telltale: &str, origin: Option<&str>) -> Answer {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    b.send(
        "POST",
        &format!("{telltale}/api/v1/monitors"),
        &headers,
        Some(r#"{"url": "http://127.0.0.1:9/", "every": "30m"}"#.to_owned()),
    )
}

const SESSION: &str = "telltale_session";

#[test]
fn sign_in_maps_groups_to_roles_and_sign_out_ends_the_session() {
    let provider = start_provider(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = start_telltale(dir.path(), &provider.issuer);
    let url = server.url();

    // An admin: the status page, then the control API from telltale's own origin.
    let mut ada = Browser::new();
    let back = sign_in(&mut ada, &url, &provider.issuer, "ada");
    assert_eq!(back.status, 303, "{back:?}");
    assert_eq!(back.location.as_deref(), Some(format!("{url}/").as_str()));
    let set = back
        .set_cookies
        .iter()
        .find(|c| c.starts_with(SESSION))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(set.contains(attr), "{attr}: {set}");
    }
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    let page = ada.get_page(&format!("{url}/"));
    assert_eq!(page.status, 200, "{page:?}");
    let api = ada.send("GET", &format!("{url}/api/v1/slo"), &[], None);
    assert_eq!(api.status, 200, "the session reads the API too: {api:?}");
    assert_eq!(spike(&mut ada, &url, Some(&url)).status, 200);
    // CSRF: a cookie-signed-in change from another origin, or with no origin at all.
    let cross = spike(&mut ada, &url, Some("http://evil.example"));
    assert_eq!(cross.status, 403, "{cross:?}");
    assert!(cross.body.contains("cross-site"), "{}", cross.body);
    assert_eq!(spike(&mut ada, &url, None).status, 403);
    // The status page's monitor form: the admin session adds and removes, same origin only.
    let added = add_monitor(&mut ada, &url, Some(&url));
    assert_eq!(added.status, 201, "{added:?}");
    let cross = add_monitor(&mut ada, &url, Some("http://evil.example"));
    assert_eq!(cross.status, 403, "{cross:?}");
    let id: serde_json::Value = serde_json::from_str(&added.body).unwrap();
    let monitor = format!("{url}/api/v1/monitors/{}", id["id"].as_str().unwrap());

    // A reader: reads, may not change anything.
    let mut rob = Browser::new();
    assert_eq!(sign_in(&mut rob, &url, &provider.issuer, "rob").status, 303);
    assert_eq!(rob.get_page(&format!("{url}/")).status, 200);
    let denied = spike(&mut rob, &url, Some(&url));
    assert_eq!(denied.status, 403, "{denied:?}");
    assert!(denied.body.contains("admin"), "{}", denied.body);
    assert_eq!(add_monitor(&mut rob, &url, Some(&url)).status, 403);
    let origin = [("origin", url.as_str())];
    assert_eq!(rob.send("DELETE", &monitor, &origin, None).status, 403);
    assert_eq!(ada.send("DELETE", &monitor, &origin, None).status, 200);

    // A user in no mapped group gets no session.
    let mut eve = Browser::new();
    let refused = sign_in(&mut eve, &url, &provider.issuer, "eve");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.body.contains("none of their groups"),
        "{}",
        refused.body
    );
    assert_eq!(eve.cookie(&url, SESSION), None);

    // Without a session: API clients get 401, bearer tokens work as before.
    let mut api_client = Browser::new();
    let anon = api_client.send("GET", &format!("{url}/api/v1/slo"), &[], None);
    assert_eq!(anon.status, 401, "{anon:?}");
    assert_eq!(spike(&mut api_client, &url, None).status, 401);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let with_token = api_client.send(
        "POST",
        &format!("{url}/control/spike"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        Some(r#"{"factor": 3, "duration": "10s"}"#.to_owned()),
    );
    assert_eq!(with_token.status, 200, "{with_token:?}");
    let read = api_client.send(
        "GET",
        &format!("{url}/api/v1/slo"),
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(read.status, 200, "{read:?}");
    let wrong = api_client.send(
        "GET",
        &format!("{url}/api/v1/slo"),
        &[("authorization", "Bearer not-a-token")],
        None,
    );
    assert_eq!(wrong.status, 401, "{wrong:?}");

    // Sign-out clears the cookie, and the old cookie is refused from then on.
    let old = ada.cookie(&url, SESSION).unwrap();
    let out = ada.send(
        "POST",
        &format!("{url}/auth/logout"),
        &[("origin", &url)],
        None,
    );
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(ada.cookie(&url, SESSION), None, "cookie cleared");
    assert_eq!(ada.get_page(&format!("{url}/")).status, 302, "signed out");
    let mut thief = Browser::new();
    let replay = thief.send(
        "GET",
        &format!("{url}/api/v1/slo"),
        &[("cookie", &format!("{SESSION}={old}"))],
        None,
    );
    assert_eq!(
        replay.status, 401,
        "a logged-out cookie replayed: {replay:?}"
    );
    server.sigterm_and_expect_success();
}

/// Signs in `ada` at a provider started with `provider_args`: the refusal telltale gives.
fn refused_sign_in(provider_args: &[&str]) -> String {
    let provider = start_provider(provider_args);
    let dir = tempfile::tempdir().unwrap();
    let server = start_telltale(dir.path(), &provider.issuer);
    let url = server.url();
    let mut b = Browser::new();
    let back = sign_in(&mut b, &url, &provider.issuer, "ada");
    assert_eq!(back.status, 403, "{back:?}");
    assert!(
        !back.set_cookies.iter().any(|c| c.starts_with(SESSION)),
        "no session: {back:?}"
    );
    assert_eq!(b.cookie(&url, SESSION), None);
    assert_eq!(
        b.get_page(&format!("{url}/")).status,
        302,
        "still signed out"
    );
    assert_eq!(spike(&mut b, &url, Some(&url)).status, 401);
    server.sigterm_and_expect_success();
    back.body
}

#[test]
fn an_id_token_signed_with_a_key_the_provider_does_not_publish_is_refused() {
    let body = refused_sign_in(&["--publish-other-key"]);
    assert!(body.contains("ID token was refused"), "{body}");
    assert!(body.contains("Signature verification failed"), "{body}");
}

#[test]
fn an_expired_id_token_is_refused() {
    // The provider's clock runs 10 minutes behind and its ID tokens last 1 minute: each
    // one it issues expired 9 minutes ago by telltale's clock.
    let body = refused_sign_in(&["--id-token-ttl", "60", "--clock-skew=-600"]);
    assert!(body.contains("ID token was refused"), "{body}");
    assert!(body.contains("Expired"), "{body}");
}

#[test]
fn an_id_token_for_another_audience_is_refused() {
    let body = refused_sign_in(&["--audience", "some-other-client"]);
    assert!(body.contains("ID token was refused"), "{body}");
    assert!(body.contains("Invalid audiences"), "{body}");
}

#[test]
fn a_provider_that_cannot_be_discovered_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = format!("http://{}", closed_port());
    let config = dir.path().join("telltale.toml");
    std::fs::write(
        &config,
        format!(
            "[server.oidc]\nissuer_url = \"{issuer}\"\nclient_id = \"t\"\n\
             redirect_url = \"http://127.0.0.1:1/auth/callback\"\nadmin_groups = [\"a\"]\n"
        ),
    )
    .unwrap();
    let out = telltale()
        .args(["process", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("lake"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let mut err = String::new();
    out.stderr.as_slice().read_to_string(&mut err).unwrap();
    assert!(err.contains("OpenID Connect discovery failed"), "{err}");
    assert!(
        err.contains(&format!("{issuer}/.well-known/openid-configuration")),
        "{err}"
    );
    assert!(err.contains("server.oidc.issuer_url"), "{err}");
}

#[test]
fn check_config_validates_server_oidc() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("telltale.toml");
    let check = |toml: &str| {
        std::fs::write(&config, toml).unwrap();
        telltale()
            .arg("check-config")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let good = "[server.oidc]\nissuer_url = \"https://sso.example.com/realms/t\"\n\
                client_id = \"telltale\"\nredirect_url = \"https://t.example.com/auth/callback\"\n\
                admin_groups = [\"telltale-admins\"]\n";
    let out = check(good);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("server.oidc: single sign-on via https://sso.example.com/realms/t"),
        "{stdout}"
    );
    let out = check(&good.replace("https://sso", "http://sso"));
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("telltale.toml") && stderr.contains("server.oidc.issuer_url"),
        "{stderr}"
    );
    let out = check(&format!("{good}client_secret = \"inline\"\n"));
    assert!(
        !out.status.success(),
        "a secret in the file is not a key: {}",
        describe(&out)
    );
}
