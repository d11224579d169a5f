//! Helpers shared by the integration tests that run the real `telltale` binary.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The repository root (default config paths resolve from here, as in the README).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `telltale process --listen 127.0.0.1:<port>` over `data` with the config file `config`.
pub fn start_processor(data: &Path, config: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_telltale"))
        .current_dir(repo_root())
        .env_remove("TELLTALE_DATA_DIR")
        .env("TELLTALE_LOG", "warn")
        .args(["process", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM and asserts the process exits 0.
pub fn sigterm_and_expect_success(mut child: Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}
