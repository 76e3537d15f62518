//! `tickler import contacts|events FILE`.

use std::io::Read;
use std::path::Path;

use super::{CommandResult, Failure, ImportKind, load_config, open_store};
use crate::sync::{self, Kind};

pub async fn run(config_path: &Path, what: ImportKind, file: &Path) -> CommandResult {
    let config = load_config(config_path)?;
    let (label, input): (String, Box<dyn Read + Send>) = if file == Path::new("-") {
        ("<stdin>".into(), Box::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Failure::Errors(vec![format!("{}: {e}", file.display())]))?;
        (
            file.display().to_string(),
            Box::new(std::io::BufReader::new(f)),
        )
    };
    let store = open_store(&config).await?;
    let kind = match what {
        ImportKind::Contacts => Kind::Contacts,
        ImportKind::Events => Kind::Events,
    };
    let report = sync::import(
        store.as_ref(),
        kind,
        input,
        &config.business.zone,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| Failure::Errors(vec![format!("{label}: {e:#}")]))?;
    for (line, reason) in &report.rejected {
        eprintln!(
            "{}",
            super::error_line(&format!("{label}:{line}: {reason}"))
        );
    }
    let noun = match kind {
        Kind::Contacts => "contacts",
        Kind::Events => "events",
    };
    super::say!(
        "imported {} {noun} ({} changed), rejected {}",
        report.accepted,
        report.changed,
        report.rejected.len()
    );
    if report.rejected.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}
