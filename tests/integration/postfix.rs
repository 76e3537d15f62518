//! Interoperability with Postfix's `smtp-sink`, a real SMTP server with failure
//! injection. CI installs it (see .ci/run); elsewhere these tests say they skipped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Workspace;

const NOW: &str = "2026-03-04T10:00:00-05:00";

/// A running `smtp-sink` on 127.0.0.1 that dumps each accepted message into a file.
pub struct Sink {
    child: Child,
    port: u16,
    pub dump: tempfile::TempDir,
}

impl Sink {
    /// Starts smtp-sink with extra `flags`, or returns `None` when it is not installed
    /// (which fails the test under CI, where it must be).
    pub fn start(flags: &[&str]) -> Option<Sink> {
        let port = crate::helpers::free_port();
        Sink::start_on(port, flags)
    }

    fn start_on(port: u16, flags: &[&str]) -> Option<Sink> {
        let program = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(program) = program else {
            assert!(
                std::env::var_os("CI").is_none(),
                "smtp-sink is not installed; .ci/run installs postfix"
            );
            crate::helpers::skipping(
                "its checks: smtp-sink is not installed (apt-get install postfix)",
            );
            return None;
        };
        let dump = tempfile::tempdir().expect("temp dir");
        let mut permissions = std::fs::metadata(dump.path()).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o777);
        std::fs::set_permissions(dump.path(), permissions).expect("chmod");
        let template = format!("{}/%Y%m%d%H%M%S.", dump.path().display());
        let mut command = Command::new(program);
        // smtp-sink refuses to run as root without -u.
        if running_as_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .args(flags)
            .args(["-d", &template, &format!("127.0.0.1:{port}"), "16"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Sink { child, port, dump })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn delivered(&self) -> usize {
        std::fs::read_dir(self.dump.path())
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the tests run as root (smtp-sink then needs -u; a private Postfix needs it).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn smtp_sink_accepts_every_due_message() {
    let Some(sink) = Sink::start(&[]) else { return };
    let ws = Workspace::new(Some(&sink.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    assert_eq!(sink.delivered(), 3);
    let sent = ws
        .tickler(&["sends", "--status", "sent", "--format", "json"])
        .ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&sent.stdout).expect("JSON");
    assert!(
        rows.iter()
            .all(|r| r["reply"].as_str().unwrap_or_default().starts_with("250")),
        "{rows:?}"
    );
}

#[test]
fn smtp_sink_hard_reject_fails_and_soft_reject_retries() {
    let Some(hard) = Sink::start(&["-f", "rcpt"]) else {
        return;
    };
    let ws = Workspace::new(Some(&hard.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout.trim(),
        "sent=0 failed=3 retrying=0 skipped=2 deferred=0"
    );

    let Some(soft) = Sink::start(&["-r", "rcpt"]) else {
        return;
    };
    let ws = Workspace::new(Some(&soft.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=0 failed=0 retrying=3 skipped=2 deferred=0"
    );
    assert_eq!(soft.delivered(), 0);
}

#[test]
fn disconnects_421_and_a_slow_server_are_retried_until_the_server_recovers() {
    let cases: [(&str, &[&str]); 3] = [
        ("disconnect after the message", &["-q", "."]),
        ("421 after RCPT", &["-Q", "rcpt"]),
        ("slower than the timeout", &["-w", "4"]),
    ];
    for (what, flags) in cases {
        let Some(bad) = Sink::start(flags) else {
            return;
        };
        let ws = Workspace::new(Some(&bad.url()));
        let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
        ws.write(
            "tickler.yaml",
            &config.replace("timeout: 10s", "timeout: 1s"),
        );
        ws.import_all();
        let run = ws.tickler(&["tick", "--now", NOW]).ok();
        assert_eq!(
            run.stdout.trim(),
            "sent=0 failed=0 retrying=3 skipped=2 deferred=0",
            "{what}"
        );
        let rows = ws.sends();
        let reasons: Vec<&str> = rows
            .iter()
            .filter(|r| r["status"] == "retrying")
            .filter_map(|r| r["reason"].as_str())
            .collect();
        assert_eq!(reasons.len(), 3, "{what}");
        assert!(reasons.iter().all(|r| !r.is_empty()), "{what}: {reasons:?}");

        // The server recovers (same address); after the backoff every message goes out.
        let port = bad.port;
        drop(bad);
        let Some(good) = Sink::start_on(port, &[]) else {
            return;
        };
        let run = ws
            .tickler(&["tick", "--now", "2026-03-04T11:00:00-05:00"])
            .ok();
        assert_eq!(
            run.stdout.trim(),
            "sent=3 failed=0 retrying=0 skipped=0 deferred=0",
            "{what}"
        );
        assert_eq!(good.delivered(), 3, "{what}");
        let rows = ws.sends();
        assert!(
            rows.iter()
                .filter(|r| r["status"] == "sent")
                .all(|r| r["attempts"] == 2),
            "{what}: {rows:?}"
        );
    }
}
