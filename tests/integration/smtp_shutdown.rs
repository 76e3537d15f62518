//! Shutting the SMTP transport down: its connection tasks finish the message under
//! way, close their connections with QUIT and end, and every message they did not send
//! comes back to its sender as not delivered.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tickler::channel::{DeliveryError, EmailTransport};
use tickler::config::{SmtpConfig, Transport};
use tokio_util::sync::CancellationToken;

use crate::smtp::{Behaviour, SmtpServer};

fn message(n: usize) -> lettre::Message {
    lettre::Message::builder()
        .from("hello@fjord.example".parse().expect("from"))
        .to(format!("c{n}@example.org").parse().expect("to"))
        .subject(format!("Message {n}"))
        .body(format!("Hello, number {n}.\r\n"))
        .expect("message")
}

/// Waits up to `limit` for `done`, failing with `what`.
async fn eventually(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let since = Instant::now();
    while !done() {
        assert!(since.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn cancelling_ends_the_connection_tasks_and_hands_back_what_was_not_sent() {
    let server = SmtpServer::start_with(Behaviour {
        pipelining: true,
        data_delay: Some(Duration::from_millis(300)),
        ..Behaviour::default()
    });
    let config = Transport::Smtp(SmtpConfig {
        url: server.url(),
        username: None,
        password: None,
        ca_file: None,
        max_connections: 2,
        timeout: Duration::from_secs(10),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let transport: Arc<dyn EmailTransport> =
            Arc::from(tickler::channel::transport(&config).expect("transport"));
        let token = CancellationToken::new();
        transport.shutdown_on(token.clone());
        let count = 30;
        let sends: Vec<_> = (0..count)
            .map(|n| {
                let transport = transport.clone();
                tokio::spawn(async move { transport.send(&message(n), "name").await })
            })
            .collect();
        // Cancelled while a message's data waits for the server's reply.
        let counters = server.counters.clone();
        eventually(
            Duration::from_secs(10),
            "no message reached the server",
            || counters.data_received.load(Ordering::SeqCst) > 0,
        )
        .await;
        token.cancel();

        let (mut sent, mut not_sent) = (0, 0);
        for send in sends {
            let outcome = tokio::time::timeout(Duration::from_secs(20), send)
                .await
                .expect("a send was never answered")
                .expect("a send panicked");
            match outcome {
                Ok(_) => sent += 1,
                Err(DeliveryError::Transient(reason)) => {
                    assert!(reason.contains("stopped"), "{reason}");
                    not_sent += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        tokio::time::timeout(Duration::from_secs(20), transport.stopped())
            .await
            .expect("the connection tasks did not end");

        let received = server.messages();
        assert_eq!(sent, received.len(), "sent is what the server took");
        assert!(sent >= 1, "the message under way was not finished");
        assert!(
            not_sent >= count / 2,
            "{not_sent} of {count} came back unsent"
        );
        let after = transport.send(&message(count), "name").await;
        assert!(
            matches!(&after, Err(DeliveryError::Transient(_))),
            "{after:?}"
        );

        // Every connection that carried a message was ended with QUIT.
        eventually(Duration::from_secs(5), "a connection is still open", || {
            counters.open.load(Ordering::SeqCst) == 0
        })
        .await;
        let connections: BTreeSet<usize> = received.iter().map(|m| m.connection).collect();
        assert_eq!(counters.quits.load(Ordering::SeqCst), connections.len());
    });
}
