//! What an acknowledgement promises per `[wal] sync` mode, read off the processor's own
//! system calls: `telltale process` runs under `strace -f` while a client posts batches
//! one at a time, and the trace shows whether each `HTTP/1.1 200` was written to the
//! socket after the log's `fdatasync` returned. `kill -9` keeps the page cache, so only
//! the order of system calls can tell `always` from `never`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::http;
use crate::support::{BIN, Server, repo_root};

const STRACE: &str = "/usr/bin/strace";
const BATCHES: usize = 30;

/// What the trace shows, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A write to a log segment returned: the positions (LSNs) of the records in it, and
    /// which of them are batches (the rest are markers).
    LogWrite { lsns: Vec<u64>, batches: Vec<u64> },
    /// An fdatasync/fsync of a log segment returned; it covers what was written when it
    /// was called: records up to this position.
    LogSync { up_to: u64 },
    /// An `HTTP/1.1 200` went to a socket: an acknowledgement.
    Ack,
    /// A lake file written while applying record `lsn` was put in place.
    LakeFile { lsn: u64 },
}

/// Decodes `\xNN` escapes (`strace -xx` prints every string and path so).
fn unhex(text: &str) -> Vec<u8> {
    text.split("\\x")
        .filter(|h| h.len() >= 2)
        .filter_map(|h| u8::from_str_radix(&h[..2], 16).ok())
        .collect()
}

/// The quoted string arguments of a traced call, decoded.
fn strings(call: &str) -> Vec<Vec<u8>> {
    call.split('"').skip(1).step_by(2).map(unhex).collect()
}

/// The first string argument (a write's buffer).
fn first_string(call: &str) -> Vec<u8> {
    strings(call).into_iter().next().unwrap_or_default()
}

/// The path `-y` shows for the first argument, a file descriptor: `9<\x2f…>`.
fn fd_path(call: &str) -> String {
    let Some(first) = call.split([',', ')']).next() else {
        return String::new();
    };
    let inner = first
        .split_once('<')
        .map_or("", |(_, p)| p.trim_end_matches('>'));
    String::from_utf8_lossy(&unhex(inner)).into_owned()
}

/// The records of one log write: frames of `len u32 | crc u32 | lsn u64 | kind u8 | …`.
fn frames(bytes: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let (mut lsns, mut batches, mut at) = (Vec::new(), Vec::new(), 0);
    if bytes.starts_with(b"TTWAL") {
        return (lsns, batches); // a new segment's magic
    }
    while at + 17 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        lsns.push(lsn);
        if bytes[at + 16] == 0 {
            batches.push(lsn);
        }
        at += 8 + len;
    }
    (lsns, batches)
}

/// Reads `strace -f -y -xx` output. Calls that block show as `<unfinished ...>` and
/// `<... resumed>` lines; a call counts when it returns without error, an fsync for what
/// was written when it began.
fn steps(trace: &str) -> Vec<Step> {
    let mut pending: HashMap<&str, (String, u64)> = HashMap::new();
    let mut out = Vec::new();
    let mut written = 0u64;
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let (call, written_at_entry) = if let Some(r) = rest.strip_prefix("<... ") {
            let Some((entry, w)) = pending.remove(pid) else {
                continue;
            };
            (
                format!("{entry}{}", r.split_once("resumed>").map_or("", |(_, t)| t)),
                w,
            )
        } else if let Some(entry) = rest.strip_suffix("<unfinished ...>") {
            if is_ack(entry) {
                // The entry of a response write already shows what it sends.
                out.push(Step::Ack);
            } else {
                pending.insert(pid, (entry.to_owned(), written));
            }
            continue;
        } else {
            (rest.to_owned(), written)
        };
        // `) = 8`, or `)        = 0` (strace pads short lines); strings are hex, so the
        // last ` = ` is the result.
        let ok = call
            .rsplit_once(" = ")
            .is_some_and(|(_, r)| !r.trim_start().starts_with('-'));
        if !ok {
            continue;
        }
        let name = call.split('(').next().unwrap_or_default();
        let on_log = fd_path(&call).ends_with(".wal");
        match name {
            "write" | "pwrite64" if on_log => {
                let (lsns, batches) = frames(&first_string(&call));
                written = written.max(lsns.iter().copied().max().unwrap_or(0));
                out.push(Step::LogWrite { lsns, batches });
            }
            "fdatasync" | "fsync" if on_log => out.push(Step::LogSync {
                up_to: written_at_entry,
            }),
            "rename" | "renameat" | "renameat2" | "link" | "linkat" => {
                // The last path is the target: `…/part-<lsn>-wal.parquet`.
                let target = strings(&call).pop().unwrap_or_default();
                if let Some(lsn) = String::from_utf8_lossy(&target)
                    .rsplit('/')
                    .next()
                    .and_then(|f| f.strip_prefix("part-"))
                    .and_then(|f| f.strip_suffix("-wal.parquet"))
                    .and_then(|n| n.parse().ok())
                {
                    out.push(Step::LakeFile { lsn });
                }
            }
            _ if is_ack(&call) => out.push(Step::Ack),
            _ => {}
        }
    }
    out
}

fn is_ack(call: &str) -> bool {
    ["write(", "writev(", "sendto(", "sendmsg("]
        .iter()
        .any(|c| call.starts_with(c))
        && first_string(call).starts_with(b"HTTP/1.1 200")
}

/// What the trace proves. The client posts one batch at a time, so the k-th ack answers
/// the k-th batch written to the log.
#[derive(Debug, Default)]
struct Order {
    acks: usize,
    /// Acks sent before their batch's log record was fsynced.
    acks_before_fsync: usize,
    lake_files: usize,
    /// Lake files put in place before the log records up to theirs were fsynced.
    files_before_fsync: usize,
}

fn order(steps: &[Step]) -> Order {
    let (mut o, mut synced, mut batches) = (Order::default(), 0u64, Vec::new());
    for s in steps {
        match s {
            Step::LogWrite { batches: b, .. } => batches.extend(b.iter().copied()),
            Step::LogSync { up_to } => synced = synced.max(*up_to),
            Step::Ack => {
                let lsn = batches.get(o.acks).copied().unwrap_or(u64::MAX);
                o.acks += 1;
                o.acks_before_fsync += usize::from(synced < lsn);
            }
            Step::LakeFile { lsn } => {
                o.lake_files += 1;
                o.files_before_fsync += usize::from(synced < *lsn);
            }
        }
    }
    o
}

/// `telltale process` under strace: the server (strace itself), the traced process's
/// pid and the trace file. The traced process is killed if the test fails first.
struct Traced {
    server: Option<Server>,
    pid: u32,
    trace: std::path::PathBuf,
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.server.is_some() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

fn traced_processor(dir: &Path, config: &str) -> Traced {
    assert!(
        Path::new(STRACE).exists(),
        "{STRACE} is missing: `apt-get install strace` (./tests/run.sh does)"
    );
    let config_path = dir.join("telltale.toml");
    std::fs::write(&config_path, config).unwrap();
    let trace = dir.join("trace.txt");
    let server = Server::start(
        Command::new(STRACE)
            .args(["-f", "-y", "-qq", "-xx", "-s", "16384", "-e", "signal=none"])
            .args(["-e", "trace=write,pwrite64,writev,sendto,sendmsg,fdatasync,fsync,rename,renameat,renameat2,link,linkat"])
            .arg("-o")
            .arg(&trace)
            .arg(BIN)
            .args(["process", "--listen", "127.0.0.1:0", "--print-address", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&config_path)
            .current_dir(repo_root())
            .env("TELLTALE_LOG", "warn")
            .stderr(Stdio::inherit()),
    );
    let strace = server.pid();
    let children =
        std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
    let pid = children
        .split_whitespace()
        .next()
        .expect("strace's child")
        .parse()
        .unwrap();
    Traced {
        server: Some(server),
        pid,
        trace,
    }
}

impl Traced {
    fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().addr
    }

    /// SIGTERM to the traced `telltale`; the trace once it (and strace) exited 0.
    fn stop(mut self) -> String {
        assert!(
            Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let out = self.server.take().unwrap().wait_with_output();
        assert!(out.status.success(), "exit {:?}", out.status);
        std::fs::read_to_string(&self.trace).unwrap()
    }
}

fn post_batches(addr: std::net::SocketAddr, n: usize) {
    let now = chrono::Utc::now().to_rfc3339();
    for b in 0..n {
        let body: String = (0..20)
            .map(|i| {
                format!(
                    "{{\"service\":\"fsync-test\",\"timestamp\":\"{now}\",\"status_code\":200,\"latency_ms\":{}}}\n",
                    b * 20 + i
                )
            })
            .collect();
        let r = http::request(addr, "POST", "/v1/events", &body).expect("an answer");
        assert_eq!(r.status, Some(200), "{}", r.raw);
    }
}

#[test]
fn sync_always_acknowledges_only_after_the_log_is_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let traced = traced_processor(dir.path(), "[wal]\nsync = \"always\"\n");
    post_batches(traced.addr(), BATCHES);
    let steps = steps(&traced.stop());
    let o = order(&steps);
    assert_eq!(
        o.acks, BATCHES,
        "every acknowledgement is in the trace: {steps:?}"
    );
    assert_eq!(
        o.acks_before_fsync, 0,
        "an ack went out before its log record was fsynced: {steps:?}"
    );
}

#[test]
fn sync_never_acknowledges_before_fsync_but_syncs_the_log_before_lake_files() {
    // The check above has teeth: without the fsync before the ack, it sees it.
    let dir = tempfile::tempdir().unwrap();
    let traced = traced_processor(
        dir.path(),
        "[wal]\nsync = \"never\"\n[lake]\nflush_rows = 100\n",
    );
    post_batches(traced.addr(), BATCHES);
    let steps = steps(&traced.stop());
    let o = order(&steps);
    assert_eq!(o.acks, BATCHES, "{steps:?}");
    assert!(
        o.acks_before_fsync > 0,
        "`never` acknowledges without waiting for an fsync: {o:?} {steps:?}"
    );
    assert!(
        o.lake_files > 0,
        "100-row flushes wrote lake files: {steps:?}"
    );
    assert_eq!(
        o.files_before_fsync, 0,
        "a lake file came before the log records it is from were fsynced: {steps:?}"
    );
}

#[test]
fn sync_interval_fsyncs_the_log_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    // No lake file is due for an hour, so an fsync after the ack is the timer's.
    let traced = traced_processor(
        dir.path(),
        "[wal]\nsync = \"interval\"\nsync_interval = \"100ms\"\n[lake]\nflush_age = \"1h\"\n",
    );
    post_batches(traced.addr(), 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let steps = steps(&std::fs::read_to_string(&traced.trace).unwrap());
        let batch = steps.iter().find_map(|s| match s {
            Step::LogWrite { batches, .. } => batches.first().copied(),
            _ => None,
        });
        let after_ack = steps.iter().skip_while(|s| **s != Step::Ack).skip(1);
        let synced_later = after_ack
            .filter_map(|s| match s {
                Step::LogSync { up_to } => Some(*up_to),
                _ => None,
            })
            .any(|up_to| batch.is_some_and(|b| up_to >= b));
        if synced_later {
            let o = order(&steps);
            // The ack did not wait for the fsync; the timer made it durable afterwards,
            // with no lake file to force it.
            assert_eq!(
                (o.acks, o.acks_before_fsync, o.lake_files),
                (1, 1, 0),
                "{steps:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fsync of the log within 60 s of an ack: {steps:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    traced.stop();
}

#[test]
fn the_trace_parser_reads_real_strace_lines() {
    // Lines as strace 6.1 printed them: a blocking write resumed with padding, a
    // one-line fdatasync, a response write.
    let wal = "9<\\x2f\\x77\\x2f\\x31\\x2e\\x77\\x61\\x6c>"; // 9</w/1.wal>
    let frame =
        "\\x09\\x00\\x00\\x00\\xd1\\x79\\x8d\\x46\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00";
    let trace = format!(
        "1 write({wal}, \"{frame}\", 17 <unfinished ...>\n\
         2 writev(13<\\x73>, [{{iov_base=\"\\x48\\x54\\x54\\x50\\x2f\\x31\\x2e\\x31\\x20\\x32\\x30\\x30\", iov_len=12}}], 1) = 12\n\
         1 <... write resumed>)              = 17\n\
         1 fdatasync({wal}) = 0\n"
    );
    assert_eq!(
        steps(&trace),
        [
            Step::Ack,
            Step::LogWrite {
                lsns: vec![3],
                batches: vec![3]
            },
            Step::LogSync { up_to: 3 },
        ]
    );
}
