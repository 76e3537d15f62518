//! The HTTP endpoint's limits (SPEC section 10) as a client on the network meets them:
//! raw sockets that send nothing, half a request or a body a byte at a time are cut off
//! in time, the 513th connection waits for a free one, and API bodies too many or too
//! wrong get a short refusal, before the body is read when the token is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Workspace;

const TOKEN: &str = "limits-token-0123456789abcdef";

/// `tickler run` with the HTTP endpoint and the API on a free port.
struct Daemon {
    child: Child,
    port: u16,
    /// Kept for its temporary directory.
    _ws: Workspace,
}

impl Daemon {
    fn start() -> Daemon {
        let ws = Workspace::new(None);
        let port = crate::helpers::free_port();
        ws.add_config(&format!(
            "http:\n  listen: 127.0.0.1:{port}\n  api_token_file: token.txt\n"
        ));
        ws.write("token.txt", TOKEN);
        ws.import_all();
        let child = Command::new(env!("CARGO_BIN_EXE_tickler"))
            .args(["--config", "tickler.yaml", "run"])
            .current_dir(ws.dir.path())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon starts");
        let daemon = Daemon {
            child,
            port,
            _ws: ws,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while daemon.request("GET", "/healthz", &[], b"").0 == 0 {
            assert!(Instant::now() < deadline, "the endpoint did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        stream
    }

    /// One request on its own connection: (status, body); status 0 when nothing came.
    fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        if stream.write_all(&bytes).is_err() {
            return (0, String::new());
        }
        response(&mut stream)
    }

    fn api(&self, path: &str, body: &str) -> (u16, String) {
        let auth = format!("Authorization: Bearer {TOKEN}");
        let headers = [auth.as_str(), "Content-Type: application/json"];
        self.request("POST", path, &headers, body.as_bytes())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads to the end of the connection: (status, body).
fn response(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// Waits for the server to close `stream`: how long it took, and what it answered.
fn until_closed(mut stream: TcpStream, since: Instant) -> (Duration, String) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    (
        since.elapsed(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// What a slow client does with its connection.
type Client = Box<dyn FnOnce(TcpStream) + Send>;

#[test]
fn slow_clients_are_cut_off_in_time() {
    let daemon = Daemon::start();
    let auth = format!("Authorization: Bearer {TOKEN}");
    // The five run at once, so the test takes the longest limit, not their sum.
    let clients: Vec<(&str, Client, u64)> = vec![
        ("sends nothing", Box::new(|_| {}), 10),
        (
            "sends half a header",
            Box::new(|mut s| {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-A")
                    .expect("send")
            }),
            10,
        ),
        (
            "idles after a response on a kept-alive connection",
            Box::new(|mut s| {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .expect("send")
            }),
            10,
        ),
        (
            "sends its headers and half its body",
            Box::new(move |mut s| {
                let head = format!(
                    "POST /api/v1/contacts HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 1000\r\n\r\n"
                );
                s.write_all(head.as_bytes()).expect("send");
                s.write_all(&[b' '; 500]).expect("send");
            }),
            30,
        ),
        (
            "sends its body a byte every two seconds",
            Box::new(move |mut s| {
                let head = format!(
                    "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
                );
                s.write_all(head.as_bytes()).expect("send");
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(40) && s.write_all(b" ").is_ok() {
                    std::thread::sleep(Duration::from_secs(2));
                }
            }),
            30,
        ),
    ];
    let threads: Vec<_> = clients
        .into_iter()
        .map(|(what, act, limit)| {
            let stream = daemon.connect();
            let since = Instant::now();
            let reader = stream.try_clone().expect("clone");
            std::thread::spawn(move || {
                let writer = std::thread::spawn(move || act(stream));
                let (took, reply) = until_closed(reader, since);
                let _ = writer.join();
                (what, limit, took, reply)
            })
        })
        .collect();
    for thread in threads {
        let (what, limit, took, reply) = thread.join().expect("client thread");
        eprintln!("a client that {what}: closed after {took:.1?}");
        assert!(
            took >= Duration::from_secs(limit - 1) && took < Duration::from_secs(limit + 3),
            "a client that {what} was closed after {took:?}, not {limit} s: {reply}"
        );
        match limit {
            30 => assert!(reply.starts_with("HTTP/1.1 408"), "{what}: {reply}"),
            _ if what.contains("kept-alive") => assert!(reply.starts_with("HTTP/1.1 "), "{reply}"),
            _ => assert_eq!(reply, "", "{what}"),
        }
    }
    assert_ne!(
        daemon.request("GET", "/healthz", &[], b"").0,
        0,
        "still serving"
    );
}

#[test]
fn the_513th_connection_waits_for_a_free_one() {
    let daemon = Daemon::start();
    let open: Vec<TcpStream> = (0..512).map(|_| daemon.connect()).collect();
    // Give the server time to take all 512 before the next one comes.
    std::thread::sleep(Duration::from_millis(500));
    let mut extra = daemon.connect();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waited = extra.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the 513th connection was served while 512 were open: {waited:?}"
    );
    // One closes: the waiting one is served.
    drop(open.into_iter().next());
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (status, _) = response(&mut extra);
    assert!(status == 200 || status == 503, "status {status}");
}

#[test]
fn api_bodies_too_many_too_wrong_or_without_the_token() {
    let daemon = Daemon::start();
    let contacts = |n: usize, email: &str| {
        let records: Vec<String> = (0..n)
            .map(|i| format!("{{\"id\":\"N-{i}\",\"email\":\"{email}\"}}"))
            .collect();
        format!("[{}]", records.join(","))
    };
    let event_for_n0 =
        "{\"contact_id\":\"N-0\",\"kind\":\"purchase\",\"at\":\"2026-03-02\",\"id\":\"E-1\"}";

    // 1,001 good records: refused whole, naming the limit; nothing is stored.
    let (code, reply) = daemon.api("/api/v1/contacts", &contacts(1001, "n@example.com"));
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply.contains("at most 1000 records a request") && reply.contains("\"index\":1000"),
        "{reply}"
    );
    let (code, reply) = daemon.api("/api/v1/events", event_for_n0);
    assert_eq!(code, 422, "N-0 was stored: {reply}");
    assert!(reply.contains("no contact `N-0`"), "{reply}");

    // 1,000 wrong ones: the first hundred errors, and how many more.
    let (code, reply) = daemon.api("/api/v1/contacts", &contacts(1000, "nope"));
    assert_eq!(code, 422, "{reply}");
    assert!(reply.len() < 20_000, "{} bytes", reply.len());
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON");
    assert_eq!(reply["errors"].as_array().map(Vec::len), Some(100));
    assert_eq!(reply["errors"][99]["index"], 99);
    assert_eq!(reply["more"], 900);
    // 5,000 wrong ones: as short.
    let (code, reply) = daemon.api("/api/v1/contacts", &contacts(5000, "nope"));
    assert_eq!(code, 422, "{reply}");
    assert!(reply.len() < 20_000, "{} bytes", reply.len());
    assert!(reply.contains("at most 1000 records"), "{reply}");
    // A million `{}`: the 1 MiB body holds 349,524 records; the first 1,001 are read.
    let empties = format!("[{}]", vec!["{}"; 349_524].join(","));
    assert_eq!(empties.len(), 1_048_573);
    let (code, reply) = daemon.api("/api/v1/contacts", &empties);
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply.len() < 1000 && reply.contains("at most 1000"),
        "{reply}"
    );

    // An id JSON would round: refused, with what to do instead.
    let (code, reply) = daemon.api(
        "/api/v1/contacts",
        "[{\"id\":123456789012345678901234567890},{\"id\":123456789012345678901234567891}]",
    );
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply.contains("\"field\":\"id\"") && reply.contains("write it as a string"),
        "{reply}"
    );

    // The 1,000 good ones are taken; then N-0 has its event.
    let (code, reply) = daemon.api("/api/v1/contacts", &contacts(1000, "n@example.com"));
    assert_eq!(code, 200, "{reply}");
    assert!(reply.contains("\"accepted\":1000"), "{reply}");
    assert_eq!(daemon.api("/api/v1/events", event_for_n0).0, 200);

    // Without the token, 401 before the body: these headers announce 1 MiB and none of
    // it is sent; the answer comes anyway, at once.
    for auth in ["", "Authorization: Bearer wrong-token-0123456789abcde\r\n"] {
        let mut stream = daemon.connect();
        let head = format!(
            "POST /api/v1/contacts HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("send");
        let started = Instant::now();
        let (status, _) = response(&mut stream);
        assert_eq!(status, 401, "{auth:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // And with all of that 1 MiB sent.
    let (code, _) = daemon.request(
        "POST",
        "/api/v1/events",
        &["Content-Type: application/json"],
        empties.as_bytes(),
    );
    assert!(code == 401 || code == 0, "{code}");
    // Elsewhere a body is a short form: 16 KiB at most, refused from its headers.
    let mut stream = daemon.connect();
    stream
        .write_all(b"POST /unsubscribe/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        .expect("send");
    assert_eq!(response(&mut stream).0, 413);
    assert_ne!(
        daemon.request("GET", "/healthz", &[], b"").0,
        0,
        "still serving"
    );
}
