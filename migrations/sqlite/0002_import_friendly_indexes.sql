-- Indexes that a large import appends to instead of inserting at random places, and
-- that let a tick page through due contacts without scanning the rest.

-- Unarmed rows by arrival (all of one import share created_at, then rowid order), not
-- by contact id: `arm` only asks for `armed_at IS NULL`.
DROP INDEX contacts_unarmed;
CREATE INDEX contacts_unarmed ON contacts (created_at) WHERE armed_at IS NULL;
DROP INDEX events_unarmed;
CREATE INDEX events_unarmed ON events (created_at) WHERE armed_at IS NULL;

-- Due contacts in (next_due_at, id) order, so that each page of a tick is a range scan.
DROP INDEX contacts_next_due;
CREATE INDEX contacts_next_due ON contacts (next_due_at, id) WHERE next_due_at IS NOT NULL;
