//! `tickler run` as systemd runs it: notifications on a NOTIFY_SOCKET the test owns, the
//! HTTP endpoint (health, metrics, unsubscribe links, the API), SIGHUP reloads that
//! refuse a broken edit, SIGTERM, and hostile sync files and requests that it must
//! survive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::Workspace;
use crate::smtp::SmtpServer;

const TOKEN: &str = "test-token-0123456789abcdef";

/// A minimal HTTP/1.1 client: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> (u16, String) {
    let body = body.as_ref();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Daemon {
    child: Child,
    notes: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(ws: &Workspace) -> Daemon {
        let socket_path = ws.path("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let notes = Arc::new(Mutex::new(Vec::new()));
        let sink = notes.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(120) {
                if let Ok(n) = socket.recv(&mut buf) {
                    sink.lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        let child = Command::new(env!("CARGO_BIN_EXE_tickler"))
            .args(["--config", "tickler.yaml", "run"])
            .current_dir(ws.dir.path())
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "3000000")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon starts");
        Daemon { child, notes }
    }

    fn count(&self, note: &str) -> usize {
        self.notes
            .lock()
            .expect("lock")
            .iter()
            .filter(|n| n.lines().any(|l| l == note))
            .count()
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_daemon_as_systemd_runs_it() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    let port = crate::helpers::free_port();
    ws.always_open();
    ws.add_config(&format!("http:\n  listen: 127.0.0.1:{port}\n  public_url: https://tiles.example/tickler\n  api_token_file: token.txt\n"));
    ws.write("token.txt", &format!("{TOKEN}\n"));
    let day = crate::helpers::two_days_ago();
    ws.write(
        "events.csv",
        &format!("id,contact_id,kind,at\nP-1,K-1,purchase,{day}\nP-2,K-2,purchase,{day}\n"),
    );
    ws.import_all();

    let mut daemon = Daemon::start(&ws);
    wait_for("READY=1", 20, || daemon.count("READY=1") >= 1);
    wait_for("watchdog pings", 10, || daemon.count("WATCHDOG=1") >= 2);
    wait_for("two thank-yous", 20, || server.messages().len() >= 2);

    // Health and metrics.
    let (code, body) = http(port, "GET", "/healthz", &[], "");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"status\":\"ok\"") && body.contains("\"database\":\"ok\""),
        "{body}"
    );
    wait_for("metrics", 10, || {
        http(port, "GET", "/metrics", &[], "")
            .1
            .contains("tickler_sends{cadence=\"thanks\",channel=\"email\",status=\"sent\"} 2")
    });

    // The unsubscribe link from the delivered email's header, POSTed (RFC 8058).
    let ingrid = server
        .messages()
        .into_iter()
        .find(|m| m.rcpt_to == ["ingrid@example.org"])
        .expect("mail to Ingrid");
    let link = ingrid.header("List-Unsubscribe").expect("header");
    // The https link comes first; a mailto: for clients that do not post follows it.
    let (https, mailto) = link.split_once(", ").expect("two links");
    assert_eq!(mailto, "<mailto:hello@fjord.example?subject=unsubscribe>");
    let path = https
        .trim_matches(['<', '>'])
        .strip_prefix("https://tiles.example/tickler")
        .expect("our URL")
        .to_owned();
    let (code, page) = http(port, "GET", &path, &[], "");
    assert_eq!(code, 200);
    assert!(page.contains("<form method=\"post\">"), "{page}");
    let mut forged = path.clone();
    forged.pop();
    forged.push(if path.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(http(port, "POST", &forged, &[], "").0, 404);
    assert_eq!(
        http(port, "POST", "/unsubscribe/not-a-token", &[], "").0,
        404
    );
    let (code, _) = http(
        port,
        "POST",
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(code, 200);

    // The API: no token, a wrong one, a bad record, then a purchase for Ingrid.
    let auth = format!("Bearer {TOKEN}");
    let json = ("Content-Type", "application/json");
    let purchase =
        format!("{{\"contact_id\":\"K-1\",\"kind\":\"purchase\",\"at\":\"{day}\",\"id\":\"P-9\"}}");
    assert_eq!(
        http(port, "POST", "/api/v1/events", &[json], &purchase).0,
        401
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/api/v1/events",
            &[json, ("Authorization", "Bearer wrong")],
            &purchase
        )
        .0,
        401
    );
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/contacts",
        &[json, ("Authorization", &auth)],
        "[{\"id\":\"N-1\",\"email\":\"nope\"}]",
    );
    assert_eq!(code, 422);
    assert!(
        body.contains("\"field\":\"email\"") && body.contains("\"index\":0"),
        "{body}"
    );
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/events",
        &[json, ("Authorization", &auth)],
        "{\"contact_id\":\"GHOST\",\"kind\":\"purchase\",\"at\":\"2026-01-01\"}",
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("contact_id"), "{body}");
    let big = format!("[{}]", vec!["{\"id\":\"X\"}"; 200_000].join(","));
    assert_eq!(
        http(
            port,
            "POST",
            "/api/v1/contacts",
            &[json, ("Authorization", &auth)],
            &big
        )
        .0,
        413
    );
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/events",
        &[json, ("Authorization", &auth)],
        &purchase,
    );
    assert_eq!(code, 200, "{body}");
    // A provider's webhook reports a bounce: all or nothing, each field at fault named.
    let bounce =
        "{\"address\":\"gone@example.net\",\"reason\":\"bounced\",\"detail\":\"550 5.1.1\"}";
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/suppressions",
        &[json, ("Authorization", &auth)],
        format!("[{bounce},{{\"address\":\"nope\",\"reason\":\"bounced\"}}]"),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("\"index\":1") && body.contains("\"field\":\"address\""),
        "{body}"
    );
    assert_eq!(
        http(port, "POST", "/api/v1/suppressions", &[json], bounce).0,
        401
    );
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/suppressions",
        &[json, ("Authorization", &auth)],
        bounce,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"added\":1"), "{body}");
    let list = ws.tickler(&["suppressions", "--format", "csv"]).ok();
    assert!(
        list.stdout.contains("gone@example.net,bounced"),
        "{}",
        list.stdout
    );
    // Ingrid unsubscribed: her next due send is skipped, not sent.
    wait_for("the skip", 20, || {
        ws.sends().iter().any(|r| {
            r["occurrence"] == "P-9" && r["status"] == "skipped" && r["reason"] == "opted_out"
        })
    });
    assert_eq!(server.messages().len(), 2);

    // A broken cadence file on SIGHUP: refused, visible in /healthz, old cadences go on.
    let readies = daemon.count("READY=1");
    ws.write("cadences.yaml", "cadences:\n  - id: thanks\n    channel: email\n    trigger: { after: purchase, delay: 2x }\n");
    daemon.signal("HUP");
    wait_for("READY after the reload", 10, || {
        daemon.count("READY=1") > readies
    });
    assert!(daemon.count("RELOADING=1") >= 1);
    let (_, body) = http(port, "GET", "/healthz", &[], "");
    assert!(
        body.contains("reload_error") && body.contains("cadences.yaml"),
        "{body}"
    );
    let purchase = format!(
        "{{\"contact_id\":\"K-2\",\"kind\":\"purchase\",\"at\":\"{day}\",\"id\":\"P-10\"}}"
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/api/v1/events",
            &[json, ("Authorization", &auth)],
            &purchase
        )
        .0,
        200
    );
    wait_for("a thank-you by the old cadences", 20, || {
        server.messages().len() >= 3
    });

    // A good edit is taken.
    ws.write("cadences.yaml", crate::helpers::CADENCES);
    daemon.signal("HUP");
    wait_for("the reload error to clear", 10, || {
        !http(port, "GET", "/healthz", &[], "")
            .1
            .contains("cadences.yaml")
    });

    daemon.signal("TERM");
    let status = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = daemon.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(status.success(), "{status:?}");
    assert!(daemon.count("STOPPING=1") >= 1);
}

#[test]
fn sigterm_mid_delivery_exits_0_and_loses_nothing() {
    const CONTACTS: usize = 1500;
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    ws.due_purchases(CONTACTS);

    let mut daemon = Daemon::start(&ws);
    wait_for("delivery to start", 30, || server.messages().len() >= 20);
    daemon.signal("TERM");
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = daemon.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let delivered_before = server.messages().len();
    let pending = ws
        .sends()
        .iter()
        .filter(|r| r["status"] == "pending")
        .count();
    eprintln!("SIGTERM after {delivered_before} of {CONTACTS}; {pending} claims released");

    // The next pass delivers the rest, each message once.
    ws.tickler(&["tick"]).ok();
    let mut ids: Vec<String> = server
        .messages()
        .iter()
        .map(|m| m.header("Message-ID").unwrap_or_default())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CONTACTS, "every message arrives");
    assert_eq!(total, CONTACTS, "a clean stop resends nothing");
    assert!(ws.sends().iter().all(|r| r["status"] == "sent"));
}

/// A broken sync file and hostile API requests get errors; the daemon keeps ticking and
/// takes the next good file.
#[test]
fn bad_sync_files_and_requests_do_not_stop_the_daemon() {
    let ws = Workspace::new(None);
    let port = crate::helpers::free_port();
    ws.always_open();
    ws.add_config(&format!("contacts: {{ sync_csv: sync/contacts.csv }}\nevents: {{ sync_csv: sync/events.csv }}\nhttp:\n  listen: 127.0.0.1:{port}\n  api_token_file: token.txt\n"));
    ws.write("token.txt", TOKEN);
    // Binary garbage as the contacts export; no events file at all yet.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::create_dir_all(ws.path("sync")).expect("mkdir");
    std::fs::write(ws.path("sync/contacts.csv"), garbage).expect("write");

    let mut daemon = Daemon::start(&ws);
    wait_for("READY=1", 20, || daemon.count("READY=1") >= 1);
    wait_for("a healthy tick", 20, || {
        http(port, "GET", "/healthz", &[], "").0 == 200
    });

    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", &auth),
    ];
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let hostile: [(&str, &[u8], &str); 7] = [
        ("binary garbage", b"\xff\xfe\x00{\x01", "not JSON"),
        ("deep nesting", deep.as_bytes(), "not JSON"),
        ("not objects", b"[1, \"two\"]", "must be an object"),
        ("a nested value", b"{\"id\": {\"a\": 1}}", "must be text"),
        (
            "CR/LF in a name",
            b"{\"id\":\"N-1\",\"first_name\":\"Ann\\r\\nBcc: x@example.com\"}",
            "first_name",
        ),
        (
            "NUL in a custom field",
            b"{\"id\":\"N-1\",\"note\":\"a\\u0000b\"}",
            "note",
        ),
        ("a number too big", b"{\"id\": 1e999}", "not JSON"),
    ];
    for (what, body, needle) in hostile {
        let (code, reply) = http(port, "POST", "/api/v1/contacts", &headers, body);
        assert_eq!(code, 422, "{what}: {reply}");
        assert!(reply.contains(needle), "{what}: {reply}");
    }
    let (code, reply) = http(
        port,
        "POST",
        "/api/v1/events",
        &headers,
        "[{\"contact_id\":\"K-1\"}]",
    );
    assert_eq!(code, 422, "{reply}");
    assert!(reply.contains("\"field\":\"kind\""), "{reply}");
    assert_eq!(http(port, "GET", "/api/v1/contacts", &headers, "").0, 405);
    assert_eq!(http(port, "GET", "/unsubscribe/%00%ff..", &[], "").0, 404);

    // Still ticking; then a good export replaces the garbage and is taken.
    let (code, body) = http(port, "GET", "/healthz", &[], "");
    assert_eq!(code, 200, "{body}");
    let day = crate::helpers::two_days_ago();
    ws.write("sync/contacts.csv", crate::helpers::CONTACTS);
    ws.write(
        "sync/events.csv",
        &format!("id,contact_id,kind,at\nP-1,K-1,purchase,{day}\nP-2,GHOST,purchase,{day}\n"),
    );
    wait_for("the thank-you from the synced files", 30, || {
        ws.sends()
            .iter()
            .any(|r| r["contact"] == "K-1" && r["status"] == "sent")
    });
    assert_eq!(http(port, "GET", "/healthz", &[], "").0, 200);
    daemon.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
