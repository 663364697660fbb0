-- Addresses in one normal form (issue 16, postgres): the domain in its ASCII (punycode) form,
-- lower-cased. The rewrite of existing rows is done in Rust after the SQL migrations
-- (store/addresses.rs), because only `EmailAddress::parse` knows the normal form.
--
-- data_migrations: one row per one-off rewrite of data done in Rust, taken before it starts
--   in the same transaction, so it runs once per database whichever instance starts first.
CREATE TABLE data_migrations (
    name       TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- address_collisions: a subscriber whose stored address, once normalised, is another
--   subscriber's address (kept_id, the one that now holds it). Its row is kept, with its
--   address as stored (if it held the normal form itself, which the unique key now gives to
--   the kept row, " (duplicate of subscriber N)" is appended); it was paused if it was active
--   or pending, so one mailbox gets one digest. stored_email / stored_status are what it had
--   before, for the operator to decide.
CREATE TABLE address_collisions (
    subscriber_id BIGINT PRIMARY KEY REFERENCES subscribers (id) ON DELETE CASCADE,
    kept_id       BIGINT NOT NULL,
    stored_email  TEXT NOT NULL,
    stored_status TEXT NOT NULL,
    found_at      BIGINT NOT NULL
);
