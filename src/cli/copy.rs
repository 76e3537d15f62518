//! `tickler copy-db --to URL`: moves the configured SQLite database to PostgreSQL.

use std::path::Path;

use super::{CommandResult, Failure, load_config};

pub async fn run(path: &Path, to: &str) -> CommandResult {
    let config = load_config(path)?;
    let from = &config.database_url;
    if !from.starts_with("sqlite:") {
        return Err(Failure::Errors(vec![format!(
            "{}: database.url must be the SQLite database to copy from",
            config.path.display()
        )]));
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(Failure::Usage(format!(
            "--to: `{to}` is not a postgres:// URL"
        )));
    }
    let copied = crate::store::copy::sqlite_to_postgres(from, to).await?;
    let counts: Vec<String> = copied
        .iter()
        .map(|(table, n)| format!("{table}={n}"))
        .collect();
    super::say!("copied {}", counts.join(" "));
    Ok(())
}
