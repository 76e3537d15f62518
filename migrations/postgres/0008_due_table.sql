-- Each contact's place in the due queue, in a narrow table of its own: a pass rewrites
-- these two instants for every contact it looks at, and a row of a few dozen bytes costs
-- a fraction of rewriting the whole contact (names, address, custom fields) to change them.
CREATE TABLE due (
    id           TEXT PRIMARY KEY NOT NULL,   -- the contact's
    next_due_at  BIGINT,                      -- earliest instant the planner must look again; NULL: never
    armed_at     BIGINT                       -- first tick that saw the contact
);
INSERT INTO due (id, next_due_at, armed_at)
    SELECT id, next_due_at, armed_at FROM contacts ORDER BY id;
-- Due contacts in (next_due_at, id) order, so that each page of a tick is a range scan.
CREATE INDEX due_next ON due (next_due_at, id) WHERE next_due_at IS NOT NULL;

DROP INDEX contacts_next_due;
ALTER TABLE contacts DROP COLUMN next_due_at;
ALTER TABLE contacts DROP COLUMN armed_at;
