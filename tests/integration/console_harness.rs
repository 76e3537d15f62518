//! A console to test against: `tickler run` with the console on a free port, signed in
//! as the owner, and the plain HTTP requests a browser without JavaScript would make.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Workspace;

pub const PASSWORD: &str = "correct horse battery";

pub struct Answer {
    pub code: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub fn http(port: u16, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n",
        form.len()
    );
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: tickler_session={cookie}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(form);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        code,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_owned()
}

pub fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn session_of(set_cookie: &str) -> String {
    set_cookie["tickler_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Signs in with the right password; the session id.
pub fn sign_in(port: u16) -> String {
    let form = format!("password={}", form_value(PASSWORD));
    let a = http(port, "POST", "/console/signin", None, &form);
    assert_eq!(a.code, 303, "{}", a.head);
    session_of(a.header("set-cookie").expect("a session cookie"))
}

/// A workspace with the console on, a few customers (one with a hostile name, one opted
/// out of email) after two ticks, the password set, and `tickler run` serving it.
pub struct Console {
    pub ws: Workspace,
    pub port: u16,
    pub _daemon: Daemon,
}

pub fn start_console() -> Console {
    start_console_on(None, false)
}

/// As [`start_console`], plus a prospect whose nudge failed (its inquiry lacks the
/// `item` its subject names), and a daemon that ticks every second at any hour, so that
/// a retry is seen through.
pub fn start_console_with_a_failure() -> Console {
    start_console_on(None, true)
}

/// As [`start_console`], with the database at `database_url` (else SQLite).
pub fn start_console_on(database_url: Option<&str>, failure: bool) -> Console {
    let ws = Workspace::new(None);
    if failure {
        ws.always_open();
    }
    if let Some(url) = database_url {
        ws.add_config(&format!("database:\n  url: \"{url}\"\n"));
    }
    let port = crate::helpers::free_port();
    ws.add_config(&format!(
        "http:\n  listen: 127.0.0.1:{port}\n  console: true\n"
    ));
    let prospect = if failure {
        "K-7,Olu,Adeyemi,olu@example.net,prospect,\n"
    } else {
        ""
    };
    ws.write(
        "contacts.csv",
        &format!(
            "id,first_name,last_name,email,tags,email_opt_out\n\
             K-1,Ingrid,Berg,ingrid@example.org,customer,\n\
             K-6,<script>alert(1)</script>,Hacker,x@example.org,customer,\n\
             K-5,Mei,Chen,mei@example.com,customer,true\n{prospect}"
        ),
    );
    let day = crate::helpers::two_days_ago();
    let inquiry = if failure {
        format!(
            "Q-7,K-7,inquiry,{}\n",
            day.yesterday().unwrap().yesterday().unwrap()
        )
    } else {
        String::new()
    };
    ws.write(
        "events.csv",
        &format!(
            "id,contact_id,kind,at\nP-1,K-1,purchase,{day}\nP-5,K-5,purchase,{day}\nP-6,K-6,purchase,{}\n{inquiry}",
            jiff::Zoned::now().date()
        ),
    );
    ws.import_all();
    ws.tickler(&["tick", "--now", &format!("{day}T12:00:00-05:00")])
        .ok();
    let second = ws.tickler(&[
        "tick",
        "--now",
        &format!(
            "{}T12:00:00-05:00",
            day.tomorrow().unwrap().tomorrow().unwrap()
        ),
    ]);
    // The prospect's nudge fails (exit 1); nothing else may.
    let failed = if failure { "1" } else { "0" };
    assert!(
        second.stdout.contains(&format!("failed={failed} ")),
        "{}{}",
        second.stdout,
        second.stderr
    );
    let set = ws.tickler_with_input(&["console", "passwd"], Some(&format!("{PASSWORD}\n")));
    assert!(
        set.stdout.contains("console password set"),
        "{}",
        set.stderr
    );
    let short = ws.tickler_with_input(&["console", "passwd"], Some("short\n"));
    assert_eq!(short.code, 1, "{}", short.stderr);

    let child = Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(["--config", "tickler.yaml", "run"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts");
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the console never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The daemon's first tick is over before the send log is looked at.
    while !http(port, "GET", "/healthz", None, "")
        .body
        .contains("\"last_tick_at\":\"")
    {
        assert!(Instant::now() < deadline, "the daemon never ticked");
        std::thread::sleep(Duration::from_millis(100));
    }

    Console {
        ws,
        port,
        _daemon: daemon,
    }
}
