//! Debian's headless Chromium driven over the Chrome DevTools Protocol: a page stays open
//! while the test changes what the server says, and the test reads what the page's own
//! script rendered (`Runtime.evaluate` in the page), so a live update is seen as a person
//! would see it, without reloading.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::ChildGuard;

/// Debian's Chromium (`apt-get install chromium`; `./tests/run.sh` does).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every headless start here takes: no sandbox (CI is root), and none of the
/// background connections this machine's closed network refuses.
pub const HEADLESS_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1000",
];

/// One open page in a running Chromium.
pub struct Page {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The page's session, once attached.
    session: Option<String>,
    _browser: ChildGuard,
}

impl Page {
    /// Starts Chromium on `url` with a fresh profile under `profile` and connects to the
    /// page.
    pub fn open(url: &str, profile: &Path) -> Self {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install it with `apt-get install chromium` (./tests/run.sh does)"
        );
        let mut browser = ChildGuard::spawn(
            Command::new(CHROMIUM)
                .args(HEADLESS_FLAGS)
                // Port 0: Chromium picks one and prints it.
                .arg("--remote-debugging-port=0")
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(url)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
        let stderr = browser.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(ws.trim().to_owned());
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium printed its DevTools address");
        let (ws, _) = tungstenite::connect(browser_ws.as_str()).expect("connect to chromium");
        let mut page = Self {
            ws,
            next_id: 1,
            session: None,
            _browser: browser,
        };
        // The page Chromium opened on `url`, attached in flat mode: commands to it carry
        // its session id over the browser's connection.
        let targets = page.call("Target.getTargets", serde_json::json!({}));
        let target = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap_or_else(|| panic!("no page target: {targets}"))["targetId"]
            .clone();
        let attached = page.call(
            "Target.attachToTarget",
            serde_json::json!({"targetId": target, "flatten": true}),
        );
        page.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        page
    }

    /// Sends one command (to the page once attached) and returns its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut call = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            call["sessionId"] = session.clone().into();
        }
        self.ws
            .send(Message::text(call.to_string()))
            .expect("send to chromium");
        loop {
            let msg = self.ws.read().expect("read from chromium");
            let Message::Text(text) = msg else { continue };
            let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
            if reply["id"] != id {
                continue; // an event, or the answer to an earlier call
            }
            assert!(reply.get("error").is_none(), "{method} failed: {reply}");
            return reply["result"].clone();
        }
    }

    /// The value of JavaScript `expression` in the page (which must not throw).
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw in the page: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until `check` accepts its value, for at most `limit`.
    pub fn eval_until(
        &mut self,
        expression: &str,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let value = self.eval(expression);
            if check(&value) {
                return value;
            }
            assert!(
                start.elapsed() < limit,
                "the page never showed what was expected within {limit:?}; last: {value}"
            );
            // Poll interval, not a wait for an outcome: the loop re-checks the page.
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
}
