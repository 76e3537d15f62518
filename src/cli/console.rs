//! `tickler console passwd`: sets the console's password, stored as an Argon2id hash.
//! On a terminal it is asked twice without echo; from a pipe, one line is read.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use super::{CommandResult, Failure, load_config, open_store};
use crate::http::console::{MAX_PASSWORD, MIN_PASSWORD, PASSWORD_KEY, hash};

pub async fn passwd(path: &Path) -> CommandResult {
    let config = load_config(path)?;
    let password = if std::io::stdin().is_terminal() {
        let first = ask("New console password: ")?;
        let second = ask("The same again: ")?;
        if first != second {
            return Err(Failure::Errors(vec![
                "the two passwords differ; nothing changed".into(),
            ]));
        }
        first
    } else {
        read_line(std::io::stdin().lock())?
    };
    let chars = password.chars().count();
    if chars < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(Failure::Errors(vec![format!(
            "the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long; nothing changed"
        )]));
    }
    let phc = tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| Failure::Errors(vec![e.to_string()]))??;
    let store = open_store(&config).await?;
    store.set_meta(PASSWORD_KEY, &phc).await?;
    if !config.http.as_ref().is_some_and(|h| h.console) {
        eprintln!("note: the console is off; set `http.console: true` in the configuration");
    }
    super::say!("console password set");
    Ok(())
}

/// One line of at most a little over `MAX_PASSWORD` bytes, without its line end.
fn read_line(input: impl BufRead) -> Result<String, Failure> {
    let mut line = String::new();
    input
        .take(MAX_PASSWORD as u64 + 2)
        .read_line(&mut line)
        .map_err(|e| Failure::Errors(vec![format!("cannot read the password: {e}")]))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks for a line on the terminal with echo off, restoring the terminal after.
fn ask(prompt: &str) -> Result<String, Failure> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let saved = tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    let line = read_line(stdin.lock());
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, OptionalActions::Now, saved);
    }
    let _ = writeln!(stderr);
    line
}
