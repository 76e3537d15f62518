//! Mail that arrives: every email signed with the business's DKIM key verifies, by an
//! independent verifier (Python's dkimpy, Debian's python3-dkim), after it went through
//! Postfix's smtp-sink; and the shipped messages score clean in SpamAssassin, offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::auth_server::AuthServer;
use crate::helpers::{Workspace, tickler_in};
use crate::postfix::Sink;

const VERIFY: &str = r#"
import sys, dkim
record = sys.argv[1].encode()
for path in sys.argv[2:]:
    message = open(path, 'rb').read()
    ok = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
    print(('verified ' if ok else 'FAILED ') + path)
"#;

/// Python with dkimpy, or `None` (and a note) outside CI when it is missing.
fn dkimpy() -> Option<&'static str> {
    let python = "/usr/bin/python3";
    let there = Command::new(python)
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !there {
        assert!(std::env::var_os("CI").is_none(), "CI needs python3-dkim");
        crate::helpers::skipping("DKIM verification: python3-dkim is not installed");
        return None;
    }
    Some(python)
}

/// The DNS record `tickler dkim keygen` printed.
fn record_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("value: "))
        .expect("a record")
        .to_owned()
}

fn signed_through_a_sink(algorithm: &str) {
    let (Some(python), Some(sink)) = (dkimpy(), Sink::start(&[])) else {
        return;
    };
    let ws = Workspace::new(Some(&sink.url()));
    let keygen = ws
        .tickler(&[
            "dkim",
            "keygen",
            "--selector",
            "t2026",
            "--domain",
            "fjord.example",
            "--algorithm",
            algorithm,
            "--out",
            "dkim.pem",
        ])
        .ok();
    assert!(
        keygen.stdout.contains("t2026._domainkey.fjord.example"),
        "{}",
        keygen.stdout
    );
    let record = record_of(&keygen.stdout);
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    ws.write(
        "tickler.yaml",
        &format!(
            "{config}  dkim: {{ domain: fjord.example, selector: t2026, key_file: dkim.pem }}\n"
        ),
    );
    let check = ws.tickler(&["check"]).ok();
    assert!(check.stdout.starts_with("ok:"), "{}", check.stdout);
    ws.import_all();
    ws.tickler(&["tick", "--now", "2026-03-04T10:00:00-05:00"])
        .ok();
    let dumps: Vec<PathBuf> = std::fs::read_dir(sink.dump.path())
        .expect("dumps")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(dumps.len() >= 2, "{} messages", dumps.len());
    let out = Command::new(python)
        .args(["-c", VERIFY, &record])
        .args(&dumps)
        .output()
        .expect("python runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.matches("verified ").count(), dumps.len(), "{report}");

    // Any change to a signed header breaks the signature: the check is real.
    let tampered = ws.path("tampered.eml");
    let original = std::fs::read_to_string(&dumps[0]).expect("dump");
    std::fs::write(
        &tampered,
        original.replacen("Subject: ", "Subject: Re: ", 1),
    )
    .expect("write");
    let out = Command::new(python)
        .args(["-c", VERIFY, &record, &tampered.display().to_string()])
        .output()
        .expect("python runs");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("FAILED"),
        "{out:?}"
    );
}

#[test]
fn rsa_signed_email_verifies_after_a_real_smtp_server() {
    signed_through_a_sink("rsa");
}

#[test]
fn ed25519_signed_email_verifies_after_a_real_smtp_server() {
    signed_through_a_sink("ed25519");
}

#[test]
fn check_names_a_key_it_cannot_use_and_keygen_keeps_an_existing_key() {
    let ws = Workspace::new(None);
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    ws.write(
        "tickler.yaml",
        &format!(
            "{config}  dkim: {{ domain: other.example, selector: s1, key_file: missing.pem }}\n"
        ),
    );
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("tickler.yaml:") && run.stderr.contains("missing.pem"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("is not the From address's domain"),
        "{}",
        run.stderr
    );
    ws.write(
        "missing.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let run = ws.tickler(&["check"]);
    assert!(
        run.stderr.contains("not a PEM RSA or Ed25519 private key"),
        "{}",
        run.stderr
    );

    let keygen = [
        "dkim",
        "keygen",
        "--selector",
        "s1",
        "--domain",
        "fjord.example",
        "--out",
        "k.pem",
    ];
    let first = ws.tickler(&keygen).ok();
    assert!(
        first.stdout.contains("v=DKIM1; k=rsa; p="),
        "{}",
        first.stdout
    );
    let key = std::fs::read(ws.path("k.pem")).expect("key");
    let again = ws.tickler(&keygen);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("never replaced"), "{}", again.stderr);

    // The bounce mailbox's password must be where the configuration says.
    ws.write(
        "tickler.yaml",
        &format!(
            "{config}  bounce:\n    imap: {{ url: \"imaps://127.0.0.1:993\", username: b, password_file: nope }}\n"
        ),
    );
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("email.bounce.imap.password_file: cannot read"),
        "{}",
        run.stderr
    );

    // One-click unsubscribe needs https: check refuses any other public URL.
    ws.write(
        "tickler.yaml",
        &format!("{config}http:\n  listen: 127.0.0.1:0\n  public_url: ftp://x\n"),
    );
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("tickler.yaml:") && run.stderr.contains("must be an https:// address"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(ws.path("k.pem")).expect("key"), key);
}

/// The shipped configuration, cadences, templates and example data in a fresh
/// directory, with one-click unsubscribe and DKIM switched on as README says.
fn shipped_with_one_click() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().expect("temp dir");
    for dir in ["config", "templates", "examples"] {
        crate::helpers::copy_dir(&root.join(dir), &copy.path().join(dir));
    }
    let dir = copy.path();
    tickler_in(
        dir,
        &[],
        &[
            "dkim",
            "keygen",
            "--selector",
            "t1",
            "--domain",
            "hudsontile.example",
            "--out",
            "config/dkim.pem",
        ],
        None,
    )
    .ok();
    let path = dir.join("config/tickler.yaml");
    let config = std::fs::read_to_string(&path).expect("config");
    let config = config.replace(
        "  retry: { give_up_after: 3d }\n",
        "  retry: { give_up_after: 3d }\n  dkim: { domain: hudsontile.example, selector: t1, key_file: dkim.pem }\n",
    );
    std::fs::write(
        &path,
        format!("{config}\nhttp:\n  listen: 127.0.0.1:8025\n  public_url: https://hudsontile.example/tickler\n"),
    )
    .expect("config");
    copy
}

/// SpamAssassin's score and rules for one message, offline (`-L`).
fn spam_score(message: &Path) -> (f64, String) {
    let out = Command::new("spamassassin")
        .args(["-L", "-t"])
        .stdin(std::fs::File::open(message).expect("message"))
        .output()
        .expect("spamassassin runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let status: String = text
        .split("\nX-Spam-Status: ")
        .nth(1)
        .expect("an X-Spam-Status header")
        .split("\n")
        .take_while(|l| !l.is_empty())
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.starts_with(['\t', ' ']))
        .map(|(_, l)| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let score = status
        .split("score=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("a score");
    (score, status)
}

#[test]
fn the_shipped_messages_score_clean_in_spamassassin() {
    if Command::new("spamassassin")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "CI needs spamassassin");
        crate::helpers::skipping("the spam scores: spamassassin is not installed");
        return;
    }
    let copy = shipped_with_one_click();
    let dir = copy.path();
    // The example's week, the testimonial requests six weeks on, and appreciation day.
    let mut run = String::new();
    for now in [
        "2026-11-23T10:00:00-05:00",
        "2027-01-04T10:00:00-05:00",
        "2027-04-19T10:00:00-04:00",
    ] {
        let tick = tickler_in(
            dir,
            &["--config", "config/tickler.yaml"],
            &["tick", "--now", now],
            None,
        )
        .ok();
        run.push_str(&tick.stdout);
    }
    let sends = tickler_in(
        dir,
        &["--config", "config/tickler.yaml"],
        &["sends", "--format", "json"],
        None,
    )
    .ok();
    let sends: Vec<serde_json::Value> = serde_json::from_str(&sends.stdout).expect("json");
    // Every shipped email follow-up is among them.
    let cadences = std::fs::read_to_string(dir.join("config/cadences.yaml")).expect("cadences");
    for block in cadences.split("\n  - id: ").skip(1) {
        let id = block.lines().next().unwrap_or_default().trim();
        if block.contains("channel: email") {
            assert!(
                sends
                    .iter()
                    .any(|s| s["cadence"] == id && s["status"] == "sent"),
                "no {id} was sent: {run}"
            );
        }
    }
    // Every message carries one-click unsubscribe and a signature; SpamAssassin (about a
    // second a message) reads two of each follow-up.
    let mut scored: std::collections::HashMap<String, usize> = Default::default();
    for send in sends
        .iter()
        .filter(|s| s["channel"] == "email" && s["status"] == "sent")
    {
        let digest = send["message_id"].as_str().unwrap_or_default();
        let digest = digest
            .trim_start_matches('<')
            .split('.')
            .next()
            .unwrap_or_default();
        let path = dir.join("var/outbox").join(format!("{digest}.eml"));
        let text = std::fs::read_to_string(&path).expect("the message's file");
        assert!(
            text.contains("List-Unsubscribe: <https://hudsontile.example/tickler/unsubscribe/"),
            "{text}"
        );
        assert!(
            text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{text}"
        );
        assert!(text.contains("DKIM-Signature: "), "{text}");
        let seen = scored.entry(send["cadence"].to_string()).or_default();
        if *seen < 2 {
            *seen += 1;
            let (score, status) = spam_score(&path);
            assert!(score <= 0.5, "{}: {status}", send["cadence"]);
        }
    }
    assert_eq!(scored.len(), 7, "{scored:?}");
}

/// `tickler check --smtp` in a workspace whose `email.smtp` is `smtp`.
fn check_smtp(ws: &Workspace, smtp: &str) -> crate::helpers::Run {
    let config = std::fs::read_to_string(ws.path("tickler.yaml.orig"))
        .or_else(|_| std::fs::read_to_string(ws.path("tickler.yaml")))
        .expect("config");
    ws.write("tickler.yaml.orig", &config);
    ws.write(
        "tickler.yaml",
        &config.replace(
            "email:\n  transport: file\n",
            &format!("email:\n  transport: smtp\n  smtp:\n{smtp}"),
        ),
    );
    ws.tickler(&["check", "--smtp"])
}

#[test]
fn check_smtp_says_what_the_server_offers_and_names_each_failure() {
    let ws = Workspace::new(None);
    let Some(server) = AuthServer::start(ws.dir.path(), "starttls") else {
        return;
    };
    ws.write("smtp-password", "s3cret pass\n");
    ws.write("wrong-password", "guess\n");
    let good = format!(
        "    url: smtp://127.0.0.1:{}?tls=required\n    username: tickler\n    password_file: smtp-password\n    ca_file: ca.pem\n    timeout: 5s\n",
        server.port
    );
    let run = check_smtp(&ws, &good).ok();
    let expected = format!("smtp: connected to 127.0.0.1:{} over TLS", server.port);
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    assert!(run.stdout.contains("smtp: offers AUTH"), "{}", run.stdout);
    assert!(
        run.stdout.contains("smtp: logged in as tickler"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.trim_end().ends_with("templates"),
        "{}",
        run.stdout
    );
    assert_eq!(server.accepted(), 0, "check sends nothing");

    // Each failure, named.
    let failures = [
        (good.replace("smtp-password", "wrong-password"), "535"),
        (good.replace("    ca_file: ca.pem\n", ""), "certificate"),
        (
            good.replace(
                &server.port.to_string(),
                &crate::helpers::free_port().to_string(),
            ),
            "cannot connect",
        ),
    ];
    for (smtp, said) in failures {
        let run = check_smtp(&ws, &smtp);
        assert_eq!(run.code, 1, "{said}: {}", run.stdout);
        assert!(
            run.stderr.contains("error: email.smtp: ") && run.stderr.contains(said),
            "{said}: {}",
            run.stderr
        );
    }

    // A server that accepts the connection and says nothing: a timeout, in time.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let started = std::time::Instant::now();
    let run = check_smtp(
        &ws,
        &format!("    url: smtp://127.0.0.1:{port}\n    timeout: 1s\n"),
    );
    assert_eq!(run.code, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("error: email.smtp: "), "{}", run.stderr);
    drop(silent);

    // smtp-sink offers PIPELINING and no AUTH.
    if let Some(sink) = Sink::start(&[]) {
        let run = check_smtp(&ws, &format!("    url: {}\n", sink.url())).ok();
        assert!(
            run.stdout.contains("smtp: offers PIPELINING"),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("no login configured"), "{}", run.stdout);
        assert_eq!(sink.delivered(), 0);
    }
}
