//! A real SMTP server on 127.0.0.1 for the failure-mail tests: aiosmtpd (pinned in
//! `scripts/test-deps.sh`, installed into `.venv/`) running `smtp_sink.py`, which writes each
//! accepted message to a folder as JSON. It can be stopped and started again on the same port.
//!
//! Where aiosmtpd is not installed the tests say they were skipped, unless
//! `GATEWAY_TEST_REQUIRE_SMTP=1` (`.ci/run` sets it), which makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// A Python that can import aiosmtpd: the workspace's `.venv/`, else `python3` on PATH.
fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [root.join(".venv/bin/python"), PathBuf::from("python3")]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The SMTP server and the mails it received.
pub struct SmtpSink {
    python: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts on a free port; `None` (after printing why) when aiosmtpd is not installed and
    /// `GATEWAY_TEST_REQUIRE_SMTP` is not `1`.
    pub async fn start(test: &str) -> Option<Self> {
        let Some(python) = python() else {
            assert!(
                std::env::var("GATEWAY_TEST_REQUIRE_SMTP").as_deref() != Ok("1"),
                "aiosmtpd is not installed (run ./scripts/test-deps.sh) and GATEWAY_TEST_REQUIRE_SMTP=1"
            );
            eprintln!("SKIPPED {test}: aiosmtpd is not installed (./scripts/test-deps.sh)");
            return None;
        };
        // A free port: bound by the OS, released, then handed to the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut sink = SmtpSink {
            python,
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        sink.resume().await;
        Some(sink)
    }

    /// `smtp://127.0.0.1:<port>` (plain: the server is local).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port, waiting until it listens.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp_sink.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(&self.python)
                .arg(&script)
                .arg(self.port.to_string())
                .arg(self.dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("start the SMTP server");
            let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
            if matches!(ready, Ok(Ok(Some(ref l))) if l == "ready") {
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous run for a moment.
            let _ = child.kill().await;
            assert!(
                Instant::now() < deadline,
                "the SMTP server did not start on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server (the port then refuses connections).
    pub async fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read mail dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).expect("mail JSON"))
            .collect()
    }

    /// Waits (at most `timeout`) until `n` mails arrived; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.mails();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
