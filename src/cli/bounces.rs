//! `tickler bounces import FILE...`: bounce and complaint reports saved as `.eml` files,
//! acted on as the bounce mailbox's are. A file that is not a report, or names no send of
//! ours, changes nothing and is named on stderr (exit 1).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{CommandResult, Failure, load_config, open_store, plain, say};
use crate::bounce::apply::{Handled, apply};
use crate::bounce::report::{MAX_REPORT_BYTES, classify};

pub async fn import(path: &Path, files: &[PathBuf]) -> CommandResult {
    let config = load_config(path)?;
    let store = open_store(&config).await?;
    let signer = crate::unsubscribe::signer(&config)?;
    let return_path = config
        .email
        .bounce
        .as_ref()
        .and_then(|b| b.return_path.as_ref());
    let return_path = return_path.map(|a| a.as_str());
    let mut problems = Vec::new();
    for file in files {
        let shown = file.display();
        let raw = match read_bounded(file) {
            Ok(raw) => raw,
            Err(why) => {
                problems.push(format!("{shown}: {why}"));
                continue;
            }
        };
        let classified = classify(&raw, return_path);
        let now = jiff::Timestamp::now();
        match apply(store.as_ref(), signer.as_ref(), &raw, classified, now).await? {
            Handled::Acted(what) => say!("{shown}: {}", plain(&what)),
            Handled::Left(why) => problems.push(format!("{shown}: changed nothing: {why}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Errors(problems))
    }
}

/// The file's bytes, refused before reading when larger than any report.
fn read_bounded(file: &Path) -> Result<Vec<u8>, String> {
    let handle = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    handle
        .take(MAX_REPORT_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    if raw.len() > MAX_REPORT_BYTES {
        return Err(format!(
            "larger than any report ({} MiB)",
            MAX_REPORT_BYTES >> 20
        ));
    }
    Ok(raw)
}
