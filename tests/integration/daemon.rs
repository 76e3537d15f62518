//! `tickler run` as a service manager runs it: sends what is due by the wall clock,
//! keeps ticking, and stops cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Workspace;
use crate::smtp::SmtpServer;

#[test]
fn run_sends_due_work_on_the_clock_and_stops_on_sigterm() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    // Purchases two days ago, so the thank-yous are due now whatever the date.
    let day = crate::helpers::two_days_ago();
    ws.write(
        "events.csv",
        &format!("id,contact_id,kind,at\nP-1,K-1,purchase,{day}\nP-2,K-2,purchase,{day}\n"),
    );
    ws.import_all();

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(["--config", "tickler.yaml", "run"])
        .current_dir(ws.dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.messages().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // A purchase pushed while it runs is picked up by a later tick.
    ws.tickler_with_input(
        &["import", "events", "-"],
        Some(&format!("id,contact_id,kind,at\nP-3,K-3,purchase,{day}\n")),
    )
    .ok();
    while server.messages().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let stopped = Instant::now();
    let output = loop {
        if let Some(status) = daemon.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().expect("stderr"), &mut log).expect("log");
    assert!(output.success(), "exit {output:?}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let mut to: Vec<String> = server
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "ingrid@example.org",
            "priya@example.com",
            "tomas@example.net"
        ],
        "{log}"
    );
    // Each send has one structured log line.
    assert_eq!(log.matches("status=\"sent\"").count(), 3, "{log}");
}
