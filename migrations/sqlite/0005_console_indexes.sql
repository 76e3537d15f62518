-- What the console's pages read at 1,000,000 contacts and 5,000,000 send-log rows:
-- counts per follow-up and status over a time window as index ranges, and customers
-- found by the start of a first name, last name or email. A large contacts import
-- drops the three and builds them again at its end.
CREATE INDEX sends_by_cadence ON sends (cadence, status, updated_at);
CREATE INDEX contacts_by_first_name ON contacts (lower(first_name));
CREATE INDEX contacts_by_last_name ON contacts (lower(last_name));
CREATE INDEX contacts_by_email ON contacts (lower(email));
