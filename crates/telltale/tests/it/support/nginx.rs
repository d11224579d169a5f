//! Debian's real nginx for tests that need an HTTP server as a *target* or a *writer*
//! (access logs, URL monitors): started with the test's own `http { … }` body in a
//! folder of the test, on ports the test picked, and stopped (or killed) with the test.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// A running nginx.
pub struct Nginx {
    master: Option<Child>,
    dir: PathBuf,
}

/// A loopback port the system picked and gave back (nginx cannot report one it picked).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Starts nginx with `http` as the body of its `http` block (servers, logs), writing
    /// its pid, error log and temp files in `dir`; returns once each of `ports` accepts
    /// connections.
    pub fn start(dir: &Path, http: &str, ports: &[u16]) -> Self {
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let tmp = path("tmp");
        fs::create_dir_all(&tmp).unwrap();
        // As root, the workers run as nobody.
        let user = if is_root() {
            "user nobody nogroup;"
        } else {
            ""
        };
        fs::write(
            dir.join("nginx.conf"),
            format!(
                "{user}\nworker_processes 1;\npid {pid};\nerror_log {err} notice;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n\
                 fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n\
                 {http}\n}}\n",
                pid = path("nginx.pid"),
                err = path("error.log"),
            ),
        )
        .unwrap();
        let master = Command::new(if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        })
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
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (Debian package nginx; tests/run.sh installs it)");
        let mut nginx = Self {
            master: Some(master),
            dir: dir.to_owned(),
        };
        let start = Instant::now();
        for port in ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Some(status) = nginx.master.as_mut().unwrap().try_wait().unwrap() {
                    panic!("nginx exited: {status}\n{}", nginx.error_log());
                }
                assert!(
                    start.elapsed() < LIMIT,
                    "nginx not listening on {port}:\n{}",
                    nginx.error_log()
                );
                // Poll interval, not a wait for an outcome: the loop re-checks the port.
                std::thread::park_timeout(Duration::from_millis(20));
            }
        }
        nginx
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// `kill -USR1`: nginx reopens its logs; returns once `log` exists again.
    pub fn reopen_logs(&self, log: &Path) {
        let pid = self.master.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args(["-USR1", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let start = Instant::now();
        while !log.exists() {
            assert!(start.elapsed() < LIMIT, "nginx did not reopen its log");
            // Poll interval, not a wait for an outcome: the loop re-checks the file.
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    /// Graceful stop (`QUIT`), waiting for it.
    pub fn stop(mut self) {
        if let Some(mut m) = self.master.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &m.id().to_string()])
                .status();
            let _ = m.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut m) = self.master.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
