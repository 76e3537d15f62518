//! The bounce mailbox against a real Dovecot on 127.0.0.1 (imaps and imap+STARTTLS, a
//! private CA), and against loopback listeners that misbehave.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tickler::bounce::imap::{ImapError, ImapSettings, MAX_MESSAGE_BYTES, Mailbox};

/// The unprivileged owner of the mail: Dovecot refuses uid 0 for mail.
const MAIL_UID: u32 = 65534;
pub const USER: &str = "bounces";
pub const PASSWORD: &str = "s3cret pass";

/// A private Dovecot with one user, all its state in a temporary directory; stopped on
/// drop.
pub struct Dovecot {
    child: Child,
    pub dir: tempfile::TempDir,
    pub imaps: u16,
    imap: u16,
}

impl Dovecot {
    /// Starts Dovecot with `extra` settings, or returns `None` when it is not installed
    /// (which fails the test under CI, where .ci/run installs it).
    pub fn start(extra: &str) -> Option<Dovecot> {
        // Debian installs it outside a user's PATH.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let binary = std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("dovecot"))
            .find(|p| p.exists());
        let Some(binary) = binary else {
            assert!(
                std::env::var_os("CI").is_none(),
                "dovecot is needed; .ci/run installs dovecot-imapd"
            );
            crate::helpers::skipping(
                "its checks: Dovecot is not installed (apt-get install dovecot-imapd openssl)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // Dovecot's login and mail processes run as other users and must reach in.
        set_mode(root, 0o755);
        crate::helpers::make_certificates(root);
        let maildir = root.join("home").join(USER).join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        for path in [
            root.join("home"),
            root.join("home").join(USER),
            maildir.clone(),
        ]
        .into_iter()
        .chain(["cur", "new", "tmp"].map(|s| maildir.join(s)))
        {
            chown(&path, Some(MAIL_UID), Some(MAIL_UID)).expect("chown");
        }
        std::fs::write(root.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n"))
            .expect("passwd");
        set_mode(&root.join("passwd"), 0o644);
        let (imaps, imap) = (crate::helpers::free_port(), crate::helpers::free_port());
        let d = root.display();
        let config = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\n\
             ssl = required\nssl_cert = <{d}/server.pem\nssl_key = <{d}/server.key\n\
             auth_mechanisms = plain\nauth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={MAIL_UID} gid={MAIL_UID} home={d}/home/%u\n}}\n\
             mail_location = maildir:~/Maildir\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n  \
             inet_listener imaps {{\n    port = {imaps}\n    ssl = yes\n  }}\n}}\n{extra}\n"
        );
        std::fs::write(root.join("dovecot.conf"), config).expect("config");
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot starts");
        let dovecot = Dovecot {
            child,
            dir,
            imaps,
            imap,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", imaps)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen: {}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dovecot)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("home").join(USER).join("Maildir")
    }

    /// Delivers `message` into INBOX as a mail server would: a file in `new/`.
    pub fn deliver(&self, name: &str, message: &[u8]) {
        let path = self.maildir().join("new").join(name);
        std::fs::write(&path, message).expect("deliver");
        chown(&path, Some(MAIL_UID), Some(MAIL_UID)).expect("chown");
    }

    /// The message files in a mailbox (`""` for INBOX), wherever Dovecot has put them.
    pub fn files(&self, folder: &str) -> usize {
        let dir = match folder {
            "" => self.maildir(),
            name => self.maildir().join(format!(".{name}")),
        };
        ["cur", "new"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
            .map(|entries| entries.count())
            .sum()
    }

    fn settings(&self, url: &str) -> ImapSettings {
        ImapSettings {
            url: url.to_owned(),
            username: USER.into(),
            password: PASSWORD.into(),
            ca_file: Some(self.dir.path().join("ca.pem")),
            mailbox: "INBOX".into(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn imaps_url(&self) -> String {
        format!("imaps://127.0.0.1:{}", self.imaps)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM, so that the master stops the processes it started.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A small message with CRLF line ends, as IMAP serves them (so bytes compare equal).
fn message(n: usize) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.example\r\nTo: hello@fjord.example\r\n\
         Subject: Undelivered Mail Returned to Sender {n}\r\n\
         Message-ID: <bounce-{n}@mx.example>\r\n\r\nReport {n}.\r\n"
    )
    .into_bytes()
}

async fn open(settings: &ImapSettings) -> Mailbox {
    match Mailbox::open(settings).await {
        Ok(mailbox) => mailbox,
        Err(e) => panic!("open {}: {e}", settings.url),
    }
}

async fn open_err(settings: &ImapSettings) -> ImapError {
    match Mailbox::open(settings).await {
        Ok(mailbox) => panic!("{} opened: {mailbox:?}", settings.url),
        Err(e) => e,
    }
}

/// Three messages over imaps: all read byte for byte, two moved to `processed`, and
/// both mailboxes read again in new sessions.
async fn read_and_move(dovecot: &Dovecot) {
    let delivered: Vec<Vec<u8>> = (1..=3).map(message).collect();
    for (i, m) in delivered.iter().enumerate() {
        dovecot.deliver(&format!("100{i}.M{i}P1.test"), m);
    }
    let settings = dovecot.settings(&dovecot.imaps_url());
    let mut inbox = open(&settings).await;
    let batch = inbox.fetch(0, 10).await.expect("fetch");
    let raw: Vec<&Vec<u8>> = batch.messages.iter().map(|m| &m.raw).collect();
    assert_eq!(raw, delivered.iter().collect::<Vec<_>>());
    assert!(batch.oversized.is_empty());
    let uids: Vec<u32> = batch.messages.iter().map(|m| m.uid).collect();
    assert_eq!(batch.last_uid, uids.last().copied());
    inbox.move_processed(&uids[..2]).await.expect("move");
    inbox.close().await;

    let left = open(&settings).await.fetch(0, 10).await.expect("inbox");
    assert_eq!(left.messages.len(), 1, "INBOX keeps the message not moved");
    assert_eq!(left.messages[0].raw, delivered[2]);
    let processed = ImapSettings {
        mailbox: "processed".into(),
        ..settings
    };
    let moved = open(&processed)
        .await
        .fetch(0, 10)
        .await
        .expect("processed");
    let raw: Vec<&Vec<u8>> = moved.messages.iter().map(|m| &m.raw).collect();
    assert_eq!(raw, delivered[..2].iter().collect::<Vec<_>>());
    assert_eq!(
        dovecot.files("") + dovecot.files("processed"),
        3,
        "nothing deleted"
    );
}

#[tokio::test]
async fn imaps_reads_messages_raw_and_moves_them_to_a_new_processed_mailbox() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    assert!(!dovecot.maildir().join(".processed").exists());
    read_and_move(&dovecot).await;
}

#[tokio::test]
async fn without_move_the_messages_are_copied_then_expunged_by_uid() {
    // Dovecot announces only these, so the client cannot use MOVE.
    let Some(dovecot) = Dovecot::start("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS") else {
        return;
    };
    read_and_move(&dovecot).await;
}

#[tokio::test]
async fn imap_with_starttls_logs_in_over_tls() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    dovecot.deliver("1.M1P1.test", &message(1));
    let url = format!("imap://127.0.0.1:{}", dovecot.imap);
    let mut inbox = open(&dovecot.settings(&url)).await;
    let batch = inbox.fetch(0, 10).await.expect("fetch");
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.messages[0].raw, message(1));
    inbox.close().await;
    assert!(
        dovecot.log().contains("user=<bounces>, method=PLAIN") && dovecot.log().contains("TLS"),
        "{}",
        dovecot.log()
    );
}

#[tokio::test]
async fn a_server_without_starttls_never_sees_the_login() {
    // Answers CAPABILITY without STARTTLS, and keeps every line it is sent.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().expect("accept");
        let mut out = socket.try_clone().expect("clone");
        out.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plain only\r\n")
            .expect("greet");
        let mut heard = Vec::new();
        for line in BufReader::new(socket).lines().map_while(Result::ok) {
            let tag = line.split(' ').next().unwrap_or("*").to_owned();
            let reply = match line.to_ascii_uppercase().contains("CAPABILITY") {
                true => format!("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"),
                false => format!("{tag} OK\r\n"),
            };
            heard.push(line);
            let _ = out.write_all(reply.as_bytes());
        }
        heard
    });
    let settings = ImapSettings {
        url: format!("imap://127.0.0.1:{port}"),
        username: USER.into(),
        password: PASSWORD.into(),
        ca_file: None,
        mailbox: "INBOX".into(),
        timeout: Duration::from_secs(5),
    };
    let error = open_err(&settings).await;
    assert!(
        matches!(error, ImapError::NoStartTls { .. }),
        "{error:?}: {error}"
    );
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    let heard = server.join().expect("server");
    assert!(
        heard
            .iter()
            .all(|l| !l.contains(PASSWORD) && !l.contains("LOGIN")),
        "sent in clear: {heard:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_login_error() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    let settings = ImapSettings {
        password: "not it".into(),
        ..dovecot.settings(&dovecot.imaps_url())
    };
    let error = open_err(&settings).await;
    assert!(
        matches!(error, ImapError::LoginRejected { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("rejected the login of \"bounces\""), "{text}");
    assert!(
        !text.contains("not it"),
        "the password is not shown: {text}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_a_certificate_error() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    for url in [
        dovecot.imaps_url(),
        format!("imap://127.0.0.1:{}", dovecot.imap),
    ] {
        let settings = ImapSettings {
            ca_file: None,
            ..dovecot.settings(&url)
        };
        let error = open_err(&settings).await;
        assert!(matches!(error, ImapError::Tls { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("UnknownIssuer") && text.contains("email.bounce.imap.ca_file"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_missing_mailbox_is_named() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    let settings = ImapSettings {
        mailbox: "Bounces".into(),
        ..dovecot.settings(&dovecot.imaps_url())
    };
    let error = open_err(&settings).await;
    assert!(
        matches!(error, ImapError::MailboxMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("\"Bounces\""), "{error}");
}

#[tokio::test]
async fn nothing_listening_is_a_refused_connection() {
    let settings = ImapSettings {
        url: format!("imaps://127.0.0.1:{}", crate::helpers::free_port()),
        username: USER.into(),
        password: PASSWORD.into(),
        ca_file: None,
        mailbox: "INBOX".into(),
        timeout: Duration::from_secs(5),
    };
    let error = open_err(&settings).await;
    assert!(matches!(error, ImapError::Refused { .. }), "{error:?}");
    assert!(
        error.to_string().contains("refused the connection"),
        "{error}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_server_that_says_nothing_times_out_in_the_configured_time() {
    // The kernel completes the connection; nobody ever answers on it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    for url in [
        format!("imaps://127.0.0.1:{port}"),
        format!("imap://127.0.0.1:{port}"),
    ] {
        let settings = ImapSettings {
            url,
            username: USER.into(),
            password: PASSWORD.into(),
            ca_file: None,
            mailbox: "INBOX".into(),
            timeout: Duration::from_millis(400),
        };
        let started = Instant::now();
        let error = open_err(&settings).await;
        assert!(matches!(error, ImapError::Timeout { .. }), "{error:?}");
        assert!(
            error.to_string().contains("did not answer within 0.4s"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    drop(listener);
}

#[tokio::test]
async fn an_oversized_message_is_reported_and_left_in_place() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    let mut big = b"Subject: a huge report\r\n\r\n".to_vec();
    while big.len() <= MAX_MESSAGE_BYTES as usize + 1024 {
        big.extend_from_slice(&[b'x'; 998]);
        big.extend_from_slice(b"\r\n");
    }
    dovecot.deliver("1001.M1P1.test", &message(1));
    dovecot.deliver("1002.M2P1.test", &big);
    dovecot.deliver("1003.M3P1.test", &message(3));
    let mut inbox = open(&dovecot.settings(&dovecot.imaps_url())).await;
    let batch = inbox.fetch(0, 10).await.expect("fetch");
    let raw: Vec<&Vec<u8>> = batch.messages.iter().map(|m| &m.raw).collect();
    assert_eq!(raw, [&message(1), &message(3)]);
    assert_eq!(batch.oversized.len(), 1, "{:?}", batch.oversized);
    assert_eq!(batch.oversized[0].size as usize, big.len());
    // The count bounds a batch; `last_uid` takes the next one on from there.
    let first = inbox.fetch(0, 1).await.expect("fetch one");
    assert_eq!(first.messages.len(), 1);
    let rest = inbox
        .fetch(first.last_uid.expect("a uid"), 10)
        .await
        .expect("fetch rest");
    assert_eq!(rest.messages.len(), 1);
    assert_eq!(rest.oversized.len(), 1);
    inbox.close().await;
    assert_eq!(dovecot.files(""), 3, "all three are still in INBOX");
}
