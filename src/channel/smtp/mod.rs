//! SMTP: a small pool of lettre connections over sockets of our own (with
//! TCP_NODELAY, which lettre's own pool cannot set), each driven by a task of its own.
//! lettre's client still does every protocol step.
//!
//! Senders queue finished messages (`pool`); up to `max_connections` tasks (`task`)
//! take them in order, carry them over their connection (`exchange`: one round trip a
//! message where the server pipelines) and answer each sender with the server's reply.
//! They learn how many connections and how fast the server takes (`feedback`).

mod connect;
mod exchange;
mod feedback;
mod pool;
mod reply;
mod task;
mod tls;
mod url;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lettre::Message;
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::url::{Security, SmtpUrl};
use super::{DeliveryError, EmailTransport, Learned};
use crate::config::SmtpConfig;
use connect::Server;
use exchange::Outgoing;
use pool::{Item, Pool};

/// SMTP with at most `max_connections` connections, each message under one deadline
/// from the moment a connection task takes it (connecting included).
pub(super) struct SmtpOutbox {
    pool: Arc<Pool>,
    queue: mpsc::Sender<Item>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    max_connections: usize,
}

impl SmtpOutbox {
    pub(super) fn new(config: &SmtpConfig) -> anyhow::Result<SmtpOutbox> {
        let url =
            SmtpUrl::parse(&config.url).map_err(|m| anyhow::anyhow!("email.smtp.url: {m}"))?;
        let tls = match url.security {
            Security::None => None,
            _ => Some(tls::parameters(&url.host, config.ca_file.as_deref())?),
        };
        let server = Server {
            credentials: self::url::credentials(config)?,
            host: url.host,
            port: url.port,
            security: url.security,
            tls,
            hello: ClientId::default(),
        };
        let max_connections = (config.max_connections as usize).max(1);
        let (queue, waiting) = mpsc::channel(64);
        Ok(SmtpOutbox {
            pool: Arc::new(Pool::new(server, config.timeout, max_connections, waiting)),
            queue,
            workers: Mutex::new(Vec::new()),
            max_connections,
        })
    }

    /// Starts the connection tasks on first use, and again if the runtime that ran them
    /// has gone.
    fn start_workers(&self) {
        let Ok(mut workers) = self.workers.lock() else {
            return;
        };
        workers.retain(|w| !w.is_finished());
        while workers.len() < self.max_connections {
            workers.push(tokio::spawn(task::work(self.pool.clone())));
        }
    }
}

#[async_trait]
impl EmailTransport for SmtpOutbox {
    async fn send(&self, message: &Message, _name: &str) -> Result<String, DeliveryError> {
        self.start_workers();
        let (answer, outcome) = oneshot::channel();
        let item = Item {
            mail: Outgoing::new(message),
            answer,
        };
        if self.queue.send(item).await.is_err() {
            return Err(DeliveryError::Transient("SMTP connections stopped".into()));
        }
        outcome.await.unwrap_or_else(|_| {
            Err(DeliveryError::Transient(
                "the SMTP connection stopped before the server answered".into(),
            ))
        })
    }

    fn concurrency(&self) -> usize {
        self.max_connections
    }

    async fn close_idle(&self) {
        self.pool.close_idle().await;
        self.pool.feedback.end_of_pass();
    }

    fn learned(&self) -> Option<Learned> {
        Some(self.pool.feedback.learned())
    }
}
