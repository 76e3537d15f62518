-- Each sent email as it was rendered (subject, text, HTML; deflated JSON), kept for the
-- console for `console.keep_messages` and pruned by the daemon by age.
CREATE TABLE kept_messages (
    send_id  INTEGER PRIMARY KEY,
    kept_at  INTEGER NOT NULL,
    body     BLOB NOT NULL
);
CREATE INDEX kept_messages_by_age ON kept_messages (kept_at);

-- The console's "send me a test": sent to the business's own address, recorded here and
-- never in the send log, so it does not count as the customer's occurrence.
CREATE TABLE test_sends (
    id          INTEGER PRIMARY KEY,
    contact_id  TEXT NOT NULL,
    cadence     TEXT NOT NULL,
    sent_to     TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    outcome     TEXT NOT NULL
);
