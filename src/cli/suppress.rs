//! `tickler suppress`, `unsuppress` and `suppressions`: the owner's hand on the
//! suppression list (SPEC section 8).

use std::path::Path;

use super::{
    CommandResult, Failure, Format, load_config, open_store, print_records, print_table, say,
};
use crate::domain::{EmailAddress, Suppression};

/// An entry as `suppressions --format json|csv` prints it.
#[derive(serde::Serialize)]
struct Record<'a> {
    address: &'a str,
    reason: &'a str,
    added_at: String,
    detail: &'a str,
}

fn address(text: &str) -> Result<EmailAddress, Failure> {
    EmailAddress::parse(text).map_err(Failure::Usage)
}

pub async fn suppress(path: &Path, text: &str, reason: &str, detail: &str) -> CommandResult {
    let config = load_config(path)?;
    let address = address(text)?;
    let entry = Suppression::new(&address, reason, detail, jiff::Timestamp::now())
        .map_err(|m| Failure::Usage(format!("--reason: {m}")))?;
    let store = open_store(&config).await?;
    if store.suppress(std::slice::from_ref(&entry)).await? == 0 {
        let kept = store.suppression(&entry.address).await?;
        let why = kept.map_or_else(String::new, |k| format!(" ({})", k.reason));
        say!("{} was already suppressed{why}", entry.address);
    } else {
        say!("{} suppressed: {}", entry.address, entry.reason);
    }
    Ok(())
}

pub async fn unsuppress(path: &Path, text: &str) -> CommandResult {
    let config = load_config(path)?;
    let key = address(text)?.suppression_key();
    let store = open_store(&config).await?;
    if !store.unsuppress(&key).await? {
        return Err(Failure::Errors(vec![format!("{key} is not suppressed")]));
    }
    say!("{key} is no longer suppressed");
    Ok(())
}

/// The list, newest first; or one entry with the report behind it.
pub async fn list(path: &Path, one: Option<&str>, format: Format) -> CommandResult {
    let config = load_config(path)?;
    let store = open_store(&config).await?;
    if let Some(text) = one {
        let key = address(text)?.suppression_key();
        let Some(entry) = store.suppression(&key).await? else {
            return Err(Failure::Errors(vec![format!("{key} is not suppressed")]));
        };
        say!("address: {}", entry.address);
        say!("reason: {}", entry.reason);
        say!("added: {}", entry.added_at);
        say!("detail: {}", super::plain(&entry.detail));
        if let Some(report) = &entry.report {
            say!("report:\n{}", String::from_utf8_lossy(report));
        }
        return Ok(());
    }
    let entries = store.suppressions(i64::MAX).await?;
    match format {
        Format::Json | Format::Csv => {
            let records: Vec<Record> = entries
                .iter()
                .map(|e| Record {
                    address: &e.address,
                    reason: &e.reason,
                    added_at: e.added_at.to_string(),
                    detail: &e.detail,
                })
                .collect();
            print_records(format, &records)
        }
        Format::Table => {
            let zone = &config.business.zone;
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.address.clone(),
                        e.reason.clone(),
                        e.added_at
                            .to_zoned(zone.clone())
                            .strftime("%Y-%m-%d %H:%M %Z")
                            .to_string(),
                        e.detail.clone(),
                    ]
                })
                .collect();
            print_table(&["address", "reason", "added", "detail"], &rows)
        }
    }
}
