//! What a report changes: a permanent failure or a complaint suppresses the address at
//! once (and a bounce moves its send to `bounced`); transient failures are counted, and
//! enough of them in a week suppress it. A report must name one of tickler's own sends
//! (a genuine VERP token, or the returned Message-ID of a send to that address), so a
//! forged or stray report changes nothing and is left where it is.

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::report::{Bounce, Classified, Complaint, FailedRecipient};
use crate::domain::{EmailAddress, Suppression};
use crate::store::{Store, StoreError};
use crate::unsubscribe::Signer;

/// Transient failures of one address, within [`SOFT_WINDOW`], that suppress it.
pub const SOFT_LIMIT: i64 = 3;
pub const SOFT_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24);

/// What became of one received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The report was acted on (or had been already): move it to `processed`.
    Acted(String),
    /// Not a report, or a report that names no send of ours: leave it in place.
    Left(String),
}

/// Acts on `raw`, classified as `classified`, as of `now`.
pub async fn apply(
    store: &dyn Store,
    signer: Option<&Signer>,
    raw: &[u8],
    classified: Classified,
    now: Timestamp,
) -> Result<Handled, StoreError> {
    match classified {
        Classified::NotAReport { why } => Ok(Handled::Left(format!("not a report: {why}"))),
        Classified::Bounce(bounce) => bounced(store, signer, raw, bounce, now).await,
        Classified::Complaint(complaint) => complained(store, signer, raw, complaint, now).await,
    }
}

/// The send a report answers: its VERP token if it has one (a token that does not verify
/// is a forgery, and ties nothing), else the returned Message-ID among the sends to
/// `address`.
async fn send_of(
    store: &dyn Store,
    signer: Option<&Signer>,
    token: Option<&str>,
    message_id: Option<&str>,
    address: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    if let Some(token) = token {
        return Ok(signer.and_then(|s| s.verify_verp(token)));
    }
    match (message_id, address) {
        (Some(id), Some(address)) => store.send_with_message_id(address, id).await,
        _ => Ok(None),
    }
}

/// A key that tells this report from others, to count a transient failure once.
fn report_key(raw: &[u8], message_id: Option<&str>) -> String {
    match message_id {
        Some(id) => id.to_owned(),
        None => hex::encode(Sha256::digest(raw)),
    }
}

fn detail(r: &FailedRecipient) -> String {
    if r.diagnostic.is_empty() {
        r.status.clone()
    } else {
        format!("{} {}", r.status, r.diagnostic)
    }
}

async fn bounced(
    store: &dyn Store,
    signer: Option<&Signer>,
    raw: &[u8],
    bounce: Bounce,
    now: Timestamp,
) -> Result<Handled, StoreError> {
    let first = bounce.recipients.first().map(|r| r.address.as_str());
    let Some(send) = send_of(
        store,
        signer,
        bounce.verp_token.as_deref(),
        bounce.original_message_id.as_deref(),
        first,
    )
    .await?
    else {
        return Ok(Handled::Left(format!(
            "a bounce for {} that names no send of ours",
            first.unwrap_or("nobody")
        )));
    };
    // tickler sends each email to one address: the send's own, whatever a forwarding
    // server reported as the final recipient.
    let Some(address) = recipient(store, send, first).await? else {
        return Ok(Handled::Left(
            "a bounce whose address cannot be known".into(),
        ));
    };
    let key = address.suppression_key();
    let matching = bounce
        .recipients
        .iter()
        .find(|r| EmailAddress::parse(&r.address).is_ok_and(|a| a.suppression_key() == key));
    let Some(failed) = matching.or(bounce.recipients.first()) else {
        return Ok(Handled::Left("a bounce that names no recipient".into()));
    };
    let why = detail(failed);
    if failed.permanent {
        suppress(store, &address, "bounced", &why, raw, now).await?;
        store.mark_bounced(send, &why, now).await?;
        return Ok(Handled::Acted(format!(
            "{address} suppressed (bounced: {})",
            failed.status
        )));
    }
    let report = report_key(raw, bounce.report_message_id.as_deref());
    if !store.first_sight_of_report(&report, now).await? {
        return Ok(Handled::Acted(format!(
            "{address}: transient failure already counted"
        )));
    }
    let count = store
        .soft_bounce(&key, now, now - SOFT_WINDOW, &why)
        .await?;
    if count < SOFT_LIMIT {
        return Ok(Handled::Acted(format!(
            "{address}: transient failure {count} of {SOFT_LIMIT} ({})",
            failed.status
        )));
    }
    let note = format!("{count} transient failures in 7 days; the last: {why}");
    suppress(store, &address, "bounced", &note, raw, now).await?;
    Ok(Handled::Acted(format!(
        "{address} suppressed after {count} transient failures"
    )))
}

/// The address send `send` went to, else the one the report names.
async fn recipient(
    store: &dyn Store,
    send: i64,
    reported: Option<&str>,
) -> Result<Option<EmailAddress>, StoreError> {
    let address = match store.send_recipient(send).await? {
        Some(address) => Some(address),
        None => reported.map(str::to_owned),
    };
    Ok(address.and_then(|a| EmailAddress::parse(&a).ok()))
}

/// Lists `address` for `reason`, keeping the report.
async fn suppress(
    store: &dyn Store,
    address: &EmailAddress,
    reason: &str,
    detail: &str,
    raw: &[u8],
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut entry = Suppression::new(address, reason, detail, now)
        .map_err(|m| StoreError::Other(anyhow::anyhow!(m)))?;
    entry.report = Some(raw.to_vec());
    store.suppress(&[entry]).await.map(drop)
}

async fn complained(
    store: &dyn Store,
    signer: Option<&Signer>,
    raw: &[u8],
    complaint: Complaint,
    now: Timestamp,
) -> Result<Handled, StoreError> {
    let send = send_of(
        store,
        signer,
        complaint.verp_token.as_deref(),
        complaint.original_message_id.as_deref(),
        complaint.address.as_deref(),
    )
    .await?;
    let Some(send) = send else {
        return Ok(Handled::Left(format!(
            "a complaint about {} that names no send of ours",
            complaint.address.as_deref().unwrap_or("a redacted address")
        )));
    };
    // A redacted report is tied by its token or Message-ID: the send says who it was.
    let Some(address) = recipient(store, send, complaint.address.as_deref()).await? else {
        return Ok(Handled::Left(
            "a complaint whose address cannot be known".into(),
        ));
    };
    let note = format!("{} report", complaint.feedback_type);
    suppress(store, &address, "complained", &note, raw, now).await?;
    Ok(Handled::Acted(format!(
        "{address} suppressed (complained: {})",
        complaint.feedback_type
    )))
}
