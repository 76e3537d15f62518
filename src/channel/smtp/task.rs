//! A connection task: it takes queued messages and carries each over its connection,
//! step by step, pipelining the next message behind the current one's body while more
//! wait. Each message's steps run under its deadline; a refusal about the connection
//! or the server's pace starts the message again instead of failing it.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use lettre::transport::smtp::Error as SmtpError;

use super::connect::Connection;
use super::pool::{Answer, Pool, Taken};
use super::reply::{Failed, reply_text, stopped};
use crate::channel::DeliveryError;

/// Where a connection stands with a message.
enum Step {
    /// Nothing written yet.
    Start(Taken),
    /// MAIL, RCPT and DATA accepted: the body is next.
    Body(Taken),
}

/// A connection task: takes queued messages until the outbox is dropped or sending
/// shuts down.
pub(super) async fn work(pool: Arc<Pool>) {
    loop {
        let next = tokio::select! {
            biased;
            () = pool.stop.cancelled() => break,
            next = pool.next() => next,
        };
        let Some(taken) = next else {
            return;
        };
        pool.session(taken).await;
    }
    pool.wind_down().await;
}

impl Pool {
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
            {
                self.park(connection);
            }
            for (answer, result) in answers.drain(..) {
                let _ = answer.send(result);
            }
        }
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
        // Nothing of it is written yet: after a shutdown it stays unsent.
        if self.stop.is_cancelled() || !self.unless_stopped(self.feedback.pace()).await {
            answers.push((taken.item.answer, Err(stopped())));
            return None;
        }
        // Waiting for a connection or for the server's pace is not the message's time.
        let taken = taken.starting(self.timeout);
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
            let result = self.within(deadline, conn.send(mail)).await;
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
                    self.restart(taken, failed, answers).map(Step::Start)
                }
            };
        }
        match self.within(deadline, conn.open(mail)).await {
            Ok(()) => Some(Step::Body(taken)),
            Err(failed) => {
                if !(failed.in_step && conn.reset(deadline).await) {
                    close(connection, deadline).await;
                }
                self.restart(taken, failed, answers).map(Step::Start)
            }
        }
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
            mail.groups_with_next()
                && !n.item.answer.is_closed()
                && conn.pipelines(&n.item.mail)
                && self.feedback.may_start_now()
        });
        let written = self
            .within(
                deadline,
                conn.body(mail, behind.as_ref().map(|b| &b.item.mail)),
            )
            .await;
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
                self.restart(behind, failed, answers).map(Step::Start)
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
            Err(_) => Err(Failed::timed_out(self.timeout)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failed::from_error(e)),
        }
    }
}

/// Ends a connection that cannot go on (QUIT if the server still listens).
async fn close(connection: &mut Option<Connection>, deadline: Instant) {
    if let Some(mut connection) = connection.take() {
        let _ = tokio::time::timeout_at(deadline.into(), connection.smtp.abort()).await;
    }
}
