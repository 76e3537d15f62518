//! `tickler preview CADENCE CONTACT`: the exact message the contact would get.

use std::path::Path;

use super::{CommandResult, Failure, load_config, load_templates, open_store, parse_now};
use crate::channel::postcard::{self, Card};
use crate::compose::{ComposeError, Composed, Composer, shown_occurrence, shown_request};
use crate::domain::SendKey;
use crate::unsubscribe;

pub async fn run(
    path: &Path,
    cadence_id: &str,
    contact_id: &str,
    now: Option<&str>,
    out: Option<&Path>,
) -> CommandResult {
    let config = load_config(path)?;
    let now = parse_now(now, &config.business.zone)?;
    let cadence = config.cadence(cadence_id).ok_or_else(|| {
        Failure::Errors(vec![format!(
            "no cadence `{cadence_id}` in {}",
            config.path.display()
        )])
    })?;
    let templates = load_templates(&config)?;
    let store = open_store(&config).await?;
    let history = store
        .history(&[contact_id.to_owned()])
        .await?
        .pop()
        .ok_or_else(|| Failure::Errors(vec![format!("no contact `{contact_id}`")]))?;
    let contact = &history.contact;
    let due = shown_occurrence(&config, cadence, &history, now)
        .map_err(|why| Failure::Errors(vec![format!("cadence `{cadence_id}`: {why}")]))?;
    let signer = unsubscribe::signer(&config)?;
    let dkim =
        crate::channel::dkim::Signer::configured(&config).map_err(|m| Failure::Errors(vec![m]))?;
    let key = SendKey {
        contact: contact.id.clone(),
        cadence: cadence.id.clone(),
        occurrence: due.occurrence.clone(),
    };
    let message_id = key.message_id(config.business.email.domain());
    let composer = Composer {
        config: &config,
        templates: &templates,
        signer: signer.as_ref(),
        dkim: dkim.as_ref(),
    };
    let request = shown_request(cadence, &history, &due, now, &message_id);
    let message = match composer.compose(&request) {
        Ok(Composed::Email(message, _)) => message,
        Ok(Composed::Card(card)) => return write_card(&card, out),
        Err(ComposeError::NoEmail) => {
            return Err(Failure::Errors(vec![format!(
                "contact `{contact_id}` has no email address"
            )]));
        }
        Err(e) => return Err(Failure::Errors(vec![e.to_string()])),
    };
    let text = String::from_utf8_lossy(&message.formatted()).into_owned();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Errors(vec![format!("{}: {e}", dir.display())]))?;
            let file = dir.join(format!("{}.eml", key.digest()));
            std::fs::write(&file, text)
                .map_err(|e| Failure::Errors(vec![format!("{}: {e}", file.display())]))?;
            super::say!("{}", file.display());
        }
        None => super::write_stdout(text.as_bytes())?,
    }
    Ok(())
}

/// A postcard preview: the PDF and a proof PNG of each side under `out`, else the
/// card's text.
fn write_card(card: &Card, out: Option<&Path>) -> CommandResult {
    let pdf = postcard::pdf::render(std::slice::from_ref(card))
        .map_err(|m| Failure::Errors(vec![format!("cadence `{}`: {m}", card.cadence)]))?;
    let Some(dir) = out else {
        if let Some(front) = &card.front {
            super::say!("{front}\n\n---");
        }
        super::say!(
            "{}\n\n---\n{}",
            card.message,
            card.address_block().join("\n")
        );
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Errors(vec![format!("{}: {e}", dir.display())]))?;
    let file = dir.join(format!(
        "preview-{}",
        card.file_name().trim_start_matches("000000-")
    ));
    std::fs::write(&file, pdf)
        .map_err(|e| Failure::Errors(vec![format!("{}: {e}", file.display())]))?;
    super::say!("{}", file.display());
    // Proof sheets: each side as a PNG with the print and postal zones drawn over it.
    let proofs = postcard::proofs(card)
        .map_err(|m| Failure::Errors(vec![format!("cadence `{}`: {m}", card.cadence)]))?;
    for (side, png) in ["front", "back"].iter().zip(proofs) {
        let proof = file.with_extension(format!("{side}.png"));
        std::fs::write(&proof, png)
            .map_err(|e| Failure::Errors(vec![format!("{}: {e}", proof.display())]))?;
        super::say!("{}", proof.display());
    }
    Ok(())
}
