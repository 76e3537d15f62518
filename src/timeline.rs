//! One customer as people read them, for the console's page and `tickler contact`: what
//! each follow-up sends them next (or why nothing), and the send log's reasons and the
//! cadences' triggers in words. Pure: the caller reads the store and the clock.

use jiff::Timestamp;

use crate::agenda::{Decision, agenda};
use crate::config::Config;
use crate::domain::{Cadence, Channel, History, Trigger};

/// How far ahead a customer's next sends are looked for.
pub const AHEAD_DAYS: i64 = 400;

/// What one follow-up does next for a customer.
#[derive(Clone, Debug, PartialEq)]
pub struct Next {
    pub cadence: String,
    pub channel: Channel,
    /// When it goes out (or would be skipped); `None` when nothing is due.
    pub at: Option<Timestamp>,
    /// In words: which occurrence goes out, or why nothing does.
    pub what: String,
}

/// For each cadence, what it sends `history`'s contact next and when, or why nothing,
/// as the agenda (which `tick` and `plan` follow) decides.
pub fn next_sends(config: &Config, history: &History, now: Timestamp) -> Vec<Next> {
    let contact = &history.contact;
    let until = now + jiff::SignedDuration::from_hours(24 * AHEAD_DAYS);
    let verdicts = agenda(config, history, now, until);
    config
        .cadences
        .iter()
        .map(|cadence| {
            let first = verdicts.iter().find(|v| v.cadence.id == cadence.id);
            let (at, what) = match first {
                _ if !cadence.enabled => (None, "this follow-up is off".to_owned()),
                _ if !cadence.tags.iter().all(|t| contact.has_tag(t)) => (
                    None,
                    format!(
                        "not for this customer: needs the tag {}",
                        cadence.tags.join(", ")
                    ),
                ),
                None => (
                    None,
                    format!(
                        "nothing due in the next {AHEAD_DAYS} days (it goes out {})",
                        trigger_in_words(cadence)
                    ),
                ),
                Some(v) => {
                    let at = match v.decision {
                        Decision::Send => now,
                        Decision::Wait(at) | Decision::Later(at) => at,
                        Decision::Skip(_) => v.due.due_at,
                    };
                    let skip = match &v.decision {
                        Decision::Skip(reason) => Some(reason.clone()),
                        _ => v.skip_reason.clone(),
                    };
                    let what = match skip {
                        Some(reason) => format!(
                            "{} would be skipped: {}",
                            v.due.occurrence,
                            reason_in_words(&reason)
                        ),
                        None => format!("{} goes out", v.due.occurrence),
                    };
                    (Some(at), what)
                }
            };
            Next {
                cadence: cadence.id.clone(),
                channel: cadence.channel,
                at,
                what,
            }
        })
        .collect()
}

/// A send-log reason in words, its code after it (what `tickler sends` shows).
pub fn reason_in_words(reason: &str) -> String {
    let words = match reason {
        "stale" => "too late to send: past max_lateness".to_owned(),
        "superseded" => "a newer occurrence of the same follow-up took its place".to_owned(),
        "opted_out" => "the customer opted out of this channel".to_owned(),
        "no_email" => "no email address".to_owned(),
        "no_address" => "no postal address".to_owned(),
        "declined" => "the customer turned this follow-up off".to_owned(),
        "paused" => "the customer paused their follow-ups".to_owned(),
        other => match (
            other.strip_prefix("unless:"),
            other.strip_prefix("suppressed:"),
        ) {
            (Some(kind), _) => format!("a {kind} event came first"),
            (_, Some("bounced")) => "the address is suppressed: mail to it bounced".to_owned(),
            (_, Some("complained")) => {
                "the address is suppressed: its owner marked our mail as spam".to_owned()
            }
            (_, Some("unsubscribed")) => {
                "the address is suppressed: its owner unsubscribed".to_owned()
            }
            (_, Some(why)) => format!("the address is suppressed: {why}"),
            _ => return other.to_owned(),
        },
    };
    format!("{words} ({reason})")
}

/// A cadence's trigger in words.
pub fn trigger_in_words(c: &Cadence) -> String {
    let mut words = match &c.trigger {
        Trigger::After { kind, delay } => format!("{delay} after each {kind} event"),
        Trigger::Every { every, since } => {
            format!("every {every} since the latest {since} event")
        }
        Trigger::Yearly { field, lead, .. } if lead.is_zero() => {
            format!("each year on the {field} date")
        }
        Trigger::Yearly { field, lead, .. } => {
            format!("each year, {lead} before the {field} date")
        }
        Trigger::Cron { expr } => format!("on the schedule {expr}"),
    };
    if !c.tags.is_empty() {
        words.push_str(&format!("; to contacts tagged {}", c.tags.join(", ")));
    }
    if !c.unless.is_empty() {
        words.push_str(&format!("; not after a later {}", c.unless.join(" or ")));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_words_with_their_code() {
        assert_eq!(
            reason_in_words("opted_out"),
            "the customer opted out of this channel (opted_out)"
        );
        assert_eq!(
            reason_in_words("unless:purchase"),
            "a purchase event came first (unless:purchase)"
        );
        assert_eq!(reason_in_words("something new"), "something new");
    }
}
