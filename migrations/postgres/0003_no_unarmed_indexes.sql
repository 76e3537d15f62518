-- A pass arms a contact and its events as it reads them (a contact whose record or events
-- are new is due), so nothing looks for unarmed rows across the tables any more.
DROP INDEX contacts_unarmed;
DROP INDEX events_unarmed;
