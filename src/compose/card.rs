//! A postcard as the outbox prints it: the rendered text with the recipient's and the
//! business's addresses.

use crate::channel::postcard::{Card, Logo};
use crate::config::Config;
use crate::domain::{Cadence, Contact};
use crate::render::RenderedCard;

/// The card that `contact` gets from `cadence`, with its rendered text.
pub(crate) fn card(
    config: &Config,
    cadence: &Cadence,
    contact: &Contact,
    send_id: i64,
    rendered: RenderedCard,
) -> Card {
    let business = &config.business;
    let home = business.address.country.clone();
    let mut return_address = vec![business.name.clone()];
    return_address.extend(business.address.lines(&home));
    Card {
        send_id,
        contact: contact.id.clone(),
        cadence: cadence.id.clone(),
        name: contact.full_name(),
        address: contact.address.clone(),
        home_country: home,
        business: business.name.clone(),
        return_address,
        message: rendered.message,
        front: rendered.front,
        front_image: cadence
            .front_image
            .as_ref()
            .map(|name| config.templates_dir.join(name)),
        logo: business.logo.as_ref().map(|logo| Logo {
            name: logo.name.clone(),
            path: logo.path.clone(),
        }),
        colour: business.colour.as_str().to_owned(),
    }
}
