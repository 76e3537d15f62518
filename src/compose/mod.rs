//! Composing a message: from one occurrence of a cadence for one contact, the data its
//! templates see, the rendered text, and the finished email (envelope and MIME, ready
//! for a transport) or postcard (ready for the outbox). Delivery and `preview` both
//! compose through here, so a preview is exactly what would be sent.

mod card;
mod check;
mod data;
mod kept;
mod pick;
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
pub use kept::KeptMessage;
pub use pick::{shown_occurrence, shown_request};

/// What composing needs besides the message itself: the same for every message.
pub struct Composer<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    /// Signs unsubscribe links and return paths, when either is configured.
    pub signer: Option<&'a Signer>,
    /// Signs each email, when `email.dkim` is set.
    pub dkim: Option<&'a crate::channel::dkim::Signer>,
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
    /// The message for the transport, and its rendered parts as the console keeps them.
    Email(lettre::Message, Box<KeptMessage>),
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
        self.compose_for(request, false)
    }

    /// The same email as a test for the owner: to the business's own address, the
    /// subject marked `[TEST]`, and an unsubscribe link that reaches the business, not
    /// one that would opt the customer out.
    pub fn compose_test(
        &self,
        request: &Request<'_>,
    ) -> Result<(lettre::Message, KeptMessage), ComposeError> {
        let inert = Composer {
            signer: None,
            ..*self
        };
        match inert.compose_for(request, true)? {
            Composed::Email(message, kept) => Ok((message, *kept)),
            Composed::Card(_) => Err(ComposeError::Build("a postcard has no test email".into())),
        }
    }

    fn compose_for(&self, request: &Request<'_>, test: bool) -> Result<Composed, ComposeError> {
        let Composer {
            config,
            templates,
            signer,
            dkim,
        } = *self;
        let cadence = request.cadence;
        let contact = request.contact;
        let event = request
            .event_id
            .and_then(|id| request.events.iter().find(|e| e.id == id));
        let unsubscribe_url = unsubscribe::url(config, signer, &contact.id, cadence.channel);
        let preferences_url = unsubscribe::preferences_url(config, signer, &contact.id);
        let data = MessageData {
            config,
            cadence,
            contact,
            event,
            occurrence: request.occurrence,
            now: request.at,
            unsubscribe_url: &unsubscribe_url,
            preferences_url: &preferences_url,
        };
        let data = data.to_json().map_err(ComposeError::Build)?;
        if cadence.channel == Channel::Postcard {
            if test {
                return Err(ComposeError::Build(
                    "a postcard is not sent as a test; `tickler preview --out DIR` draws it".into(),
                ));
            }
            let rendered = templates.render_postcard(&cadence.template, data)?;
            let card = card::card(config, cadence, contact, request.send_id, rendered);
            return Ok(Composed::Card(Box::new(card)));
        }
        let mut body = templates.render_email(&cadence.template, data)?;
        let (to_name, to) = if test {
            body.subject = format!("[TEST] {}", body.subject);
            (config.business.name.clone(), &config.business.email)
        } else {
            let to = contact.email.as_ref().ok_or(ComposeError::NoEmail)?;
            (contact.full_name(), to)
        };
        let mailto = unsubscribe::mailto(config);
        let return_path = (request.send_id > 0)
            .then(|| unsubscribe::return_path(config, signer, request.send_id))
            .flatten();
        let envelope = Envelope {
            business: &config.business,
            to_name: &to_name,
            to,
            message_id: request.message_id,
            date: request.at,
            unsubscribe_url: &unsubscribe_url,
            unsubscribe_mailto: (unsubscribe_url != mailto).then_some(mailto.as_str()),
            return_path: return_path.as_deref(),
            dkim,
        };
        let message = email::build(&envelope, &body).map_err(ComposeError::Build)?;
        let kept = KeptMessage {
            subject: body.subject,
            to: if to_name.is_empty() {
                to.to_string()
            } else {
                format!("{to_name} <{to}>")
            },
            text: body.text,
            html: body.html,
        };
        Ok(Composed::Email(message, Box::new(kept)))
    }
}
