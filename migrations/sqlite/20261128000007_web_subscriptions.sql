-- What the web pages need on a subscriber (SQLite). Times are Unix milliseconds.
--
-- confirm_nonce: the one confirmation link that currently works for this address (its token
--   carries the same value); cleared when used, replaced when a new link is mailed, so only one
--   confirmation is ever pending per address and each link works once.
-- confirm_sent_at / link_sent_at: when a confirmation or a manage link was last mailed, for the
--   per-address resend cooldown (kept in the database so that it holds across restarts and
--   across several instances).
ALTER TABLE subscribers ADD COLUMN confirm_nonce TEXT;
ALTER TABLE subscribers ADD COLUMN confirm_sent_at INTEGER;
ALTER TABLE subscribers ADD COLUMN link_sent_at INTEGER;
