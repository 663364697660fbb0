-- Hard bounces recorded on the subscriber (SQLite). Times are Unix milliseconds.
--
-- hard_bounces (from the first migration) counts 5xx answers to RCPT TO since the last
-- confirmation; at mail.max_hard_bounces the subscriber becomes 'suspended'.
-- last_bounce_at / last_bounce: when and what the server said the last time, so an operator
--   (and a re-confirmation page) can tell why mail stopped.
ALTER TABLE subscribers ADD COLUMN last_bounce_at INTEGER;
ALTER TABLE subscribers ADD COLUMN last_bounce TEXT;
