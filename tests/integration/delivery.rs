//! Delivery you can trust: SMTP AUTH and TLS against aiosmtpd, failure injection with
//! Postfix's smtp-sink, and crashes (SIGKILL) in the middle of delivering.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth_server::AuthServer;
use crate::helpers::Workspace;
use crate::smtp::SmtpServer;

const NOW: &str = "2026-03-04T10:00:00-05:00";

/// A workspace with the contacts and events imported, and SMTP settings `smtp` (the
/// body of the `email.smtp` mapping).
fn smtp_workspace(smtp: &str) -> Workspace {
    let ws = Workspace::new(None);
    ws.import_all();
    set_smtp(&ws, smtp);
    ws
}

fn set_smtp(ws: &Workspace, smtp: &str) {
    let original = ws.path("tickler.yaml.orig");
    if !original.exists() {
        std::fs::copy(ws.path("tickler.yaml"), &original).expect("keep the original");
    }
    let config = std::fs::read_to_string(original).expect("config");
    let config = config.replace(
        "email:\n  transport: file\n",
        &format!("email:\n  transport: smtp\n  smtp:\n{smtp}"),
    );
    ws.write("tickler.yaml", &config);
}

#[test]
fn starttls_and_auth_with_a_private_ca_deliver_and_bad_credentials_pause_sending() {
    let ws = Workspace::new(None);
    ws.import_all();
    let Some(server) = AuthServer::start(ws.dir.path(), "starttls") else {
        return;
    };
    ws.write("smtp-password", "s3cret pass\n");
    let good = format!(
        "    url: smtp://127.0.0.1:{}?tls=required\n    username: tickler\n    password_file: smtp-password\n    ca_file: ca.pem\n    timeout: 10s\n",
        server.port
    );

    // Wrong password: sending pauses as a whole, loudly, and nothing is lost.
    ws.write("wrong-password", "guess\n");
    set_smtp(&ws, &good.replace("smtp-password", "wrong-password"));
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("error: sending paused:") && run.stderr.contains("535"),
        "{}",
        run.stderr
    );
    let rows = ws.sends();
    let retrying: Vec<_> = rows.iter().filter(|r| r["status"] == "retrying").collect();
    assert_eq!(retrying.len(), 3, "{rows:?}");
    assert!(retrying.iter().all(|r| {
        r["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("paused:")
    }));
    assert_eq!(server.accepted(), 0);

    // Fixed: the kept sends go out at the next attempt.
    set_smtp(&ws, &good);
    let run = ws
        .tickler(&["tick", "--now", "2026-03-04T10:10:00-05:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(server.accepted(), 3);

    // A server whose certificate is not trusted: TLS fails, sending pauses.
    let ws2 = smtp_workspace(&good.replace("    ca_file: ca.pem\n", ""));
    std::fs::copy(ws.path("smtp-password"), ws2.path("smtp-password")).expect("copy");
    assert!(!ws2.path("ca.pem").exists());
    let run = ws2.tickler(&["tick", "--now", NOW]);
    assert_eq!(
        run.code,
        1,
        "{}\n{}\n{:?}",
        run.stdout,
        run.stderr,
        ws2.sends()
    );
    assert!(run.stderr.contains("sending paused"), "{}", run.stderr);
    assert_eq!(server.accepted(), 3);
}

#[test]
fn implicit_tls_with_auth_from_the_environment() {
    let ws = Workspace::new(None);
    ws.import_all();
    let Some(server) = AuthServer::start(ws.dir.path(), "implicit") else {
        return;
    };
    set_smtp(
        &ws,
        &format!(
            "    url: smtps://127.0.0.1:{}\n    username: tickler\n    password_env: TEST_SMTP_PASSWORD\n    ca_file: ca.pem\n",
            server.port
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(["--config", "tickler.yaml", "tick", "--now", NOW])
        .current_dir(ws.dir.path())
        .env("TEST_SMTP_PASSWORD", "s3cret pass")
        .output()
        .expect("tickler");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    assert_eq!(server.accepted(), 3);
    // The password is not in the logs, even verbose ones.
    let verbose = Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args([
            "--config",
            "tickler.yaml",
            "-vv",
            "tick",
            "--now",
            "2026-03-05T10:00:00-05:00",
        ])
        .current_dir(ws.dir.path())
        .env("TEST_SMTP_PASSWORD", "s3cret pass")
        .output()
        .expect("tickler");
    assert!(!String::from_utf8_lossy(&verbose.stderr).contains("s3cret"));
}

#[test]
fn hostile_contact_data_cannot_inject_headers() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.write(
        "templates/thanks.subject.hbs",
        "Thanks {{contact.fields.note}} {{event.fields.item}}",
    );
    // Quoted CSV fields with CR/LF and a NUL: names are rejected, custom fields too.
    let contacts = "id,first_name,last_name,email,note\n\
        H-1,\"Eve\r\nBcc: victim@example.com\",X,eve@example.com,ok\n\
        H-2,Mal,Lory,mal@example.com,\"hi\r\nX-Injected: yes\"\n\
        H-3,Nul,\"Z\u{0}\",nul@example.com,ok\n\
        H-4,Ok,Person,ok@example.com,\"Bcc: victim@example.com\"\n";
    ws.write("contacts.csv", contacts);
    let run = ws.tickler(&["import", "contacts", "contacts.csv"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("contacts.csv:2: first_name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("contacts.csv:4: note"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("contacts.csv:6: last_name"),
        "{}",
        run.stderr
    );
    ws.write("events.csv", "id,contact_id,kind,at,item\nP-1,H-4,purchase,2026-03-02,\"tile\nSubject: spoofed\"\nP-2,H-4,purchase,2026-03-01,grout\n");
    let run = ws.tickler(&["import", "events", "events.csv"]);
    assert_eq!(run.code, 1);
    ws.tickler(&["tick", "--now", NOW]).ok();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    let headers = m.data.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        !headers
            .lines()
            .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Injected")),
        "{headers}"
    );
    assert_eq!(m.rcpt_to, ["ok@example.com"]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Thanks Bcc: victim@example.com grout")
    );
}

/// A daemon that delivers to `url` with a 1-second tick and an always-open window.
fn start_daemon(ws: &Workspace) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(["--config", "tickler.yaml", "-q", "run"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(ws.path("daemon.log")).expect("log"))
        .spawn()
        .expect("daemon starts")
}

/// Whether the process has its own SIGTERM handler yet (SigCgt in /proc).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_resends_within_the_bound() {
    const CONTACTS: usize = 2000;
    const MAX_CONNECTIONS: usize = 4;
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    ws.write(
        "tickler.yaml",
        &config.replace(
            "max_connections: 2",
            &format!("max_connections: {MAX_CONNECTIONS}"),
        ),
    );
    ws.due_purchases(CONTACTS);

    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.messages().len() < CONTACTS && kills < 12 {
        let mut daemon = start_daemon(&ws);
        std::thread::sleep(Duration::from_millis(fastrand::u64(150..900)));
        daemon.kill().expect("SIGKILL");
        daemon.wait().expect("reaped");
        kills += 1;
    }
    // A last run to finish, stopped politely (once it listens for SIGTERM: the sends
    // may all be out already, and a signal before that point ends any process).
    let mut daemon = start_daemon(&ws);
    while !catches_sigterm(daemon.id()) {
        assert!(
            Instant::now() < deadline,
            "the daemon never set up its signals"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut unique: HashMap<String, usize> = HashMap::new();
    while Instant::now() < deadline {
        unique.clear();
        for m in server.messages() {
            *unique
                .entry(m.header("Message-ID").unwrap_or_default())
                .or_default() += 1;
        }
        if unique.len() >= CONTACTS {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    let status = daemon.wait().expect("wait");
    let log = std::fs::read_to_string(ws.path("daemon.log")).unwrap_or_default();
    assert!(status.success(), "{status}\n{log}");

    let total = server.messages().len();
    let duplicates = total - unique.len();
    let bound = kills * (MAX_CONNECTIONS + tickler::tick::RECORD_BATCH);
    eprintln!(
        "crash test: {kills} kills, {total} messages received, {} unique, {duplicates} resent (bound {bound})",
        unique.len()
    );
    assert_eq!(unique.len(), CONTACTS, "every message arrives");
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the bound {bound}"
    );
    let rows = ws.sends();
    assert_eq!(rows.len(), CONTACTS);
    assert!(
        rows.iter().all(|r| r["status"] == "sent"),
        "every send is recorded as sent"
    );
}

#[test]
fn the_rate_limit_spaces_sends_out() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    ws.write(
        "tickler.yaml",
        &config.replace(
            "  retry: { give_up_after: 1d }\n",
            "  rate_limit: 1/s\n  retry: { give_up_after: 1d }\n",
        ),
    );
    ws.import_all();
    let started = Instant::now();
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    // One at once, then one a second.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn with_the_http_endpoint_configured_links_are_signed_and_one_click() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.add_config("http:\n  listen: 127.0.0.1:0\n  public_url: https://tiles.example/tickler/\n");
    ws.import_all();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    let mut links = std::collections::HashSet::new();
    for m in &messages {
        let header = m.header("List-Unsubscribe").expect("List-Unsubscribe");
        assert!(
            header.starts_with("<https://tiles.example/tickler/unsubscribe/"),
            "{header}"
        );
        assert_eq!(
            m.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let (https, mailto) = header
            .split_once(", ")
            .expect("an https link and a mailto:");
        assert!(mailto.starts_with("<mailto:"), "{header}");
        let url = https.trim_matches(['<', '>']);
        assert!(m.data.contains(url), "the body carries the same link");
        links.insert(url.to_owned());
    }
    assert_eq!(links.len(), 3, "one link per contact");
    // The key was created, readable by its owner only.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ws.path("state/secret"))
            .expect("secret")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_password_is_never_sent_to_a_server_without_tls() {
    let ws = Workspace::new(None);
    ws.import_all();
    let Some(server) = AuthServer::start(ws.dir.path(), "plain") else {
        return;
    };
    ws.write("smtp-password", "s3cret pass\n");
    set_smtp(
        &ws,
        &format!(
            "    url: smtp://127.0.0.1:{}\n    username: tickler\n    password_file: smtp-password\n    timeout: 10s\n",
            server.port
        ),
    );
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("error: sending paused:") && run.stderr.contains("no STARTTLS"),
        "{}",
        run.stderr
    );
    let rows = ws.sends();
    let retrying: Vec<_> = rows.iter().filter(|r| r["status"] == "retrying").collect();
    assert_eq!(retrying.len(), 3, "{rows:?}");
    assert!(retrying.iter().all(|r| {
        r["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("never sends the SMTP password without TLS")
    }));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.logins.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(server.accepted(), 0);

    // `check` foresees it when the URL rules TLS out.
    set_smtp(
        &ws,
        &format!(
            "    url: smtp://127.0.0.1:{}?tls=none\n    username: tickler\n    password_file: smtp-password\n",
            server.port
        ),
    );
    let run = ws.tickler(&["check"]).ok();
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("tls=none"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_ca_certificate_used_as_the_servers_own_gets_advice_not_a_code() {
    let ws = Workspace::new(None);
    ws.import_all();
    // The CA's own certificate presented as the server's, and trusted.
    ws.write("smtp-password", "s3cret pass\n");
    let Some(server) = AuthServer::start_with_cert(ws.dir.path(), "starttls", "ca.pem", "ca.key")
    else {
        return;
    };
    set_smtp(
        &ws,
        &format!(
            "    url: smtp://127.0.0.1:{}?tls=required\n    username: tickler\n    password_file: smtp-password\n    ca_file: ca.pem\n    timeout: 10s\n",
            server.port
        ),
    );
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("CA certificate as its own") && run.stderr.contains("CA:FALSE"),
        "{}",
        run.stderr
    );
}
