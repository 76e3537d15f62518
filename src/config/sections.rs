//! The settings sections of `tickler.yaml` that need more than a type to check: the
//! database URL, the schedule and the email transport, with the paths in them made
//! relative to the file that names them.

use std::path::{Path, PathBuf};

use super::raw::{self, RawSchedule};
use super::{
    Diagnostic, Document, EmailConfig, FrequencyCap, PasswordSource, Schedule, SmtpConfig,
    Transport,
};
use crate::domain::{Days, Opening, Period, Window};

/// The directory of the file being read: relative paths in it are relative to it.
pub(crate) struct Base(pub(super) PathBuf);

impl Base {
    /// `self/relative` with `.` and `..` resolved lexically, so messages show
    /// `../var/outbox` as `var/outbox` rather than `config/../var/outbox`.
    pub(crate) fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        use std::path::Component;
        let mut out = PathBuf::new();
        for part in self.0.join(relative).components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir
                    if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
                {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        if out.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            out
        }
    }
}

/// Collects diagnostics while turning raw values into typed ones.
pub(crate) struct Validator<'a> {
    pub(crate) doc: &'a Document,
    pub(crate) errors: &'a mut Vec<Diagnostic>,
}

impl Validator<'_> {
    pub(crate) fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.push(path, &format!("{path}: {message}")))
            .ok()
    }

    pub(crate) fn push(&mut self, path: &str, message: &str) {
        self.errors.push(self.doc.error(path, message));
    }

    pub(crate) fn period(
        &mut self,
        path: &str,
        text: Option<&str>,
        default: Period,
    ) -> Option<Period> {
        match text {
            None => Some(default),
            Some(text) => self.check(path, Period::parse(text)),
        }
    }
}

pub(super) fn database_url(url: &str, base: &Base) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_owned());
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            format!("`{url}` is not a database URL; use sqlite://PATH or postgres://...")
        })?;
    let (file, query) = rest
        .split_once('?')
        .map_or((rest, None), |(f, q)| (f, Some(q)));
    if file == ":memory:" || query.is_some_and(|q| q.contains("mode=memory")) {
        return Err(
            "an in-memory database would forget every contact and send when tickler exits; name a file".into(),
        );
    }
    let file = base.join(file);
    Ok(match query {
        Some(q) => format!("sqlite://{}?{q}", file.display()),
        None => format!("sqlite://{}", file.display()),
    })
}

pub(super) fn schedule(v: &mut Validator<'_>, raw: RawSchedule) -> Option<Schedule> {
    let tick = v.period("schedule.tick", raw.tick.as_deref(), Period::minutes(1));
    let window = match raw.send_window.as_deref() {
        Some(w) => v.check("schedule.send_window", Window::parse(w)),
        None => Window::parse("09:00-18:00").ok(),
    };
    let days = match &raw.days {
        Some(days) => v.check("schedule.days", Days::parse(days)),
        None => Some(Days::ALL),
    };
    let max_lateness = v.period(
        "schedule.max_lateness",
        raw.max_lateness.as_deref(),
        Period::days(7),
    );
    let cap = match raw.frequency_cap {
        Some(cap) => {
            let per = v.check("schedule.frequency_cap.per", Period::parse(&cap.per));
            if cap.max == 0 {
                v.push(
                    "schedule.frequency_cap.max",
                    "schedule.frequency_cap.max must be at least 1",
                );
            }
            per.map(|per| Some(FrequencyCap { max: cap.max, per }))
        }
        None => Some(None),
    };
    if let Some(t) = tick.filter(|t| t.seconds() < 1) {
        v.push(
            "schedule.tick",
            &format!("schedule.tick: `{t}` must be at least 1s"),
        );
    }
    Some(Schedule {
        tick: tick?.as_std(),
        opening: Opening {
            window: window?,
            days: days?,
        },
        max_lateness: max_lateness?,
        frequency_cap: cap?,
    })
}

pub(super) fn email(
    v: &mut Validator<'_>,
    raw: Option<raw::RawEmail>,
    base: &Base,
    state_dir: &Path,
) -> Option<EmailConfig> {
    let Some(raw) = raw else {
        return Some(EmailConfig {
            transport: Transport::File {
                dir: state_dir.join("outbox"),
            },
            rate_limit: None,
            give_up_after: Period::days(3),
            dkim: None,
            bounce: None,
        });
    };
    let file_dir = raw
        .file
        .and_then(|f| f.dir)
        .map_or_else(|| state_dir.join("outbox"), |d| base.join(d));
    let transport = match raw.transport.as_deref().unwrap_or("file") {
        "file" => Some(Transport::File { dir: file_dir }),
        "smtp" => match raw.smtp {
            None => {
                v.push("email", "email.transport is smtp but email.smtp is missing");
                None
            }
            Some(smtp) => {
                let url_ok = ["smtp://", "smtps://"]
                    .iter()
                    .any(|p| smtp.url.starts_with(p));
                if !url_ok {
                    v.push(
                        "email.smtp.url",
                        &format!(
                            "email.smtp.url: `{}` must start with smtp:// or smtps://",
                            smtp.url
                        ),
                    );
                }
                let password = match (smtp.password_file, smtp.password_env) {
                    (Some(_), Some(_)) => {
                        v.push(
                            "email.smtp",
                            "email.smtp: give password_file or password_env, not both",
                        );
                        None
                    }
                    (Some(file), None) => Some(PasswordSource::File(base.join(file))),
                    (None, Some(var)) => Some(PasswordSource::Env(var)),
                    (None, None) => None,
                };
                if password.is_some() && smtp.username.is_none() {
                    v.push("email.smtp", "email.smtp: a password needs a username");
                }
                let timeout = v.period(
                    "email.smtp.timeout",
                    smtp.timeout.as_deref(),
                    Period::minutes(0),
                );
                let max_connections = smtp.max_connections.unwrap_or(4);
                if max_connections == 0 {
                    v.push(
                        "email.smtp.max_connections",
                        "email.smtp.max_connections must be at least 1",
                    );
                }
                Some(Transport::Smtp(SmtpConfig {
                    url: smtp.url,
                    username: smtp.username,
                    password,
                    ca_file: smtp.ca_file.map(|f| base.join(f)),
                    max_connections,
                    timeout: match timeout {
                        Some(t) if !t.is_zero() => t.as_std(),
                        _ => std::time::Duration::from_secs(30),
                    },
                }))
            }
        },
        other => {
            v.push(
                "email.transport",
                &format!("email.transport: `{other}` is not smtp or file"),
            );
            None
        }
    };
    let rate_limit = raw
        .rate_limit
        .as_deref()
        .and_then(|r| v.check("email.rate_limit", parse_rate(r)));
    let give_up_after = v.period(
        "email.retry.give_up_after",
        raw.retry.and_then(|r| r.give_up_after).as_deref(),
        Period::days(3),
    );
    let dkim = super::hearing::dkim(v, raw.dkim, base);
    let bounce = super::hearing::bounce(v, raw.bounce, base);
    Some(EmailConfig {
        transport: transport?,
        rate_limit,
        give_up_after: give_up_after?,
        dkim,
        bounce,
    })
}

/// `20/s`, `600/m`, `1000/h`.
fn parse_rate(text: &str) -> Result<(u32, std::time::Duration), String> {
    let bad = || format!("`{text}` is not a rate; write e.g. 20/s or 600/m");
    let (n, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let per = match per.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    Ok((n, std::time::Duration::from_secs(per)))
}
