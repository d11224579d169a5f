//! A webhook receiver (the test's end of an Alertmanager route): every POST it gets, by
//! path, as JSON. Test-only, as a receiver may be; Alertmanager itself is the real one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One notification: the path it was posted to and its JSON body.
#[derive(Debug, Clone)]
pub struct Notification {
    pub path: String,
    pub body: serde_json::Value,
}

/// Listens on a port the system picks; the accepting thread ends with the process.
pub struct Receiver {
    pub addr: SocketAddr,
    rx: mpsc::Receiver<Notification>,
}

impl Receiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Some(n) = serve(stream) {
                        let _ = tx.send(n);
                    }
                });
            }
        });
        Self { addr, rx }
    }

    /// `http://ADDR/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Collects notifications until `done` holds for what has arrived, or panics after
    /// `limit` with what did arrive.
    pub fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&[Notification]) -> bool,
    ) -> Vec<Notification> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(n) => got.push(n),
                Err(_) => panic!(
                    "the webhook notifications expected did not arrive within {limit:?}; got {got:#?}"
                ),
            }
        }
        got
    }
}

/// Reads one HTTP/1.1 request and answers 200 with `Connection: close`.
fn serve(mut stream: std::net::TcpStream) -> Option<Notification> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line
        .split_whitespace()
        .nth(1)?
        .trim_start_matches('/')
        .to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some(Notification {
        path,
        body: serde_json::from_slice(&body).ok()?,
    })
}
