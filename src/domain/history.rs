//! A contact's history: what the planner decides from, as the store reads it.

use std::collections::HashSet;

use jiff::Timestamp;

use super::{Contact, Event};

/// A contact with everything the planner needs to know about it.
#[derive(Clone, Debug)]
pub struct History {
    pub contact: Contact,
    pub events: Vec<Event>,
    /// (cadence, occurrence) of every send-log row of the contact.
    pub logged: HashSet<(String, String)>,
    /// (cadence, when) of each send sent or being sent, for the frequency cap.
    pub delivered: Vec<(String, Timestamp)>,
    /// Why the contact's email address is on the suppression list, if it is.
    pub suppressed: Option<String>,
    /// What the customer chose on their preferences page.
    pub choices: Choices,
}

/// A customer's own choices, from their preferences page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choices {
    /// The follow-ups (cadence ids) they turned off.
    pub declined: Vec<String>,
    /// Nothing is sent to them before this time.
    pub paused_until: Option<Timestamp>,
}

impl Choices {
    /// The stored form of `declined`: ids joined by `;` (an id holds no `;`).
    pub fn declined_text(&self) -> String {
        self.declined.join(";")
    }

    pub fn from_stored(declined: &str, paused_until: Option<Timestamp>) -> Choices {
        Choices {
            declined: declined
                .split(';')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            paused_until,
        }
    }
}

impl History {
    /// The events as people review them: the newest first.
    pub fn events_newest_first(&self) -> Vec<&Event> {
        let mut events: Vec<&Event> = self.events.iter().collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.at));
        events
    }
}
