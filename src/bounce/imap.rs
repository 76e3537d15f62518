//! The bounce mailbox over IMAP: one logged-in session that lists the messages waiting,
//! reads them raw, and moves the ones handled to `processed` (never deleting any).
//!
//! Reading is at-least-once: the caller fetches, acts, then moves; a crash in between
//! reads the same messages again at the next poll. Bodies are read with `BODY.PEEK[]`,
//! so a message left in place (not a report) keeps its unread mark for whoever looks at
//! the mailbox. Everything the server sends meets a limit: each step has the settings'
//! timeout, each reply a byte budget, each message [`MAX_MESSAGE_BYTES`] (checked with
//! `RFC822.SIZE` before its body is asked for), and each fetch a count.

mod connect;
mod error;
mod limited;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_imap::Session;
use futures_util::TryStreamExt;

use self::connect::{Dial, Secure, Url};
pub use self::error::ImapError;

/// Where processed messages go; created when missing.
pub const PROCESSED: &str = "processed";

/// The largest message read; a larger one is reported and left in place. Bounce and
/// complaint reports are small; a report quoting a huge message is not worth the memory.
pub const MAX_MESSAGE_BYTES: u32 = 2 * 1024 * 1024;

/// The budget of a reply that holds no message (greeting, LOGIN, SELECT, LIST, ...).
const SMALL_REPLY: usize = 256 * 1024;

/// The budget of a UID SEARCH reply: a few bytes a UID, so some two million messages.
const SEARCH_REPLY: usize = 16 * 1024 * 1024;

/// What the FETCH of one body adds around the message itself.
const FETCH_OVERHEAD: usize = 16 * 1024;

/// How to reach the bounce mailbox (`email.bounce.imap`), filled in by the config.
#[derive(Clone)]
pub struct ImapSettings {
    /// `imaps://host[:port]` (TLS at once) or `imap://host[:port]` (STARTTLS required).
    pub url: String,
    pub username: String,
    /// Read from `password_file` or `password_env`; never in `Debug` output.
    pub password: String,
    /// A CA trusted besides the public roots, for a server with a private certificate.
    pub ca_file: Option<PathBuf>,
    /// The mailbox to read; `INBOX` unless configured.
    pub mailbox: String,
    /// The limit on each step: connecting, the TLS handshake, the greeting, each command.
    pub timeout: Duration,
}

impl fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .field("ca_file", &self.ca_file)
            .field("mailbox", &self.mailbox)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One message read from the mailbox, exactly as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// A message over [`MAX_MESSAGE_BYTES`], left where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    pub uid: u32,
    pub size: u32,
}

/// What one [`Mailbox::fetch`] found.
#[derive(Debug, Default)]
pub struct Batch {
    /// In UID order.
    pub messages: Vec<Fetched>,
    /// Messages skipped for their size, also in UID order.
    pub oversized: Vec<Oversized>,
    /// The highest UID looked at (read or skipped): pass it as `after` to go on past
    /// this batch. `None` when the mailbox held nothing after `after`.
    pub last_uid: Option<u32>,
}

/// How this server lets messages leave the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moving {
    /// `UID MOVE` (RFC 6851): one atomic command.
    Move,
    /// `UID COPY`, `\Deleted`, then `UID EXPUNGE` (UIDPLUS) of just those UIDs.
    CopyExpunge,
    /// Neither: a plain EXPUNGE would take other deleted messages too, so no move.
    Neither,
}

/// One logged-in session with the bounce mailbox selected.
pub struct Mailbox {
    session: Session<Secure>,
    /// `host:port`, for error messages.
    server: String,
    timeout: Duration,
    mailbox: String,
    uid_validity: u32,
    moving: Moving,
    /// Whether `processed` is known to exist in this session.
    processed_exists: bool,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("server", &self.server)
            .field("mailbox", &self.mailbox)
            .field("uid_validity", &self.uid_validity)
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    /// Connects, secures the connection (implicit TLS, or STARTTLS which must be
    /// offered), logs in and selects `settings.mailbox`.
    pub async fn open(settings: &ImapSettings) -> Result<Mailbox, ImapError> {
        let url = Url::parse(&settings.url).map_err(ImapError::Settings)?;
        let tls = connect::tls_connector(settings.ca_file.as_deref())?;
        let server = match url.host.contains(':') {
            true => format!("[{}]:{}", url.host, url.port),
            false => format!("{}:{}", url.host, url.port),
        };
        let dial = Dial {
            server: server.clone(),
            timeout: settings.timeout,
        };
        let mut session = dial.login(&url, settings, &tls).await?;
        let capabilities = dial
            .step("CAPABILITY", async {
                session
                    .capabilities()
                    .await
                    .map_err(|e| dial.failed("CAPABILITY", e))
            })
            .await?;
        let moving = if capabilities.has_str("MOVE") {
            Moving::Move
        } else if capabilities.has_str("UIDPLUS") {
            Moving::CopyExpunge
        } else {
            Moving::Neither
        };
        let selected = dial
            .step("SELECT", async {
                match session.select(&settings.mailbox).await {
                    Ok(selected) => Ok(selected),
                    Err(async_imap::error::Error::No(reply)) => Err(ImapError::MailboxMissing {
                        server: server.clone(),
                        mailbox: settings.mailbox.clone(),
                        reply,
                    }),
                    Err(e) => Err(dial.failed("SELECT", e)),
                }
            })
            .await?;
        let uid_validity = selected.uid_validity.unwrap_or(0);
        Ok(Mailbox {
            session,
            server,
            timeout: settings.timeout,
            mailbox: settings.mailbox.clone(),
            uid_validity,
            moving,
            processed_exists: false,
        })
    }

    /// The mailbox's UIDVALIDITY: UIDs kept from an earlier session (an `after`) mean
    /// the same messages only while it is unchanged.
    pub fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    /// Reads up to `max` messages with a UID above `after` (0 for all), oldest first.
    /// Messages over [`MAX_MESSAGE_BYTES`] count towards `max` and are reported in
    /// [`Batch::oversized`] without their body; they stay in the mailbox.
    pub async fn fetch(&mut self, after: u32, max: usize) -> Result<Batch, ImapError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Batch::default());
        };
        if max == 0 {
            return Ok(Batch::default());
        }
        // Deleted messages are on their way out (a copy interrupted before its expunge).
        let query = format!("UID {first}:* UNDELETED");
        self.budget(SEARCH_REPLY);
        let found = self
            .run("UID SEARCH", |s| async move { s.uid_search(query).await })
            .await?;
        // `first:*` always matches the last message, even below `first`.
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid >= first).collect();
        uids.sort_unstable();
        uids.truncate(max);
        let Some(&last) = uids.last() else {
            return Ok(Batch::default());
        };
        let mut batch = Batch {
            last_uid: Some(last),
            ..Batch::default()
        };
        let mut wanted = Vec::with_capacity(uids.len());
        for (uid, size) in self.sizes(&uids).await? {
            if size > MAX_MESSAGE_BYTES {
                batch.oversized.push(Oversized { uid, size });
            } else {
                wanted.push(uid);
            }
        }
        // One message a command, so that each has its own timeout and byte budget.
        for uid in wanted {
            if let Some(raw) = self.body(uid).await? {
                batch.messages.push(Fetched { uid, raw });
            }
        }
        Ok(batch)
    }

    /// `RFC822.SIZE` of each of `uids` still in the mailbox, in UID order.
    async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u32)>, ImapError> {
        let set = uid_set(uids);
        self.budget(SMALL_REPLY + uids.len() * 64);
        let fetches = self
            .run("UID FETCH RFC822.SIZE", |s| async move {
                let fetches = s.uid_fetch(set, "(UID RFC822.SIZE)").await?;
                fetches.try_collect::<Vec<_>>().await
            })
            .await?;
        let mut sizes: Vec<(u32, u32)> = fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.size?)))
            .filter(|(uid, _)| uids.binary_search(uid).is_ok())
            .collect();
        sizes.sort_unstable();
        sizes.dedup_by_key(|(uid, _)| *uid);
        Ok(sizes)
    }

    /// The raw message `uid`, or `None` when it has gone since it was listed.
    async fn body(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        self.budget(MAX_MESSAGE_BYTES as usize + FETCH_OVERHEAD);
        let fetches = self
            .run("UID FETCH BODY.PEEK[]", |s| async move {
                let fetches = s.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])").await?;
                fetches.try_collect::<Vec<_>>().await
            })
            .await?;
        let raw = fetches
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body())
            .map(<[u8]>::to_vec);
        if raw
            .as_ref()
            .is_some_and(|r| r.len() > MAX_MESSAGE_BYTES as usize)
        {
            return Err(ImapError::TooLarge {
                server: self.server.clone(),
                step: "UID FETCH BODY.PEEK[]",
            });
        }
        Ok(raw)
    }

    /// Moves `uids` to [`PROCESSED`], creating it if missing. With MOVE this is one
    /// atomic command; otherwise UID COPY, `\Deleted` and UID EXPUNGE of just those
    /// UIDs, so that a crash part-way leaves a copy in both (read again, never lost).
    pub async fn move_processed(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        if self.moving == Moving::Neither {
            return Err(ImapError::CannotMove {
                server: self.server.clone(),
            });
        }
        self.ensure_processed().await?;
        let set = uid_set(uids);
        self.budget(SMALL_REPLY + uids.len() * 256);
        match self.moving {
            Moving::Move => {
                self.run(
                    "UID MOVE",
                    |s| async move { s.uid_mv(set, PROCESSED).await },
                )
                .await
            }
            _ => {
                self.run("UID COPY, STORE and EXPUNGE", |s| async move {
                    s.uid_copy(&set, PROCESSED).await?;
                    let stored = s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
                    stored.try_collect::<Vec<_>>().await?;
                    let expunged = s.uid_expunge(&set).await?;
                    expunged.try_collect::<Vec<_>>().await?;
                    Ok(())
                })
                .await
            }
        }
    }

    /// Creates [`PROCESSED`] unless it exists (asked once a session).
    async fn ensure_processed(&mut self) -> Result<(), ImapError> {
        if self.processed_exists {
            return Ok(());
        }
        self.budget(SMALL_REPLY);
        let exists = self
            .run("LIST", |s| async move {
                let names = s.list(Some(""), Some(PROCESSED)).await?;
                let names = names.try_collect::<Vec<_>>().await?;
                Ok(!names.is_empty())
            })
            .await?;
        if !exists {
            self.budget(SMALL_REPLY);
            self.run("CREATE", |s| async move { s.create(PROCESSED).await })
                .await?;
        }
        self.processed_exists = true;
        Ok(())
    }

    /// Logs out, within the timeout; a server that does not answer is simply left.
    pub async fn close(mut self) {
        self.budget(SMALL_REPLY);
        let _ = tokio::time::timeout(self.timeout, self.session.logout()).await;
    }

    /// Sets the byte budget for the next command's reply.
    fn budget(&mut self, bytes: usize) {
        self.session.get_mut().set_budget(bytes);
    }

    /// Runs one command under the timeout, naming `step` in its error.
    async fn run<'s, T, F>(
        &'s mut self,
        step: &'static str,
        command: impl FnOnce(&'s mut Session<Secure>) -> F,
    ) -> Result<T, ImapError>
    where
        F: Future<Output = async_imap::error::Result<T>> + 's,
    {
        let dial = Dial {
            server: self.server.clone(),
            timeout: self.timeout,
        };
        let future = command(&mut self.session);
        dial.step(step, async {
            future.await.map_err(|e| dial.failed(step, e))
        })
        .await
    }
}

/// `uids` as an IMAP sequence set: `1,3,7`.
fn uid_set(uids: &[u32]) -> String {
    let mut set = String::with_capacity(uids.len() * 6);
    for (i, uid) in uids.iter().enumerate() {
        if i > 0 {
            set.push(',');
        }
        set.push_str(&uid.to_string());
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let settings = ImapSettings {
            url: "imaps://mail.example.com".into(),
            username: "bounces".into(),
            password: "hunter2 secret".into(),
            ca_file: None,
            mailbox: "INBOX".into(),
            timeout: Duration::from_secs(30),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bounces"), "{shown}");
    }

    #[test]
    fn uid_sets_list_every_uid() {
        assert_eq!(uid_set(&[7]), "7");
        assert_eq!(uid_set(&[1, 3, 7]), "1,3,7");
    }
}
