//! `tickler dkim keygen`: a new DKIM key, written 0600 without replacing a file, and
//! the DNS record and configuration that put it to use.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::{CommandResult, Failure, say};
use crate::channel::dkim::{Algorithm, keygen};

/// A TXT record's strings hold at most 255 characters each.
const TXT_STRING: usize = 255;

pub fn run(
    selector: &str,
    domain: &str,
    algorithm: Algorithm,
    out: Option<&Path>,
) -> CommandResult {
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !label_ok(selector) {
        return Err(Failure::Usage(format!(
            "--selector: `{selector}` is not a DNS label"
        )));
    }
    if !label_ok(domain) {
        return Err(Failure::Usage(format!(
            "--domain: `{domain}` is not a domain name"
        )));
    }
    let default = format!("{selector}.{domain}.dkim.pem");
    let path = out.unwrap_or_else(|| Path::new(&default));
    let (pem, record) = keygen(algorithm).map_err(|m| Failure::Errors(vec![m]))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Failure::Errors(vec![format!(
                "{}: {e} (an existing key is never replaced)",
                path.display()
            )])
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::Errors(vec![format!("{}: {e}", path.display())]))?;
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(TXT_STRING)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    say!(
        "wrote the private key to {} (mode 0600; keep it secret)",
        path.display()
    );
    say!("");
    say!("Publish this TXT record in the DNS of {domain}:");
    say!("  name:  {selector}._domainkey.{domain}");
    say!("  value: {record}");
    say!("");
    say!("As a zone-file line:");
    say!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        strings.join(" ")
    );
    say!("");
    say!("Then, in tickler.yaml:");
    say!("email:");
    say!(
        "  dkim: {{ domain: {domain}, selector: {selector}, key_file: {} }}",
        path.display()
    );
    Ok(())
}
