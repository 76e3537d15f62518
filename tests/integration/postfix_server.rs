//! A private, strict Postfix `smtpd` on 127.0.0.1, for testing delivery against the
//! rules and limits that hosted relays enforce: no unauthorised pipelining, no bare
//! <LF>, and (when asked) anvil's per-client connection and message-rate limits, which
//! apply to 127.0.0.1 too here.
//!
//! Each instance is a configuration directory of its own in a temporary directory,
//! started with `postfix -c DIR start`: its own queue, data directory, log file
//! (`maillog_file`, written by `postlogd`), syslog name and port. Every recipient
//! domain is delivered by the `virtual` agent into one Maildir in that directory;
//! nothing is relayed and no SMTP client runs, so no mail leaves the machine. The
//! system's own Postfix is never started or touched.
//!
//! Postfix starts as root only; elsewhere, or where it is not installed, the tests say
//! that they skipped (under CI, where .ci/run installs it, that is a failure).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The limits an instance enforces on its clients (none by default).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// `smtpd_client_connection_count_limit`: simultaneous connections per client
    /// (Postfix's own default, 50, when `None`).
    pub connection_count: Option<u32>,
    /// `smtpd_client_message_rate_limit` messages per `anvil_rate_time_unit` seconds.
    pub message_rate: Option<(u32, u32)>,
}

/// A running private Postfix instance; stopped when dropped.
pub struct PostfixServer {
    dir: tempfile::TempDir,
    port: u16,
    rejects_bare_newlines: bool,
}

/// What the installed Postfix is: its version and the parameters it knows.
struct Installed {
    version: String,
    parameters: HashSet<String>,
}

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTCONF: &str = "/usr/sbin/postconf";

/// The installed Postfix, asked once per test run; `None` when it is not installed.
fn installed() -> Option<&'static Installed> {
    static INSTALLED: OnceLock<Option<Installed>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            if !Path::new(POSTFIX).exists() {
                return None;
            }
            let out = Command::new(POSTCONF)
                .arg("-d")
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut version = String::new();
            let mut parameters = HashSet::new();
            for line in text.lines() {
                if let Some((name, value)) = line
                    .split_once(" = ")
                    .or_else(|| line.strip_suffix(" =").map(|name| (name, "")))
                {
                    if name == "mail_version" {
                        version = value.to_owned();
                    }
                    parameters.insert(name.to_owned());
                }
            }
            Some(Installed {
                version,
                parameters,
            })
        })
        .as_ref()
}

/// The uid and gid of `user` from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == user)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// The user that owns the delivered mail: unprivileged, and at or above Postfix's
/// `virtual_minimum_uid` (100).
const MAIL_USER: &str = "nobody";

impl PostfixServer {
    /// Starts an instance with `limits`, or returns `None` (saying so) when Postfix is
    /// not installed or this is not root; under CI that fails the test instead.
    pub fn start(limits: Limits) -> Option<PostfixServer> {
        let why = match installed() {
            None => Some("postfix is not installed (apt-get install postfix)"),
            Some(_) if !crate::postfix::running_as_root() => {
                Some("a private postfix runs only as root")
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            assert!(
                std::env::var_os("CI").is_none(),
                "{why}; .ci/run installs postfix and runs as root"
            );
            crate::helpers::skipping(&format!("its checks: {why}"));
            return None;
        }
        let installed = installed().expect("installed");
        // A port found free may be taken by another test before Postfix binds it: then
        // the master says so and exits, and a new instance tries another port.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match PostfixServer::try_start(installed, limits) {
                Ok(server) => return Some(server),
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "postfix {} did not start:\n{}",
            installed.version,
            failures.join("\n---\n")
        );
    }

    fn try_start(installed: &Installed, limits: Limits) -> Result<PostfixServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("tickler-postfix-")
            .tempdir()
            .expect("temp dir");
        // The unprivileged daemons and the delivery user walk through this directory.
        set_mode(dir.path(), 0o755);
        let server = PostfixServer {
            dir,
            port: crate::helpers::free_port(),
            rejects_bare_newlines: installed
                .parameters
                .contains("smtpd_forbid_bare_newline_reject_code"),
        };
        // The configuration directory holds only root's files (`postfix check` wants
        // it so); the queue, data and mail directories sit beside it.
        let conf = server.conf();
        for sub in ["conf", "queue", "mail", "log"] {
            std::fs::create_dir(server.dir.path().join(sub)).expect("mkdir");
        }
        let (uid, gid) = user_ids(MAIL_USER).expect("the user nobody exists");
        std::os::unix::fs::chown(server.dir.path().join("mail"), Some(uid), Some(gid))
            .expect("chown mail");
        std::fs::write(conf.join("domains"), "/./ ok\n").expect("write domains");
        std::fs::write(
            conf.join("main.cf"),
            server.main_cf(installed, limits, uid, gid),
        )
        .expect("write main.cf");
        std::fs::write(conf.join("master.cf"), server.master_cf()).expect("write master.cf");

        let out = Command::new(POSTFIX)
            .arg("-c")
            .arg(&conf)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .expect("postfix runs");
        if !out.status.success() {
            return Err(format!(
                "postfix start: {}\n{}{}\nlog:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                server.log()
            ));
        }
        // The master binds the port before it answers `start`; smtpd answers the first
        // connection once it has started.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if server.greets() {
                return Ok(server);
            }
            if Instant::now() > deadline || server.master_pid().is_none() {
                return Err(format!(
                    "no greeting on {}\nlog:\n{}",
                    server.port,
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server answers a connection with its 220 greeting (the session is
    /// then closed with QUIT, so the log holds no lost connection).
    fn greets(&self) -> bool {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || !line.starts_with("220 ") {
            return false;
        }
        let _ = std::io::Write::write_all(&mut &stream, b"QUIT\r\n");
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        true
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn main_cf(&self, installed: &Installed, limits: Limits, uid: u32, gid: u32) -> String {
        let base = self.dir.path().display();
        let knows = |name: &str| installed.parameters.contains(name);
        let mut cf = format!(
            "# A private test instance: it listens on 127.0.0.1:{port} only and delivers\n\
             # every recipient into one Maildir under {base}/mail; nothing leaves.\n\
             compatibility_level = 3.6\n\
             queue_directory = {base}/queue\n\
             data_directory = {base}/data\n\
             maillog_file_prefixes = {base}/log\n\
             maillog_file = {base}/log/maillog\n\
             syslog_name = tickler-test-postfix-{port}\n\
             myhostname = mx.tickler.test\n\
             mydomain = tickler.test\n\
             myorigin = $myhostname\n\
             mydestination =\n\
             relay_domains =\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             smtpd_data_restrictions = reject_unauth_pipelining\n\
             # Loopback is in $mynetworks, which is exempt from the limits by default.\n\
             smtpd_client_event_limit_exceptions =\n\
             virtual_mailbox_domains = regexp:{base}/conf/domains\n\
             # virtual(8) allows no $1 substitution in its maps: one Maildir for all.\n\
             virtual_mailbox_maps = static:maildir/\n\
             virtual_mailbox_base = {base}/mail\n\
             virtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:{gid}\n\
             default_transport = error:this test server relays nothing\n\
             relay_transport = error:this test server relays nothing\n\
             local_transport = error:this test server has no local delivery\n",
            port = self.port,
        );
        if knows("smtpd_forbid_unauth_pipelining") {
            cf.push_str("smtpd_forbid_unauth_pipelining = yes\n");
        }
        if self.rejects_bare_newlines {
            // `reject` came with the reject code (3.9, 3.8.5, 3.7.10, ...); before it
            // only `yes`, which normalises instead of refusing.
            cf.push_str("smtpd_forbid_bare_newline = reject\n");
        } else if knows("smtpd_forbid_bare_newline") {
            cf.push_str("smtpd_forbid_bare_newline = yes\n");
        }
        if knows("smtpd_forbid_bare_newline_exclusions") {
            cf.push_str("smtpd_forbid_bare_newline_exclusions =\n");
        }
        if let Some(count) = limits.connection_count {
            cf.push_str(&format!("smtpd_client_connection_count_limit = {count}\n"));
        }
        if let Some((messages, seconds)) = limits.message_rate {
            cf.push_str(&format!(
                "smtpd_client_message_rate_limit = {messages}\nanvil_rate_time_unit = {seconds}s\n"
            ));
        }
        cf
    }

    /// The stock services that receive and deliver mail, without chroot; no SMTP or
    /// LMTP client, no local delivery, and only the one smtpd listens on the network.
    fn master_cf(&self) -> String {
        format!(
            "# service type  private unpriv  chroot  wakeup  maxproc command\n\
             127.0.0.1:{port} inet n - n - - smtpd\n\
             pickup    unix  n       -       n       60      1       pickup\n\
             cleanup   unix  n       -       n       -       0       cleanup\n\
             qmgr      unix  n       -       n       300     1       qmgr\n\
             rewrite   unix  -       -       n       -       -       trivial-rewrite\n\
             bounce    unix  -       -       n       -       0       bounce\n\
             defer     unix  -       -       n       -       0       bounce\n\
             trace     unix  -       -       n       -       0       bounce\n\
             verify    unix  -       -       n       -       1       verify\n\
             flush     unix  n       -       n       1000?   0       flush\n\
             proxymap  unix  -       -       n       -       -       proxymap\n\
             showq     unix  n       -       n       -       -       showq\n\
             error     unix  -       -       n       -       -       error\n\
             retry     unix  -       -       n       -       -       error\n\
             discard   unix  -       -       n       -       -       discard\n\
             virtual   unix  -       n       n       -       -       virtual\n\
             anvil     unix  -       -       n       -       1       anvil\n\
             postlog   unix-dgram n  -       n       -       1       postlogd\n",
            port = self.port
        )
    }

    /// Whether this Postfix refuses a bare <LF> (`smtpd_forbid_bare_newline = reject`,
    /// Postfix 3.9, 3.8.5, 3.7.10 and later) rather than accepting it.
    pub fn rejects_bare_newlines(&self) -> bool {
        self.rejects_bare_newlines
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The Message-ID of every message delivered so far, one per delivered copy.
    pub fn delivered(&self) -> Vec<String> {
        let maildir = self.dir.path().join("mail/maildir");
        let mut ids = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                // A message in new/ is complete: virtual(8) writes it in tmp/ first.
                if let Ok(text) = std::fs::read(entry.path()) {
                    ids.push(message_id(&String::from_utf8_lossy(&text)).unwrap_or_default());
                }
            }
        }
        ids
    }

    /// Waits until `n` messages are delivered or `timeout` passes; returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = self.delivered();
            if ids.len() >= n || Instant::now() >= deadline {
                return ids;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The instance's log (its `maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/maillog")).unwrap_or_default()
    }

    fn master_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }
}

/// Whether `pid` runs (a zombie that nobody reaps has stopped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// The Message-ID header of a message, unfolded.
fn message_id(message: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in message.lines() {
        if line.is_empty() {
            break;
        }
        match &mut found {
            Some(value) if line.starts_with([' ', '\t']) => value.push_str(line.trim()),
            Some(_) => break,
            None => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("Message-ID")
                {
                    found = Some(value.trim().to_owned());
                }
            }
        }
    }
    found
}

fn set_mode(path: &Path, mode: u32) {
    let mut permissions = std::fs::metadata(path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, mode);
    std::fs::set_permissions(path, permissions).expect("chmod");
}

impl Drop for PostfixServer {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let Some(pid) = pid else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            let _ = Command::new(POSTFIX)
                .arg("-c")
                .arg(self.conf())
                .arg("abort")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(200));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}
