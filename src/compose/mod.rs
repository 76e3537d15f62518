//! Composing a message: from one occurrence of a cadence for one contact, the data its
//! templates see, the rendered text, and the finished email (envelope and MIME, ready
//! for a transport) or postcard (ready for the outbox). Delivery and `preview` both
//! compose through here, so a preview is exactly what would be sent.

mod card;
mod check;
mod data;
mod sample;

use jiff::Timestamp;

use crate::channel::email::{self, Envelope};
use crate::channel::postcard::Card;
use crate::config::Config;
use crate::domain::{Cadence, Channel, Contact, Event};
use crate::render::{RenderFailure, Templates};
use crate::unsubscribe::{self, Signer};

pub use check::check_cadence;
pub use data::MessageData;

/// What composing needs besides the message itself: the same for every message.
pub struct Composer<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    /// Signs unsubscribe links, when the HTTP endpoint is configured.
    pub signer: Option<&'a Signer>,
}

/// One message to compose: an occurrence of a cadence for a contact.
pub struct Request<'a> {
    pub cadence: &'a Cadence,
    pub contact: &'a Contact,
    /// The contact's events, among which the triggering one (`event_id`) is found.
    pub events: &'a [Event],
    pub event_id: Option<&'a str>,
    pub occurrence: &'a str,
    /// The message's date and the templates' `now`: a send's first attempt, so that
    /// every attempt composes the same bytes.
    pub at: Timestamp,
    /// The send record's id (0 in previews); names the card's PDF.
    pub send_id: i64,
    pub message_id: &'a str,
}

/// A message ready for its channel.
pub enum Composed {
    Email(lettre::Message),
    /// Boxed: a card is more than twice an email's size.
    Card(Box<Card>),
}

/// Why a message cannot be composed; retrying cannot help with any of these.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// An email cadence met a contact without an address (the send's reason `no_email`).
    #[error("no_email")]
    NoEmail,
    #[error(transparent)]
    Render(#[from] RenderFailure),
    /// lettre refused the message (an address it cannot parse).
    #[error("{0}")]
    Build(String),
}

impl Composer<'_> {
    /// Renders the message `request` names and builds it for the cadence's channel.
    pub fn compose(&self, request: &Request<'_>) -> Result<Composed, ComposeError> {
        let Composer {
            config,
            templates,
            signer,
        } = *self;
        let cadence = request.cadence;
        let contact = request.contact;
        let event = request
            .event_id
            .and_then(|id| request.events.iter().find(|e| e.id == id));
        let unsubscribe_url = unsubscribe::url(config, signer, &contact.id, cadence.channel);
        let data = MessageData {
            config,
            cadence,
            contact,
            event,
            occurrence: request.occurrence,
            now: request.at,
            unsubscribe_url: &unsubscribe_url,
        };
        if cadence.channel == Channel::Postcard {
            let rendered = templates.render_postcard(&cadence.template, data.to_json())?;
            let card = card::card(config, cadence, contact, request.send_id, rendered);
            return Ok(Composed::Card(Box::new(card)));
        }
        let to = contact.email.as_ref().ok_or(ComposeError::NoEmail)?;
        let body = templates.render_email(&cadence.template, data.to_json())?;
        let envelope = Envelope {
            business: &config.business,
            to_name: &contact.full_name(),
            to,
            message_id: request.message_id,
            date: request.at,
            unsubscribe_url: &unsubscribe_url,
        };
        let message = email::build(&envelope, &body).map_err(ComposeError::Build)?;
        Ok(Composed::Email(message))
    }
}
