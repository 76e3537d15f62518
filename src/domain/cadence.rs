//! Cadences: what to send, to whom, and when. A `Cadence` is built by the config
//! loader from YAML and holds only valid values.

use std::fmt;

use super::time::{Opening, Period};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Postcard,
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Postcard => "postcard",
        }
    }

    pub fn parse(text: &str) -> Result<Channel, String> {
        match text {
            "email" => Ok(Channel::Email),
            "postcard" => Ok(Channel::Postcard),
            other => Err(format!("`{other}` is not a channel; use email or postcard")),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a non-leap year does with a Feb 29 date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Feb29 {
    #[default]
    Feb28,
    Mar1,
    Skip,
}

impl Feb29 {
    pub fn parse(text: &str) -> Result<Feb29, String> {
        match text {
            "feb28" => Ok(Feb29::Feb28),
            "mar1" => Ok(Feb29::Mar1),
            "skip" => Ok(Feb29::Skip),
            other => Err(format!(
                "`{other}` is not a Feb 29 policy; use feb28, mar1 or skip"
            )),
        }
    }
}

/// When a cadence's occurrences fall due.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// Each event of `kind`, plus `delay`.
    After { kind: String, delay: Period },
    /// The latest event of `since`, plus n times `every` (n = 1, 2, ...).
    Every { every: Period, since: String },
    /// A contact date (`birthday`) each year, `lead` before it.
    Yearly {
        field: String,
        lead: Period,
        feb29: Feb29,
    },
    /// Each fire time of a cron expression in the business zone, to every contact
    /// matching `where`.
    Cron { expr: String },
}

impl Trigger {
    /// The event kind whose events anchor this trigger's occurrences.
    pub fn event_kind(&self) -> Option<&str> {
        match self {
            Trigger::After { kind, .. } => Some(kind),
            Trigger::Every { since, .. } => Some(since),
            Trigger::Yearly { .. } | Trigger::Cron { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cadence {
    /// Stable key; part of every send record, so it must never be reused.
    pub id: String,
    pub channel: Channel,
    pub template: String,
    pub trigger: Trigger,
    /// Tags that a contact must all have.
    pub tags: Vec<String>,
    /// Event kinds that cancel a pending send when one happened after the trigger event.
    pub unless: Vec<String>,
    pub opening: Opening,
    pub max_lateness: Period,
    /// Exempt from the frequency cap.
    pub transactional: bool,
    pub enabled: bool,
    /// Postcards: an image (in the templates directory) printed over the whole front.
    pub front_image: Option<String>,
    /// Groups cadences on the customer's preferences page; `None`: the cadence's own row.
    pub topic: Option<String>,
}
