//! The file transport: each message goes to `DIR/NAME.eml` instead of a server.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::Message;

use super::{DeliveryError, EmailTransport};

/// Writes each message to `DIR/NAME.eml`, atomically: a crash leaves either the whole
/// file or none, and a retry overwrites the same file instead of adding a second.
pub(super) struct FileOutbox {
    dir: PathBuf,
}

impl FileOutbox {
    pub(super) fn new(dir: PathBuf) -> FileOutbox {
        FileOutbox { dir }
    }
}

#[async_trait]
impl EmailTransport for FileOutbox {
    async fn send(&self, message: &Message, name: &str) -> Result<String, DeliveryError> {
        let dir = self.dir.clone();
        let bytes = message.formatted();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{name}.eml"));
            crate::files::write_atomic(&path, &bytes)?;
            Ok(format!("written to {}", path.display()))
        })
        .await
        .map_err(|e| DeliveryError::Transient(format!("file writer stopped: {e}")))?
        .map_err(|e| {
            DeliveryError::Transient(format!("cannot write to {}: {e}", self.dir.display()))
        })
    }

    fn concurrency(&self) -> usize {
        8
    }
}
