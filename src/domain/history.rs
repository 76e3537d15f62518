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
}

impl History {
    /// The events as people review them: the newest first.
    pub fn events_newest_first(&self) -> Vec<&Event> {
        let mut events: Vec<&Event> = self.events.iter().collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.at));
        events
    }
}
