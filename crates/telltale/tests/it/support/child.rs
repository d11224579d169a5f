//! Child processes that never outlive a test, and `telltale` servers on ports the system
//! picks.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `telltale process` and `telltale run`: listen on a port the system picks and print it.
pub const LISTEN: [&str; 3] = ["--listen", "127.0.0.1:0", "--print-address"];
/// `telltale sim`: the control API on a port the system picks, printed.
pub const CONTROL_LISTEN: [&str; 3] = ["--control-listen", "127.0.0.1:0", "--print-address"];

/// How long a server may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long a child may take to exit after SIGTERM (it drains and flushes first).
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// A spawned child that is killed (SIGKILL) and reaped when the guard is dropped, so a
/// test that panics leaves no process behind. It derefs to the [`Child`] for `id()`,
/// `stdin`, `try_wait()`; the methods that end the child take the guard by value.
pub struct ChildGuard {
    child: Option<Child>,
    /// The rest of stdout after the address line, read so the child never blocks on it.
    stdout_rest: Option<JoinHandle<Vec<u8>>>,
    /// Each later line of stdout, as it is printed (e.g. `otlp-grpc ADDR`).
    stdout_lines: Option<mpsc::Receiver<String>>,
}

impl ChildGuard {
    /// Spawns `cmd` under a guard.
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        Self::new(child)
    }

    pub fn new(child: Child) -> Self {
        Self {
            child: Some(child),
            stdout_rest: None,
            stdout_lines: None,
        }
    }

    /// Sends SIGTERM, as systemd or docker would, then waits for the exit (at most
    /// [`STOP_LIMIT`], then SIGKILL and a panic): the exit status, the rest of stdout, and
    /// stderr if it was piped.
    pub fn sigterm_and_wait(self) -> Output {
        signal(self.id(), "TERM");
        self.wait_with_output()
    }

    /// SIGKILL, then reaps the child: a crash.
    pub fn kill_and_wait(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap()
    }

    /// Waits for the child to exit on its own (closing its stdin first, if piped), at most
    /// [`STOP_LIMIT`].
    pub fn wait_with_output(mut self) -> Output {
        let child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        // The waiting thread owns the child: while it is unreaped its pid cannot be reused,
        // so a SIGKILL by pid after the time limit reaches this child and no other.
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let mut out = match rx.recv_timeout(STOP_LIMIT) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                signal(pid, "KILL");
                let _ = rx.recv();
                panic!("process {pid} did not exit within {STOP_LIMIT:?}");
            }
        };
        if let Some(rest) = self.stdout_rest.take() {
            out.stdout = rest.join().unwrap();
        }
        out
    }

    /// Reads the first line of the child's stdout (piped) as the address it printed, then
    /// keeps reading the rest in the background.
    fn read_address(&mut self) -> SocketAddr {
        let stdout = self
            .stdout
            .take()
            .expect("stdout piped to read the address from");
        let (tx, rx) = mpsc::channel();
        let (lines_tx, lines_rx) = mpsc::channel();
        self.stdout_lines = Some(lines_rx);
        self.stdout_rest = Some(std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            let mut rest = Vec::new();
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = lines_tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                        rest.extend_from_slice(&line);
                    }
                }
            }
            rest
        }));
        let line = match rx.recv_timeout(START_LIMIT) {
            Ok(line) => line.unwrap(),
            Err(_) => panic!("no address on stdout within {START_LIMIT:?}"),
        };
        line.trim().parse().unwrap_or_else(|e| {
            let exit = self.try_wait().ok().flatten();
            panic!(
                "the first line of stdout, {line:?}, is not an address ({e}); exit status: {exit:?}"
            )
        })
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.child.as_ref().expect("the child was taken out")
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child was taken out")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `SIG<name>` to `pid` with kill(1), asserting it was delivered.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}: {status}");
}

/// A `telltale` child serving on an address it chose and printed (`--print-address`),
/// guarded like any child.
pub struct Server {
    /// Where it listens (the processor's HTTP, or the simulator's control API).
    pub addr: SocketAddr,
    pub child: ChildGuard,
}

impl Server {
    /// The next line of stdout after the address that starts with `prefix` (e.g.
    /// `otlp-grpc `), the prefix cut off; other lines are skipped. Panics when none comes
    /// within the start limit.
    pub fn stdout_line(&mut self, prefix: &str) -> String {
        let lines = self
            .child
            .stdout_lines
            .as_ref()
            .expect("Server::start reads stdout");
        let deadline = std::time::Instant::now() + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(e) => panic!("no stdout line starting {prefix:?} ({e})"),
            }
        }
    }

    /// Spawns `cmd`, which must carry [`LISTEN`] or [`CONTROL_LISTEN`], with stdout piped,
    /// and reads the address from its first line. The listener is open from then on, so
    /// no polling for readiness is needed.
    pub fn start(cmd: &mut Command) -> Self {
        let mut child = ChildGuard::spawn(cmd.stdout(Stdio::piped()));
        let addr = child.read_address();
        Self { addr, child }
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns at once (the child goes on shutting down).
    pub fn sigterm(&self) {
        signal(self.pid(), "TERM");
    }

    /// See [`ChildGuard::sigterm_and_wait`].
    pub fn sigterm_and_wait(self) -> Output {
        self.child.sigterm_and_wait()
    }

    /// SIGTERM; asserts the process exits 0.
    pub fn sigterm_and_expect_success(self) {
        let status = self.sigterm_and_wait().status;
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }

    /// See [`ChildGuard::kill_and_wait`].
    pub fn kill_and_wait(self) -> ExitStatus {
        self.child.kill_and_wait()
    }

    /// See [`ChildGuard::wait_with_output`].
    pub fn wait_with_output(self) -> Output {
        self.child.wait_with_output()
    }
}

/// `telltale process` over `data` on a port it picks (`--print-address`); the caller adds
/// `--config`, environment and stdio, then [`Server::start`]s it.
pub fn process_command(data: &Path) -> Command {
    let mut c = super::telltale();
    c.arg("process").args(LISTEN).arg("--data-dir").arg(data);
    c
}

/// `telltale process` over `data` with the config file `config`, on a port it picks.
pub fn start_processor(data: &Path, config: &Path) -> Server {
    Server::start(
        process_command(data)
            .arg("--config")
            .arg(config)
            .stderr(Stdio::inherit()),
    )
}

/// A loopback address nobody listens on (bound, then released): for testing a refused
/// connection only, never to hand to a server.
pub fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
