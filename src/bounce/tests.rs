//! Reports as real servers write them (tests/fixtures/reports), read as tickler would:
//! who bounced or complained, for good or for now, and which send it was.

use super::report::{Bounce, Classified, Complaint, MAX_REPORT_BYTES, classify};

const RETURN_PATH: &str = "bounces@fjord.example";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/reports/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixtures are UTF-8")
}

fn bounce_of(raw: &[u8]) -> Bounce {
    match classify(raw, Some(RETURN_PATH)) {
        Classified::Bounce(bounce) => bounce,
        other => panic!("expected a bounce, got {other:?}"),
    }
}

fn complaint_of(raw: &[u8]) -> Complaint {
    match classify(raw, Some(RETURN_PATH)) {
        Classified::Complaint(complaint) => complaint,
        other => panic!("expected a complaint, got {other:?}"),
    }
}

fn why_not(raw: &[u8]) -> String {
    match classify(raw, Some(RETURN_PATH)) {
        Classified::NotAReport { why } => why,
        other => panic!("expected not a report, got {other:?}"),
    }
}

#[test]
fn postfix_hard_bounce_names_the_address_for_good() {
    let bounce = bounce_of(&fixture("postfix-hard.eml"));
    assert_eq!(bounce.recipients.len(), 1);
    let failed = &bounce.recipients[0];
    assert_eq!(failed.address, "nobody@example.com");
    assert!(failed.permanent);
    assert_eq!(failed.status, "5.1.1");
    assert_eq!(
        failed.diagnostic,
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in \
         virtual mailbox table"
    );
    assert_eq!(
        bounce.verp_token.as_deref(),
        Some("s42-Xk3dP9_qL0aZ7wVbN2cR")
    );
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("<3f9a1c0e2b7d4a68.tickler@fjord.example>")
    );
    assert_eq!(
        bounce.report_message_id.as_deref(),
        Some("<20240514091244.4VfZ1b2C3dz9sQ@mail.fjord.example>")
    );
}

#[test]
fn postfix_delay_warning_is_transient() {
    let bounce = bounce_of(&fixture("postfix-delayed.eml"));
    let delayed = &bounce.recipients[0];
    assert_eq!(delayed.address, "slow@example.org");
    assert!(!delayed.permanent);
    assert_eq!(delayed.status, "4.4.1");
    assert!(delayed.diagnostic.ends_with("Connection timed out"));
    assert_eq!(
        bounce.verp_token.as_deref(),
        Some("s42-Lm8tR2wQ_y5Vn0Hs4KdE")
    );
    // Only the headers come back (text/rfc822-headers).
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("<9b0e44d1a7c35f20.tickler@fjord.example>")
    );
}

#[test]
fn exim_bounce_is_permanent_with_its_generic_status() {
    let bounce = bounce_of(&fixture("exim-hard.eml"));
    let failed = &bounce.recipients[0];
    assert_eq!(failed.address, "gone@example.net");
    assert!(failed.permanent);
    assert_eq!(failed.status, "5.0.0");
    assert!(failed.diagnostic.contains("User unknown"));
    assert_eq!(
        bounce.verp_token.as_deref(),
        Some("s42-Qw3eR5tY_u7Ii9oP1aSd")
    );
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("<71c2de093a8f4b15.tickler@fjord.example>")
    );
}

#[test]
fn gmail_bounce_keeps_the_folded_diagnostic_on_one_line() {
    let bounce = bounce_of(&fixture("gmail-hard.eml"));
    let failed = &bounce.recipients[0];
    assert_eq!(failed.address, "nosuchuser@example.com");
    assert!(failed.permanent);
    assert_eq!(failed.status, "5.1.1");
    assert!(failed.diagnostic.starts_with(
        "550-5.1.1 The email account that you tried to reach does not exist. Please try"
    ));
    assert!(failed.diagnostic.ends_with("- gsmtp"));
    assert_eq!(
        bounce.verp_token.as_deref(),
        Some("s42-Zx9cV7bN_m5Lk3Jh1GfD")
    );
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("<c4d8e2f6a0b19375.tickler@fjord.example>")
    );
}

#[test]
fn gmail_names_the_original_even_when_it_is_not_returned() {
    let text = fixture_text("gmail-hard.eml")
        .replace("Content-Type: message/rfc822", "Content-Type: text/plain");
    let bounce = bounce_of(text.as_bytes());
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("<c4d8e2f6a0b19375.tickler@fjord.example>")
    );
}

#[test]
fn microsoft_365_bounce_reads_its_five_digit_status() {
    let bounce = bounce_of(&fixture("m365-hard.eml"));
    let failed = &bounce.recipients[0];
    assert_eq!(failed.address, "former.staff@contoso.example");
    assert!(failed.permanent);
    assert_eq!(failed.status, "5.1.10");
    assert_eq!(
        failed.diagnostic,
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    );
    assert_eq!(
        bounce.verp_token.as_deref(),
        Some("s42-Pp4oO6iI_u8Yy0Tt2Rr3")
    );
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("<5e7a90b3c2d1f468.tickler@fjord.example>")
    );
}

#[test]
fn yahoo_complaint_names_the_recipient_and_the_envelope_sender() {
    let complaint = complaint_of(&fixture("arf-yahoo.eml"));
    assert_eq!(complaint.address.as_deref(), Some("grumpy@example.com"));
    assert_eq!(complaint.feedback_type, "abuse");
    // Sent to the feedback-loop address; the token is in Original-Mail-From.
    assert_eq!(
        complaint.verp_token.as_deref(),
        Some("s42-Gg5hH6jJ_k7Ll8Zz9Xx0")
    );
    assert_eq!(
        complaint.original_message_id.as_deref(),
        Some("<a18f27c6d05e93b4.tickler@fjord.example>")
    );
    assert_eq!(
        complaint.report_message_id.as_deref(),
        Some("<20240516184002.b7e1.feedback@arf.mail.example.com>")
    );
}

#[test]
fn complaint_without_original_rcpt_to_takes_the_originals_to() {
    let complaint = complaint_of(&fixture("arf-jmrp.eml"));
    assert_eq!(complaint.address.as_deref(), Some("customer@example.org"));
    assert_eq!(complaint.feedback_type, "abuse");
    // The token comes from the returned original's Return-Path.
    assert_eq!(
        complaint.verp_token.as_deref(),
        Some("s42-Rr1tT2yY_u3Ii4Oo5Pp6")
    );
    assert_eq!(
        complaint.original_message_id.as_deref(),
        Some("<e3b5a7c9d1f20486.tickler@fjord.example>")
    );
}

#[test]
fn redacted_complaint_has_no_address_but_still_names_the_send() {
    let complaint = complaint_of(&fixture("arf-redacted.eml"));
    assert_eq!(complaint.address, None);
    assert_eq!(
        complaint.verp_token.as_deref(),
        Some("s42-Aa2bB3cC_d4Ee5Ff6Gg7")
    );
    assert_eq!(
        complaint.original_message_id.as_deref(),
        Some("<0d4c8b2a6e1f9357.tickler@fjord.example>")
    );
}

#[test]
fn mail_that_is_not_a_report_is_never_guessed_at() {
    assert!(why_not(&fixture("auto-reply.eml")).contains("auto-reply"));
    assert!(why_not(&fixture("customer-reply.eml")).contains("not a multipart/report"));
    // A bounce in words only: the address is there, but no machine-readable status.
    assert!(why_not(&fixture("plain-bounce.eml")).contains("not a multipart/report"));
}

#[test]
fn reports_of_deliveries_and_of_other_kinds_are_not_failures() {
    let delivered = fixture_text("postfix-hard.eml")
        .replace("Action: failed", "Action: delivered")
        .replace("Status: 5.1.1", "Status: 2.0.0");
    assert!(why_not(delivered.as_bytes()).contains("no failed or delayed"));

    let not_spam =
        fixture_text("arf-yahoo.eml").replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
    assert!(why_not(not_spam.as_bytes()).contains("not-spam"));

    let read_receipt = fixture_text("postfix-hard.eml")
        .replace(
            "report-type=delivery-status",
            "report-type=disposition-notification",
        )
        .replace(
            "message/delivery-status",
            "message/disposition-notification",
        );
    assert!(why_not(read_receipt.as_bytes()).contains("disposition-notification"));
}

#[test]
fn every_fixture_reads_the_same_with_crlf_or_lf() {
    let dir = format!("{}/tests/fixtures/reports", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures dir") {
        let raw = std::fs::read(entry.expect("entry").path()).expect("fixture");
        let lf = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(
            classify(lf.as_bytes(), Some(RETURN_PATH)),
            classify(crlf.as_bytes(), Some(RETURN_PATH))
        );
        seen += 1;
    }
    assert!(seen >= 13, "only {seen} fixtures");
}

#[test]
fn the_token_is_taken_only_from_the_configured_return_path() {
    let raw = fixture("postfix-hard.eml");
    assert_eq!(
        bounce_of(&raw).verp_token.as_deref(),
        Some("s42-Xk3dP9_qL0aZ7wVbN2cR")
    );
    let token = |rp: Option<&str>| match classify(&raw, rp) {
        Classified::Bounce(b) => b.verp_token,
        other => panic!("{other:?}"),
    };
    assert_eq!(token(None), None);
    assert_eq!(token(Some("bounces@other.example")), None);
    assert_eq!(token(Some("returns@fjord.example")), None);
    assert_eq!(token(Some("bounce@fjord.example")), None);
    assert_eq!(
        token(Some("bounces@FJORD.Example")).as_deref(),
        Some("s42-Xk3dP9_qL0aZ7wVbN2cR")
    );

    let bad_token =
        fixture_text("postfix-hard.eml").replace("s42-Xk3dP9_qL0aZ7wVbN2cR", "s42.Xk3d!P9");
    assert_eq!(bounce_of(bad_token.as_bytes()).verp_token, None);
    let long_token =
        fixture_text("postfix-hard.eml").replace("s42-Xk3dP9_qL0aZ7wVbN2cR", &"x".repeat(201));
    assert_eq!(bounce_of(long_token.as_bytes()).verp_token, None);
}

#[test]
fn strings_from_the_report_are_bounded() {
    let long = fixture_text("postfix-hard.eml").replace(
        "Diagnostic-Code: smtp; 550 5.1.1",
        &format!(
            "Diagnostic-Code: smtp; 550 5.1.1 {}",
            "spam ".repeat(20_000)
        ),
    );
    let bounce = bounce_of(long.as_bytes());
    assert_eq!(bounce.recipients[0].diagnostic.chars().count(), 500);
    // A cut address would name someone else, so the recipient is dropped instead.
    let long = format!("{}@example.com\n", "n".repeat(400));
    let long_address = fixture_text("postfix-hard.eml")
        .replace("rfc822; nobody@example.com\n", &format!("rfc822; {long}"))
        .replace("rfc822;nobody@example.com\n", &format!("rfc822;{long}"));
    assert!(why_not(long_address.as_bytes()).contains("no failed or delayed"));
}

/// Recipient blocks, each failed for good, as one DSN body.
fn dsn_with_recipients(count: usize) -> String {
    let mut body = String::from("Reporting-MTA: dns; mx.example.com\n");
    for i in 0..count {
        body.push_str(&format!(
            "\nFinal-Recipient: rfc822; r{i}@example.com\nAction: failed\nStatus: 5.1.1\n"
        ));
    }
    format!(
        "To: bounces+s42-a@fjord.example\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
         --b\nContent-Type: message/delivery-status\n\n{body}\n--b--\n"
    )
}

#[test]
fn ten_thousand_recipients_are_cut_to_a_hundred() {
    let bounce = bounce_of(dsn_with_recipients(10_000).as_bytes());
    assert_eq!(bounce.recipients.len(), 100);
    assert_eq!(bounce.recipients[0].address, "r0@example.com");
    assert_eq!(bounce.verp_token.as_deref(), Some("s42-a"));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let mut raw = dsn_with_recipients(1).into_bytes();
    raw.resize(MAX_REPORT_BYTES + 1, b' ');
    assert!(why_not(&raw).contains("2 MiB"));
}

/// Headers that open one more nested message, as short as mail-parser accepts them.
const NEST: &str = "Content-Type:message/rfc822\n\n";

/// A report whose returned original nests `NEST` as deep as `MAX_REPORT_BYTES` allows.
fn deepest_report(encode: bool) -> Vec<u8> {
    let head = "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
                --b\nContent-Type: message/delivery-status\n\n\
                Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\n\n--b\n";
    let room = MAX_REPORT_BYTES - head.len() - 200;
    let mut raw = head.as_bytes().to_vec();
    if encode {
        use base64::Engine as _;
        let inner = NEST.repeat(room * 7 / 10 / NEST.len());
        let encoded = base64::engine::general_purpose::STANDARD.encode(inner);
        raw.extend_from_slice(
            b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n",
        );
        for line in encoded.as_bytes().chunks(76) {
            raw.extend_from_slice(line);
            raw.push(b'\n');
        }
    } else {
        raw.extend_from_slice(NEST.repeat(room / NEST.len()).as_bytes());
    }
    assert!(raw.len() <= MAX_REPORT_BYTES);
    raw
}

#[test]
fn the_deepest_nesting_that_fits_is_read_on_a_small_stack() {
    // Daemon tasks have 2 MiB stacks; run where a test's 2 MiB stack is already used.
    for encode in [false, true] {
        let raw = deepest_report(encode);
        let bounce = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || bounce_of(&raw))
            .expect("thread")
            .join()
            .expect("no panic");
        assert_eq!(bounce.recipients[0].address, "a@example.com");
    }
}

#[test]
fn deep_multipart_nesting_is_read() {
    let mut raw = String::from(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b0\"\n\n",
    );
    for i in 1..20_000 {
        raw.push_str(&format!(
            "--b{}\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n",
            i - 1
        ));
    }
    assert!(why_not(raw.as_bytes()).contains("without a delivery-status"));
}

#[test]
fn broken_mime_is_read_without_panicking() {
    // No boundary: the report's parts cannot be found, so it is not read as one.
    assert!(
        why_not(&fixture("hostile-missing-boundary.eml")).contains("without a delivery-status")
    );
    // Unclosed parts: the status part itself is whole, so it still counts.
    let bounce = bounce_of(&fixture("hostile-unclosed.eml"));
    assert_eq!(bounce.recipients[0].address, "nobody@example.com");
    assert_eq!(bounce.recipients[0].diagnostic, "550 5.1.1 no such user");
}

/// A small deterministic generator, so that a failure reproduces.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_truncations_and_mutations_do_not_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let len = (xorshift(&mut seed) % 4096) as usize;
        let garbage: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
        let _ = classify(&garbage, Some(RETURN_PATH));
    }
    let dir = format!("{}/tests/fixtures/reports", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).expect("fixtures dir") {
        let raw = std::fs::read(entry.expect("entry").path()).expect("fixture");
        for end in (0..raw.len()).step_by(13) {
            let _ = classify(&raw[..end], Some(RETURN_PATH));
        }
        for _ in 0..200 {
            let mut mutated = raw.clone();
            for _ in 0..8 {
                let at = (xorshift(&mut seed) as usize) % mutated.len();
                let bytes = b"\r\n-:;<>@ \t=\"\0\xff";
                mutated[at] = bytes[xorshift(&mut seed) as usize % bytes.len()];
            }
            let _ = classify(&mutated, Some(RETURN_PATH));
        }
    }
}

#[test]
fn messages_the_mime_parser_trips_on_are_not_reports() {
    // Found by the bounce_report fuzz target: mail-parser's own consistency check fails
    // on them (in builds that check it); either way they are not read as reports.
    let dir = format!("{}/fuzz/corpus/bounce_report", env!("CARGO_MANIFEST_DIR"));
    for name in ["regression-b23ca7080a12", "regression-f278cf78592c"] {
        let raw = std::fs::read(format!("{dir}/{name}")).expect("the fuzz finding");
        assert!(
            matches!(
                classify(&raw, Some(RETURN_PATH)),
                Classified::NotAReport { .. }
            ),
            "{name}"
        );
    }
}
