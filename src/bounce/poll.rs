//! Reading the bounce mailbox once: every message after the cursor is classified and
//! acted on, and the reports acted on are moved to `processed`; everything else stays
//! where it is, and the cursor moves past it so that it does not hold newer reports up.

use jiff::Timestamp;

use super::apply::{Handled, apply};
use super::imap::{ImapSettings, Mailbox};
use super::report::classify;
use crate::config::{Config, ImapConfig};
use crate::store::Store;
use crate::unsubscribe::Signer;

/// Messages read a batch, and batches a poll: a full mailbox is worked through over a
/// few polls rather than in one long session.
const BATCH: usize = 100;
const BATCHES: usize = 20;

/// Where the last poll of this process stopped, for the mailbox it read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursor {
    uid_validity: u32,
    after: u32,
}

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub acted: usize,
    pub left: usize,
}

fn settings(imap: &ImapConfig) -> anyhow::Result<ImapSettings> {
    Ok(ImapSettings {
        url: imap.url.clone(),
        username: imap.username.clone(),
        password: imap.password.read("email.bounce.imap")?,
        ca_file: imap.ca_file.clone(),
        mailbox: imap.mailbox.clone(),
        timeout: imap.timeout,
    })
}

/// Reads the mailbox `email.bounce.imap` names, if it names one, from `cursor` on.
pub async fn poll(
    config: &Config,
    store: &dyn Store,
    signer: Option<&Signer>,
    cursor: &mut Cursor,
    now: Timestamp,
) -> anyhow::Result<Polled> {
    let Some(bounce) = &config.email.bounce else {
        return Ok(Polled::default());
    };
    let Some(imap) = &bounce.imap else {
        return Ok(Polled::default());
    };
    let return_path = bounce.return_path.as_ref().map(|a| a.as_str());
    let mut mailbox = Mailbox::open(&settings(imap)?).await?;
    if mailbox.uid_validity() != cursor.uid_validity {
        *cursor = Cursor {
            uid_validity: mailbox.uid_validity(),
            after: 0,
        };
    }
    let mut polled = Polled::default();
    for _ in 0..BATCHES {
        let batch = mailbox.fetch(cursor.after, BATCH).await?;
        let mut processed = Vec::new();
        for message in &batch.messages {
            let classified = classify(&message.raw, return_path);
            match apply(store, signer, &message.raw, classified, now).await? {
                Handled::Acted(what) => {
                    tracing::info!(uid = message.uid, %what, "bounce mailbox: report acted on");
                    processed.push(message.uid);
                    polled.acted += 1;
                }
                Handled::Left(why) => {
                    tracing::warn!(uid = message.uid, %why, "bounce mailbox: message left in place");
                    polled.left += 1;
                }
            }
        }
        for big in &batch.oversized {
            tracing::warn!(
                uid = big.uid,
                size = big.size,
                "bounce mailbox: message too large to be a report; left in place"
            );
            polled.left += 1;
        }
        mailbox.move_processed(&processed).await?;
        match batch.last_uid {
            Some(last) => cursor.after = last,
            None => break,
        }
    }
    mailbox.close().await;
    Ok(polled)
}
