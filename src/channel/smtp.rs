//! SMTP: a small pool of lettre connections over sockets of our own, with TCP_NODELAY,
//! each connection driven by a task of its own.
//!
//! lettre writes a message's body and its closing `\r\n.\r\n` separately. Without
//! TCP_NODELAY the kernel holds the five-byte terminator until the body is
//! acknowledged, and the server delays that acknowledgement (it is waiting for the rest
//! of the data): about 40 ms lost per message and per connection on Linux, whatever the
//! server's speed. lettre's own pool gives no way to set the option, so the connections
//! here are made from our own sockets and handed to lettre's SMTP client, which still
//! does every protocol step (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA).
//!
//! Senders queue finished messages; `max_connections` tasks take them in order and
//! answer each sender with the server's reply. Where the server offers PIPELINING
//! (RFC 2920), MAIL, RCPT and DATA are written together, and a task with more messages
//! waiting writes each body in one go with the next message's MAIL, RCPT and DATA (the
//! RFC allows message content first in a group): one round trip a message.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::email::one_line;
use super::feedback::{AfterRefusal, Feedback, Learned, Slot};
use super::{DeliveryError, EmailTransport};
use crate::config::{PasswordSource, SmtpConfig};

/// A connection idle longer than this is closed instead of reused (servers drop idle
/// clients after a few minutes; Postfix after 300 s).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A connection idle longer than this is checked with NOOP before it carries a message.
/// Under load connections come back within milliseconds and skip the round trip.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// SMTP with at most `max_connections` connections, each message under one deadline
/// from the moment a connection task takes it (connecting included).
pub struct SmtpOutbox {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Item>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    max_connections: usize,
}

/// What the connection tasks share.
struct Shared {
    server: Server,
    timeout: Duration,
    /// How many connections the server takes, and how fast.
    feedback: Arc<Feedback>,
    idle: Mutex<Vec<(Connection, Instant)>>,
    /// Messages waiting for a connection. A task without work holds the lock while it
    /// waits, so a busy task finds the lock free only when every task is busy.
    waiting: tokio::sync::Mutex<mpsc::Receiver<Item>>,
}

/// A message waiting for a connection, and where its outcome goes.
struct Item {
    mail: Outgoing,
    answer: oneshot::Sender<Result<String, DeliveryError>>,
}

/// A message taken by a connection task, and when its time is up.
struct Taken {
    item: Item,
    deadline: Instant,
    /// Times the message started again because of its connection, not of itself.
    restarts: u8,
}

/// Where a connection stands with a message.
enum Step {
    /// Nothing written yet.
    Start(Taken),
    /// MAIL, RCPT and DATA accepted: the body is next.
    Body(Taken),
}

/// A message as a connection writes it, prepared in its sender's task.
struct Outgoing {
    envelope: lettre::address::Envelope,
    email: Vec<u8>,
    /// MAIL, each RCPT and DATA, as one write.
    commands: String,
    /// The DATA block (dot-stuffed and ended), if the message is UTF-8.
    block: Option<String>,
    eight_bit: bool,
    ascii_addresses: bool,
}

/// A connection, and whether its server takes MAIL, RCPT and DATA in one write.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
    /// Its place in the window of connections the server takes.
    _slot: Slot,
}

/// Why a connection could not be opened.
enum Opening {
    /// The server refused the connection itself (refused, 421 at the greeting, too
    /// many connections): about the client, not the message.
    Refused(String),
    /// A setup failure (credentials, TLS) or anything else no retry here can mend.
    Failed(DeliveryError),
}

/// Times a message starts again on another connection before its failure is its own.
const MAX_RESTARTS: u8 = 3;
/// Times a message waits out the server's rate limit before its refusal is its own.
const MAX_RATE_RESTARTS: u8 = 12;

/// Why a step failed, and whether the connection can carry on.
struct Failed {
    error: DeliveryError,
    /// The server answered with a reply code and did not close: the conversation is
    /// still in step.
    in_step: bool,
    /// The server refused for its rate limit (a 4.7.x reply): about the client.
    rate_limit: bool,
    /// The connection failed or closed (421, timeout): the message was not refused.
    connection_lost: bool,
}

/// Where and how to connect.
struct Server {
    host: String,
    port: u16,
    security: Security,
    tls: Option<TlsParameters>,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpOutbox {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<SmtpOutbox> {
        let url =
            SmtpUrl::parse(&config.url).map_err(|m| anyhow::anyhow!("email.smtp.url: {m}"))?;
        let tls = match url.security {
            Security::None => None,
            _ => {
                let mut builder = TlsParameters::builder(url.host.clone());
                if let Some(ca) = &config.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| anyhow::anyhow!("email.smtp.ca_file {}: {e}", ca.display()))?;
                    builder = builder.add_root_certificate(Certificate::from_pem(&pem)?);
                }
                Some(builder.build_rustls()?)
            }
        };
        let credentials = match &config.username {
            None => None,
            Some(user) => {
                let password = match &config.password {
                    Some(PasswordSource::File(path)) => std::fs::read_to_string(path)
                        .map_err(|e| {
                            anyhow::anyhow!("email.smtp.password_file {}: {e}", path.display())
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                    Some(PasswordSource::Env(var)) => std::env::var(var).map_err(|_| {
                        anyhow::anyhow!("email.smtp.password_env: ${var} is not set")
                    })?,
                    None => String::new(),
                };
                Some(Credentials::new(user.clone(), password))
            }
        };
        let max_connections = (config.max_connections as usize).max(1);
        let (queue, waiting) = mpsc::channel(64);
        Ok(SmtpOutbox {
            shared: Arc::new(Shared {
                server: Server {
                    host: url.host,
                    port: url.port,
                    security: url.security,
                    tls,
                    hello: ClientId::default(),
                    credentials,
                },
                timeout: config.timeout,
                feedback: Arc::new(Feedback::new((config.max_connections as usize).max(1))),
                idle: Mutex::new(Vec::new()),
                waiting: tokio::sync::Mutex::new(waiting),
            }),
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
            workers.push(tokio::spawn(work(self.shared.clone())));
        }
    }
}

/// A connection task: takes queued messages until the outbox is dropped.
async fn work(shared: Arc<Shared>) {
    loop {
        let item = shared.waiting.lock().await.recv().await;
        let Some(item) = item else { return };
        shared.session(Taken::new(item, shared.timeout)).await;
    }
}

impl Taken {
    fn new(item: Item, timeout: Duration) -> Taken {
        Taken {
            item,
            deadline: Instant::now() + timeout,
            restarts: 0,
        }
    }

    /// The message again, to start over (its deadline is set anew when it starts).
    fn again(self) -> Taken {
        Taken {
            restarts: self.restarts + 1,
            ..self
        }
    }
}

impl Shared {
    /// Carries `first`, and the messages that queue up behind it meanwhile, over one
    /// connection. Each outcome is answered once the connection's fate is settled, so
    /// that when the last sender hears back, its connection is idle (or closed).
    async fn session(&self, first: Taken) {
        let mut connection = None;
        let mut answers = Vec::new();
        let mut step = Some(Step::Start(first));
        while let Some(current) = step.take() {
            step = match current {
                Step::Start(taken) => self.start(&mut connection, taken, &mut answers).await,
                Step::Body(taken) => self.body(&mut connection, taken, &mut answers).await,
            };
            if step.is_none() {
                step = self.ready().map(Step::Start);
            }
            if step.is_none()
                && let Some(connection) = connection.take()
                && let Ok(mut idle) = self.idle.lock()
            {
                idle.push((connection, Instant::now()));
            }
            for (answer, result) in answers.drain(..) {
                let _ = answer.send(result);
            }
        }
    }

    /// A queued message, if one is waiting and every connection task is busy.
    fn ready(&self) -> Option<Taken> {
        let item = self.waiting.try_lock().ok()?.try_recv().ok()?;
        Some(Taken::new(item, self.timeout))
    }

    /// Opens `taken`'s transaction (MAIL, RCPT and DATA in one write), or, where the
    /// server or the message rules that out, sends it by lettre's whole exchange.
    async fn start(
        &self,
        connection: &mut Option<Connection>,
        taken: Taken,
        answers: &mut Vec<Answer>,
    ) -> Option<Step> {
        // Its sender stopped waiting (the pass was cancelled): it is not sent.
        if taken.item.answer.is_closed() {
            return None;
        }
        self.feedback.pace().await;
        // Waiting for a connection or for the server's pace is not the message's time.
        let taken = Taken {
            deadline: Instant::now() + self.timeout,
            ..taken
        };
        let deadline = taken.deadline;
        let conn = match connection {
            Some(conn) => conn,
            None => match self.checkout().await {
                Ok(conn) => connection.insert(conn),
                Err(error) => {
                    answers.push((taken.item.answer, Err(error)));
                    return None;
                }
            },
        };
        let mail = &taken.item.mail;
        if !conn.pipelines(mail) {
            // lettre's own exchange, which also says why a message cannot go, and
            // closes the connection after any failed step.
            let result = self
                .within(deadline, conn.smtp.send(&mail.envelope, &mail.email))
                .await;
            return match result {
                Ok(reply) => {
                    self.feedback.delivered();
                    answers.push((taken.item.answer, Ok(reply_text(reply))));
                    None
                }
                Err(failed) => {
                    *connection = None;
                    // The data may have reached the server: only a refusal starts again.
                    let failed = Failed {
                        connection_lost: false,
                        ..failed
                    };
                    self.refused_message(taken, failed, answers)
                }
            };
        }
        match self.within(deadline, conn.open(mail)).await {
            Ok(()) => Some(Step::Body(taken)),
            Err(failed) => {
                if !(failed.in_step && conn.reset(deadline).await) {
                    close(connection, deadline).await;
                }
                self.refused_message(taken, failed, answers)
            }
        }
    }

    /// A refusal of `taken` before or after its data: a rate limit or a lost
    /// connection starts it again (after the server's pause); anything else is the
    /// message's own outcome.
    fn refused_message(
        &self,
        taken: Taken,
        failed: Failed,
        answers: &mut Vec<Answer>,
    ) -> Option<Step> {
        let waiting = !taken.item.answer.is_closed();
        if waiting && failed.rate_limit && taken.restarts < MAX_RATE_RESTARTS {
            self.feedback.rate_limited(&failed.error.to_string());
            return Some(Step::Start(taken.again()));
        }
        if waiting && failed.connection_lost && taken.restarts < MAX_RESTARTS {
            return Some(Step::Start(taken.again()));
        }
        answers.push((taken.item.answer, Err(failed.error)));
        None
    }

    /// Writes `taken`'s body, with the next waiting message's MAIL, RCPT and DATA
    /// behind it when that message can be pipelined, and reads the body's reply (then
    /// the next message's replies).
    async fn body(
        &self,
        connection: &mut Option<Connection>,
        taken: Taken,
        answers: &mut Vec<Answer>,
    ) -> Option<Step> {
        let Some(conn) = connection.as_mut() else {
            answers.push((
                taken.item.answer,
                Err(DeliveryError::Transient("connection lost".into())),
            ));
            return None;
        };
        let deadline = taken.deadline;
        let mail = &taken.item.mail;
        let mut next = self.ready();
        let behind = next.take_if(|n| {
            mail.block.is_some()
                && !n.item.answer.is_closed()
                && conn.pipelines(&n.item.mail)
                && self.feedback.may_start_now()
        });
        let written = match (&mail.block, &behind) {
            (Some(block), Some(behind)) => {
                let mut write =
                    String::with_capacity(block.len() + behind.item.mail.commands.len());
                write.push_str(block);
                write.push_str(&behind.item.mail.commands);
                self.within(deadline, conn.smtp.command(write)).await
            }
            (Some(block), None) => {
                self.within(deadline, conn.smtp.command(block.as_str()))
                    .await
            }
            // Not UTF-8: lettre's own writing of the body.
            (None, _) => self.within(deadline, conn.smtp.message(&mail.email)).await,
        };
        let in_step = match &written {
            Ok(_) => true,
            Err(failed) => failed.in_step,
        };
        if written.is_ok() {
            self.feedback.delivered();
        }
        // A refusal after the data is the message's own (a rate limit there too: the
        // server has seen the whole message, and only this reply says it was not taken).
        answers.push((
            taken.item.answer,
            written.map(reply_text).map_err(|f| f.error),
        ));
        if !in_step {
            close(connection, deadline).await;
            // The next message's data was never sent: it starts again, on a new
            // connection. (A failed start is not tried again.)
            return behind.or(next).map(Step::Start);
        }
        let Some(behind) = behind else {
            return next.map(Step::Start);
        };
        let replies = self
            .within(behind.deadline, conn.replies(&behind.item.mail, 0))
            .await;
        match replies {
            Ok(()) => Some(Step::Body(behind)),
            Err(failed) => {
                let kept = failed.in_step
                    && match connection.as_mut() {
                        Some(conn) => conn.reset(behind.deadline).await,
                        None => false,
                    };
                if !kept {
                    close(connection, behind.deadline).await;
                }
                // Refused before its data, or its connection failed first: a rate limit
                // or a lost connection starts it again.
                self.refused_message(behind, failed, answers)
            }
        }
    }

    /// Runs one step of the conversation before `deadline`.
    async fn within<T>(
        &self,
        deadline: Instant,
        step: impl Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, Failed> {
        match tokio::time::timeout_at(deadline.into(), step).await {
            Err(_) => Err(Failed {
                error: timed_out(self.timeout),
                in_step: false,
                rate_limit: false,
                connection_lost: true,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                // 421: the server is closing the connection.
                let in_step = e.status().is_some_and(|code| code.to_string() != "421");
                Err(Failed {
                    in_step,
                    rate_limit: is_rate_limit(&e),
                    connection_lost: !in_step,
                    error: classify(e),
                })
            }
        }
    }

    /// The most recently used idle connection that still works, or a new one when the
    /// server's window has room. A refused connection shrinks the window and the
    /// message waits for one that works; when none can be had, sending pauses.
    async fn checkout(&self) -> Result<Connection, DeliveryError> {
        loop {
            if let Some(reason) = self.feedback.down() {
                return Err(DeliveryError::Paused(reason));
            }
            if let Some(connection) = self.idle_connection().await {
                return Ok(connection);
            }
            let Some(slot) = self.feedback.try_open() else {
                self.feedback.changed().await;
                continue;
            };
            let opened =
                tokio::time::timeout(self.timeout, self.server.connect(self.timeout, slot))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Opening::Refused(format!(
                            "no greeting within {}s",
                            self.timeout.as_secs()
                        )))
                    });
            match opened {
                Ok(connection) => {
                    self.feedback.connected();
                    return Ok(connection);
                }
                Err(Opening::Failed(error)) => return Err(error),
                Err(Opening::Refused(reason)) => match self.feedback.refused(&reason) {
                    AfterRefusal::Wait => self.feedback.changed().await,
                    AfterRefusal::RetryAfter(wait) => tokio::time::sleep(wait).await,
                    AfterRefusal::Down(reason) => return Err(DeliveryError::Paused(reason)),
                },
            }
        }
    }

    /// The most recently used idle connection that still works.
    async fn idle_connection(&self) -> Option<Connection> {
        loop {
            let (mut connection, since) = self.idle.lock().ok().and_then(|mut idle| idle.pop())?;
            let idle_for = since.elapsed();
            let check = Instant::now() + self.timeout;
            if idle_for < CHECK_AFTER
                || (idle_for < IDLE_LIMIT
                    && tokio::time::timeout_at(check.into(), connection.smtp.test_connected())
                        .await
                        .unwrap_or(false))
            {
                return Some(connection);
            }
            let _ = tokio::time::timeout_at(check.into(), connection.smtp.abort()).await;
        }
    }
}

/// A message's outcome, for its sender.
type Answer = (
    oneshot::Sender<Result<String, DeliveryError>>,
    Result<String, DeliveryError>,
);

fn timed_out(timeout: Duration) -> DeliveryError {
    DeliveryError::Transient(format!("timed out after {}s", timeout.as_secs()))
}

/// Ends a connection that cannot go on (QUIT if the server still listens).
async fn close(connection: &mut Option<Connection>, deadline: Instant) {
    if let Some(mut connection) = connection.take() {
        let _ = tokio::time::timeout_at(deadline.into(), connection.smtp.abort()).await;
    }
}

/// The server's reply, on one line.
fn reply_text(response: Response) -> String {
    format!(
        "{} {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    )
}

impl Server {
    /// Opens a connection in `slot`: TCP, the greeting, STARTTLS, EHLO and AUTH.
    async fn connect(&self, timeout: Duration, slot: Slot) -> Result<Connection, Opening> {
        let unreachable = |e: io::Error| {
            Opening::Refused(format!(
                "cannot connect to {}:{}: {e}",
                self.host, self.port
            ))
        };
        // A setup failure (TLS, credentials) stops sending; any other failure before
        // the first message is the server turning the connection away.
        let refused = |e: SmtpError| match classify(e) {
            DeliveryError::Paused(reason) => Opening::Failed(DeliveryError::Paused(reason)),
            other => Opening::Refused(other.to_string()),
        };
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unreachable(io::ErrorKind::TimedOut.into()))?
            .map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let mut connection = match (&self.security, &self.tls) {
            (Security::Implicit, Some(tls)) => {
                let peer = tcp.peer_addr().map_err(unreachable)?;
                #[allow(deprecated)]
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream
                    .upgrade_tls(tls.clone())
                    .await
                    .map_err(|e| Opening::Failed(classify(e)))?;
                let stream = TlsStream {
                    inner: tokio_util::compat::FuturesAsyncReadCompatExt::compat(stream),
                    peer,
                };
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(refused)?;
        let tls = match (&self.security, &self.tls) {
            (Security::Opportunistic, Some(tls)) if connection.can_starttls() => Some(tls),
            (Security::Required, Some(tls)) => Some(tls),
            _ => None,
        };
        if let Some(tls) = tls {
            connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(|e| Opening::Failed(classify(e)))?;
        }
        let encrypted = tls.is_some() || self.security == Security::Implicit;
        if self.credentials.is_some() && !encrypted {
            connection.abort().await;
            return Err(Opening::Failed(DeliveryError::Paused(format!(
                "{}:{} offers no STARTTLS, and tickler never sends the SMTP password without TLS; \
                 use the server's STARTTLS port, or smtps://",
                self.host, self.port
            ))));
        }
        // lettre's client keeps no record of PIPELINING: the server is asked again (a
        // repeated EHLO is allowed, and comes before AUTH).
        let pipelining = match connection.command(Ehlo::new(self.hello.clone())).await {
            Ok(reply) => reply
                .message()
                .any(|line| line.split_whitespace().next() == Some("PIPELINING")),
            Err(e) => {
                connection.abort().await;
                return Err(refused(e));
            }
        };
        if let Some(credentials) = &self.credentials {
            let mechanisms = [Mechanism::Plain, Mechanism::Login];
            if let Err(e) = connection.auth(&mechanisms, credentials).await {
                connection.abort().await;
                return Err(Opening::Failed(classify(e)));
            }
        }
        Ok(Connection {
            smtp: connection,
            pipelining,
            _slot: slot,
        })
    }
}

impl Connection {
    /// Whether `mail` can go pipelined: the server offers PIPELINING, the addresses are
    /// ASCII, and 8-bit text only where the server takes 8BITMIME.
    fn pipelines(&self, mail: &Outgoing) -> bool {
        self.pipelining
            && mail.ascii_addresses
            && (!mail.eight_bit
                || self
                    .smtp
                    .server_info()
                    .supports_feature(Extension::EightBitMime))
    }

    /// Writes MAIL, RCPT and DATA at once and reads their replies.
    async fn open(&mut self, mail: &Outgoing) -> Result<(), SmtpError> {
        let first = self.smtp.command(mail.commands.as_str()).await;
        if first.as_ref().is_err_and(|e| e.status().is_none()) {
            return first.map(|_| ());
        }
        let rest = self.replies(mail, 1).await;
        first.and(rest).map(|_| ())
    }

    /// Reads the replies to `mail`'s MAIL, RCPTs and DATA, in order, after the first
    /// `read` of them: all of them, so that the conversation stays in step after a
    /// refusal; the first refusal is the result.
    async fn replies(&mut self, mail: &Outgoing, read: usize) -> Result<(), SmtpError> {
        let mut result = Ok(());
        for _ in read..mail.envelope.to().len() + 2 {
            match self.smtp.read_response().await {
                Ok(_) => {}
                // No reply at all: the connection is gone.
                Err(e) if e.status().is_none() => return Err(e),
                Err(e) => result = result.and(Err(e)),
            }
        }
        result
    }

    /// Ends a refused transaction with RSET, so that the connection can carry the next
    /// message; false when the server does not take it.
    async fn reset(&mut self, deadline: Instant) -> bool {
        let rset = self.smtp.command(lettre::transport::smtp::commands::Rset);
        matches!(
            tokio::time::timeout_at(deadline.into(), rset).await,
            Ok(Ok(_))
        )
    }
}

impl Outgoing {
    fn new(message: &Message) -> Outgoing {
        let envelope = message.envelope().clone();
        let email = message.formatted();
        let eight_bit = !email.is_ascii();
        let ascii_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        let parameters = if eight_bit {
            vec![MailParameter::Body(MailBodyParameter::EightBitMime)]
        } else {
            Vec::new()
        };
        let mut commands = Mail::new(envelope.from().cloned(), parameters).to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        commands.push_str(&Data.to_string());
        let block = String::from_utf8(data_block(&email)).ok();
        Outgoing {
            envelope,
            email,
            commands,
            block,
            eight_bit,
            ascii_addresses,
        }
    }
}

/// A message as DATA carries it: a `.` that starts a line doubled (RFC 5321 4.5.2),
/// then the end of data, `CRLF.CRLF` (after the message's own last line break, as
/// lettre sends it).
fn data_block(email: &[u8]) -> Vec<u8> {
    let mut block = Vec::with_capacity(email.len() + 64);
    if email.first() == Some(&b'.') {
        block.push(b'.');
    }
    // Copied between the lines that start with a dot, each such dot doubled.
    let mut copied = 0;
    for at in memchr::memmem::find_iter(email, b"\r\n.") {
        block.extend_from_slice(&email[copied..at + 3]);
        block.push(b'.');
        copied = at + 3;
    }
    block.extend_from_slice(&email[copied..]);
    block.extend_from_slice(b"\r\n.\r\n");
    block
}

/// A refusal for the client's sending rate: a 4xx reply with an enhanced status of
/// 4.7.x (Postfix: `450 4.7.1 Error: too much mail`), or one that says so in words.
fn is_rate_limit(e: &SmtpError) -> bool {
    let transient = e
        .status()
        .is_some_and(|code| code.to_string().starts_with('4'));
    let text = e.to_string().to_ascii_lowercase();
    transient
        && (text.contains(" 4.7.")
            || text.contains("too much mail")
            || text.contains("rate limit")
            || text.contains("too many messages"))
}

/// What a failure means for the send: pause everything, give up, or retry later.
fn classify(e: lettre::transport::smtp::Error) -> DeliveryError {
    if is_setup_failure(&e) {
        DeliveryError::Paused(error_text(&e))
    } else if e.is_permanent() {
        DeliveryError::Permanent(error_text(&e))
    } else {
        DeliveryError::Transient(error_text(&e))
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
        let idle = self
            .shared
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        // A server that does not answer QUIT must not hold the pass up.
        for (mut connection, _) in idle {
            let _ = tokio::time::timeout(self.shared.timeout, connection.smtp.quit()).await;
        }
        self.shared.feedback.end_of_pass();
    }

    fn learned(&self) -> Option<Learned> {
        Some(self.shared.feedback.learned())
    }
}

/// An implicit-TLS stream as lettre's client takes it.
#[derive(Debug)]
struct TlsStream {
    #[allow(deprecated)]
    inner: tokio_util::compat::Compat<lettre::transport::smtp::client::AsyncNetworkStream>,
    peer: SocketAddr,
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

/// Failures that no message can get past: authentication refused (530, 534, 535, 538)
/// or a TLS handshake that failed.
fn is_setup_failure(e: &lettre::transport::smtp::Error) -> bool {
    let auth = e
        .status()
        .map(|c| c.to_string())
        .is_some_and(|c| ["530", "534", "535", "538"].contains(&c.as_str()));
    auth || e.is_tls() || causes(e).any(is_tls_error)
}

/// rustls reports a failed handshake inside an I/O error.
fn is_tls_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<rustls::Error>()
        || cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<rustls::Error>())
}

fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// lettre's error with its causes, on one line, each said once, and what to do about
/// a certificate rustls refused.
fn error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut text = String::new();
    for cause in causes(e) {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    if let Some(advice) = certificate_advice(&text) {
        text.push_str(" (");
        text.push_str(advice);
        text.push(')');
    }
    one_line(&text)
}

/// What to do about the certificate problems rustls names in its own words.
fn certificate_advice(text: &str) -> Option<&'static str> {
    [
        (
            "CaUsedAsEndEntity",
            "the server presents a CA certificate as its own: put the CA that signed the \
             server's certificate in email.smtp.ca_file, or give the server a certificate \
             made with CA:FALSE",
        ),
        (
            "UnknownIssuer",
            "the certificate is not signed by a CA tickler trusts: add that CA to \
             email.smtp.ca_file",
        ),
        (
            "NotValidForName",
            "the certificate does not name the host in email.smtp.url: use the name it was \
             made for",
        ),
        ("Expired", "the server's certificate has expired"),
    ]
    .into_iter()
    .find(|(marker, _)| text.contains(marker))
    .map(|(_, advice)| advice)
}

#[derive(Debug, PartialEq, Eq)]
enum Security {
    None,
    Opportunistic,
    Required,
    Implicit,
}

/// `smtp://host:port` (opportunistic STARTTLS), `smtp://host:port?tls=required`,
/// `smtp://host:port?tls=none`, `smtps://host:port` (implicit TLS).
#[derive(Debug)]
struct SmtpUrl {
    host: String,
    port: u16,
    security: Security,
}

impl SmtpUrl {
    fn parse(url: &str) -> Result<SmtpUrl, String> {
        let (implicit, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("smtp://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` must start with smtp:// or smtps://"));
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("`{p}` is not a port"))?,
            ),
            _ => (authority, if implicit { 465 } else { 25 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let security = match (implicit, query) {
            (true, _) => Security::Implicit,
            (false, "") => Security::Opportunistic,
            (false, "tls=required") => Security::Required,
            (false, "tls=none") => Security::None,
            (false, other) => {
                return Err(format!(
                    "unknown option `{other}`; use tls=required or tls=none"
                ));
            }
        };
        Ok(SmtpUrl {
            host: host.to_owned(),
            port,
            security,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_doubles_a_leading_dot_and_ends_with_a_lone_one() {
        assert_eq!(
            data_block(b".top\r\nmid.dle\r\n..two\r\n.\r\nlf\n.not\r\n"),
            b"..top\r\nmid.dle\r\n...two\r\n..\r\nlf\n.not\r\n\r\n.\r\n"
        );
    }

    #[test]
    fn smtp_urls() {
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.security),
            ("127.0.0.1", 2525, Security::Opportunistic)
        );
        let u = SmtpUrl::parse("smtp://mail.example.com:587?tls=required").unwrap();
        assert_eq!((u.port, u.security), (587, Security::Required));
        let u = SmtpUrl::parse("smtps://mail.example.com").unwrap();
        assert_eq!((u.port, u.security), (465, Security::Implicit));
        assert!(SmtpUrl::parse("http://x").is_err());
        assert!(SmtpUrl::parse("smtp://x:99999").is_err());
    }
}
