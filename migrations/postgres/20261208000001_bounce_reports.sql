-- Bounces that arrived after the server took the message (PostgreSQL): one row per delivery a
-- delivery status notification (RFC 3464) reported on, read from the bounce mailbox
-- (src/bounces). Times are Unix milliseconds.
--
-- kind: 'hard' (a 5.x.x failure: counted as a 5xx at RCPT is) or 'soft' (4.x.x, or "delayed":
--       counted once mail.max_soft_bounces digests to the address bounced softly).
-- One row per delivery, so a report read twice (a crash before the mailbox was told) counts once.
CREATE TABLE bounce_reports (
    delivery_id   BIGINT PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('hard', 'soft')),
    status        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    received_at   BIGINT NOT NULL
);
CREATE INDEX bounce_reports_subscriber ON bounce_reports (subscriber_id, kind, received_at);
