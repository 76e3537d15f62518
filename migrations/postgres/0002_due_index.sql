-- Due contacts in (next_due_at, id) order, so that each page of a tick is a range scan.
DROP INDEX contacts_next_due;
CREATE INDEX contacts_next_due ON contacts (next_due_at, id) WHERE next_due_at IS NOT NULL;
