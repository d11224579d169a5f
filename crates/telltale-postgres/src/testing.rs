//! A real PostgreSQL for tests (feature `testing`): Debian's server binaries, `initdb` in
//! a temporary directory, a port of the test's own, password (SCRAM) authentication, and
//! optionally TLS. The server runs as the `postgres` user when the test runs as root
//! (PostgreSQL refuses root), and is killed when the handle is dropped.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the test role `telltale`.
pub const PASSWORD: &str = "telltale-test-pw";

/// A PostgreSQL server of the test's own.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    data: PathBuf,
    sockets: PathBuf,
    port: u16,
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql; tests/run.sh does)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `cmd` as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestPostgres {
    /// initdb and start, plain TCP only.
    pub fn start() -> Self {
        Self::start_with_tls(None)
    }

    /// initdb and start; with `tls` = (certificate, key) PEM files, `ssl = on`.
    pub fn start_with_tls(tls: Option<(&Path, &Path)>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = bin_dir();
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        std::fs::create_dir_all(&sockets).unwrap();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let tls = tls.map(|(cert, key)| {
            let (c, k) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::copy(cert, &c).unwrap();
            std::fs::copy(key, &k).unwrap();
            (c, k)
        });
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the test directory to postgres");
            // The temp dir's parent must be searchable by postgres.
        }
        if let Some((_, key)) = &tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "telltale",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Self {
            bin,
            data,
            sockets,
            port: free_port(),
            tls,
            child: None,
            _dir: dir,
        };
        pg.restart();
        pg
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://telltale@127.0.0.1:PORT/postgres?sslmode=…` (no password: give it as
    /// `POSTGRES_PASSWORD` / [`PASSWORD`]).
    pub fn url(&self, sslmode: &str) -> String {
        format!(
            "postgres://telltale@127.0.0.1:{}/postgres?sslmode={sslmode}",
            self.port
        )
    }

    /// Starts the server (again, on the same data and port) and waits until it accepts
    /// connections (`pg_isready`, bounded).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = as_postgres(&self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.sockets)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own, so a kill reaches the postmaster and every backend.
            .process_group(0);
        if let Some((cert, key)) = &self.tls {
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", cert.display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", key.display()));
        }
        self.child = Some(cmd.spawn().expect("starting postgres"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("postgres exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "postgres not ready within 60 s");
            // Poll interval of a readiness check, not a wait for an outcome.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the server dies mid-whatever, as in a crash (the runuser wrapper and the
    /// postmaster's children go with it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group: runuser (when root), the postmaster and its backends.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            // Wait until no process of the group is left (they hold the shared memory
            // a new postmaster checks).
            let deadline = Instant::now() + Duration::from_secs(30);
            while Command::new("pgrep")
                .args(["-g", &child.id().to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                assert!(
                    Instant::now() < deadline,
                    "postgres processes left after SIGKILL"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// `psql -Atc SQL` as the test role: its output, trimmed.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "telltale",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .env("PGSSLMODE", "prefer")
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}
