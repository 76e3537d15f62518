-- tickler's store on PostgreSQL: contacts, their events, and the send log.
-- The same schema as migrations/sqlite, in PostgreSQL's types.
-- Instants are BIGINT seconds since the Unix epoch, UTC.

CREATE TABLE contacts (
    id               TEXT PRIMARY KEY NOT NULL,
    first_name       TEXT NOT NULL DEFAULT '',
    last_name        TEXT NOT NULL DEFAULT '',
    email            TEXT,
    address_line1    TEXT NOT NULL DEFAULT '',
    address_line2    TEXT NOT NULL DEFAULT '',
    city             TEXT NOT NULL DEFAULT '',
    region           TEXT NOT NULL DEFAULT '',
    postal_code      TEXT NOT NULL DEFAULT '',
    country          TEXT NOT NULL DEFAULT '',
    birthday         TEXT,
    timezone         TEXT,
    tags             TEXT NOT NULL DEFAULT '',      -- ';'-separated
    email_opt_out    BOOLEAN NOT NULL DEFAULT FALSE,
    postcard_opt_out BOOLEAN NOT NULL DEFAULT FALSE,
    fields           TEXT NOT NULL DEFAULT '{}',    -- JSON object of custom columns
    digest           TEXT NOT NULL,                 -- of the imported values, to skip no-op updates
    armed_at         BIGINT,                       -- first tick that saw the contact
    next_due_at      BIGINT,                       -- earliest instant the planner must look again; NULL: never
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX contacts_next_due ON contacts (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX contacts_unarmed ON contacts (id) WHERE armed_at IS NULL;

CREATE TABLE events (
    contact_id  TEXT NOT NULL,
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    fields      TEXT NOT NULL DEFAULT '{}',
    armed_at    BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (contact_id, id)
);
CREATE INDEX events_unarmed ON events (contact_id) WHERE armed_at IS NULL;

CREATE TABLE sends (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id      TEXT NOT NULL,
    cadence         TEXT NOT NULL,
    occurrence      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL,          -- pending | sent | retrying | failed | skipped
    reason          TEXT,                   -- why skipped, failed or retrying
    event_id        TEXT,                   -- the event behind the occurrence, for rendering
    due_at          BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,                -- retrying rows
    lease_until     BIGINT,                -- pending rows: claimed until then
    lease_owner     TEXT,
    message_id      TEXT NOT NULL,
    reply           TEXT,                   -- last SMTP reply, or the file written
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (contact_id, cadence, occurrence)
);
CREATE INDEX sends_retry ON sends (next_attempt_at) WHERE status = 'retrying';
CREATE INDEX sends_lease ON sends (lease_until) WHERE status = 'pending';
CREATE INDEX sends_updated ON sends (updated_at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
