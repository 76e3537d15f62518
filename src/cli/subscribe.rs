//! `tickler unsubscribe` / `tickler resubscribe`.

use std::path::Path;

use super::{ChannelArg, CommandResult, Failure, load_config, open_store};
use crate::domain::Channel;

pub async fn run(path: &Path, contact: &str, channel: ChannelArg, opt_out: bool) -> CommandResult {
    let config = load_config(path)?;
    let store = open_store(&config).await?;
    let channels: &[Channel] = match channel {
        ChannelArg::Email => &[Channel::Email],
        ChannelArg::Postcard => &[Channel::Postcard],
        ChannelArg::All => &[Channel::Email, Channel::Postcard],
    };
    for &c in channels {
        if !store
            .set_opt_out(contact, c, opt_out, jiff::Timestamp::now())
            .await?
        {
            return Err(Failure::Errors(vec![format!("no contact `{contact}`")]));
        }
    }
    let names: Vec<&str> = channels.iter().map(Channel::as_str).collect();
    let verb = if opt_out {
        "unsubscribed from"
    } else {
        "resubscribed to"
    };
    super::say!("{contact} {verb} {}", names.join(" and "));
    Ok(())
}
