//! Runs the real `tickler` binary against a workspace in a temporary directory: its own
//! configuration, cadences, templates, CSV files and SQLite database.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// What a command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Contacts that are not the shipped examples.
pub const CONTACTS: &str = "\
id,first_name,last_name,email,address_line1,city,postal_code,birthday,timezone,tags,email_opt_out,shoe_size
K-1,Ingrid,Berg,ingrid@example.org,4 Fjord Rd,Bergen,5003,1979-11-25,Europe/Oslo,customer,,42
K-2,Tomás,Ruiz,tomas@example.net,,,,,,customer;prospect,,
K-3,Priya,Nair,priya@example.com,,,,,America/Chicago,prospect,,
K-4,Olu,Ade,,9 Elm St,Utica,13501,,,customer,,
K-5,Mei,Chen,mei@example.com,,,,,,customer,true,
";

pub const EVENTS: &str = "\
id,contact_id,kind,at,item
P-1,K-1,purchase,2026-03-02,slate tiles
P-2,K-2,purchase,2026-03-02T16:00:00-05:00,grout
I-1,K-3,inquiry,2026-03-01,marble
P-3,K-4,purchase,2026-03-02,mosaic
P-4,K-5,purchase,2026-03-02,terracotta
P-0,K-1,purchase,2023-01-10,old history
";

pub const CADENCES: &str = "\
cadences:
  - id: thanks
    channel: email
    template: thanks
    trigger: { after: purchase, delay: 2d }
  - id: nudge
    channel: email
    template: nudge
    trigger: { after: inquiry, delay: 3d }
    where: { tags: [prospect] }
    unless: [purchase]
";

impl Workspace {
    /// A workspace whose email goes to `smtp_url` (or to `.eml` files when `None`).
    pub fn new(smtp_url: Option<&str>) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let ws = Workspace { dir };
        let email = match smtp_url {
            Some(url) => format!(
                "email:\n  transport: smtp\n  smtp: {{ url: \"{url}\", timeout: 10s, max_connections: 2 }}\n  retry: {{ give_up_after: 1d }}\n"
            ),
            None => "email:\n  transport: file\n".to_owned(),
        };
        ws.write(
            "tickler.yaml",
            &format!(
                "business:\n  name: Fjord & Field Tiles\n  email: hello@fjord.example\n  phone: \"555-0100\"\n  \
                 address: {{ line1: 1 Harbour St, city: Troy, region: NY, postal_code: \"12180\", country: US }}\n  \
                 timezone: America/New_York\nstate_dir: state\ntemplates: templates\ncadences: cadences.yaml\n\
                 schedule:\n  send_window: \"09:00-18:00\"\n{email}"
            ),
        );
        ws.write("cadences.yaml", CADENCES);
        ws.write(
            "templates/thanks.subject.hbs",
            "Thanks for the {{default event.fields.item \"order\"}}, {{contact.first_name}}!",
        );
        ws.write(
            "templates/thanks.txt.hbs",
            "Hello {{contact.first_name}}, & thank you.\nShoe size: {{default contact.fields.shoe_size \"unknown\"}}\n{{> footer}}",
        );
        ws.write(
            "templates/thanks.html.hbs",
            "<p>Hello {{contact.first_name}} &amp; welcome</p>{{> footer}}",
        );
        ws.write(
            "templates/nudge.subject.hbs",
            "Still thinking about {{event.fields.item}}?",
        );
        ws.write(
            "templates/nudge.txt.hbs",
            "Hi {{contact.first_name}}.\n{{> footer}}",
        );
        ws.write(
            "templates/partials/footer.hbs",
            "{{business.name}}, {{business.address_line}}\nUnsubscribe: {{unsubscribe_url}}\n",
        );
        ws.write("contacts.csv", CONTACTS);
        ws.write("events.csv", EVENTS);
        ws
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Adds `yaml` (top-level keys, or lines of the last mapping) to the end of the
    /// workspace's tickler.yaml.
    pub fn add_config(&self, yaml: &str) {
        let config = std::fs::read_to_string(self.path("tickler.yaml")).expect("config");
        self.write("tickler.yaml", &format!("{config}{yaml}"));
    }

    /// Sends may go out at any hour, and the daemon ticks every second.
    pub fn always_open(&self) {
        let config = std::fs::read_to_string(self.path("tickler.yaml")).expect("config");
        self.write(
            "tickler.yaml",
            &config.replace(
                "send_window: \"09:00-18:00\"",
                "send_window: \"00:00-24:00\"\n  tick: 1s",
            ),
        );
    }

    /// `count` contacts, each with a purchase two days ago (their thank-yous are due
    /// now, by the wall clock), imported.
    pub fn due_purchases(&self, count: usize) {
        self.due_purchases_files(count);
        self.import_all();
    }

    /// Writes `contacts.csv` and `events.csv` as `due_purchases` does, without importing.
    pub fn due_purchases_files(&self, count: usize) {
        let day = two_days_ago();
        let mut contacts = String::from("id,first_name,email\n");
        let mut events = String::from("id,contact_id,kind,at\n");
        for i in 0..count {
            contacts.push_str(&format!("C{i:05},Pat,c{i}@example.com\n"));
            events.push_str(&format!("P{i},C{i:05},purchase,{day}\n"));
        }
        self.write("contacts.csv", &contacts);
        self.write("events.csv", &events);
    }

    /// Imports the workspace's contacts and events.
    pub fn import_all(&self) {
        self.tickler(&["import", "contacts", "contacts.csv"]).ok();
        self.tickler(&["import", "events", "events.csv"]).ok();
    }

    /// Runs `tickler --config tickler.yaml ARGS` in the workspace.
    pub fn tickler(&self, args: &[&str]) -> Run {
        self.tickler_with_input(args, None)
    }

    pub fn tickler_with_input(&self, args: &[&str], input: Option<&str>) -> Run {
        tickler_in(self.dir.path(), &["--config", "tickler.yaml"], args, input)
    }

    /// The send log as JSON.
    pub fn sends(&self) -> Vec<serde_json::Value> {
        let run = self.tickler(&["sends", "--format", "json"]).ok();
        serde_json::from_str(&run.stdout).expect("sends --format json is JSON")
    }
}

/// Runs the binary in `dir`; fails the test if it panicked.
pub fn tickler_in(dir: &Path, global: &[&str], args: &[&str], input: Option<&str>) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(global)
        .args(args)
        .current_dir(dir)
        .env_remove("TICKLER_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tickler starts");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(stdin);
    // A command that hangs is killed, so the test fails instead of hanging CI.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let pid = child.id().to_string();
    let watchdog = std::thread::spawn(move || {
        let limit = std::time::Duration::from_secs(120);
        let timed_out = matches!(
            finished.recv_timeout(limit),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if timed_out {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        timed_out
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("tickler runs");
    let _ = done.send(());
    let hung = watchdog.join().unwrap_or(false);
    assert!(!hung, "tickler {args:?} hung and was killed after 120 s");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked") && run.code != 101,
        "tickler panicked on {args:?}:\n{}",
        run.stderr
    );
    run
}

/// Says that a test skipped part of its work, straight to the terminal: the harness
/// hides what passing tests print, and a skip must not pass unnoticed.
pub fn skipping(why: &str) {
    use std::io::Write as _;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "note: {test} skipped {why}");
}

/// Copies a directory tree.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

/// The date two days ago on the last calendar to reach today (UTC-12): a purchase that
/// day, at the start of the day in any contact's zone, is due for a thank-you now. Taken
/// in New York instead, contacts west of it had nothing due for hours after its midnight.
pub fn two_days_ago() -> jiff::civil::Date {
    let zone = jiff::tz::TimeZone::get("Etc/GMT+12").expect("zone");
    jiff::Zoned::now()
        .with_time_zone(zone)
        .date()
        .checked_sub(jiff::Span::new().days(2))
        .expect("date")
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it (`server.pem`,
/// `server.key`), made with openssl in `dir`.
pub fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tickler test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

/// A port nothing listens on at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}
