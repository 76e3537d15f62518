-- Addresses that get no more email (SPEC section 8), keyed by the normalised address:
-- the domain lower-cased, the local part as given. `report` is the report that caused
-- an entry, as received.
CREATE TABLE suppressions (
    address   TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    added_at  BIGINT NOT NULL,
    report    BYTEA
);
CREATE INDEX suppressions_by_time ON suppressions (added_at);

-- Transient failures reported for an address; enough of them in a week suppress it.
CREATE TABLE soft_bounces (
    address  TEXT NOT NULL,
    at       BIGINT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX soft_bounces_by_address ON soft_bounces (address, at);

-- Reports already acted on, by their Message-ID: a report read twice (a poll that
-- died before moving it) changes nothing the second time.
CREATE TABLE reports_seen (
    message_id  TEXT PRIMARY KEY,
    seen_at     BIGINT NOT NULL
);
