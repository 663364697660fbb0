-- paperboy's first schema (SQLite). All times are UTC, stored as Unix milliseconds.

CREATE TABLE papers (
    id            TEXT PRIMARY KEY,            -- canonical key: arXiv id without version, or doi:/url:
    title         TEXT NOT NULL,
    abstract      TEXT NOT NULL,
    authors       TEXT NOT NULL,               -- JSON array of names, in order
    categories    TEXT NOT NULL,               -- JSON array, primary first
    published_at  INTEGER,
    first_seen_at INTEGER NOT NULL,            -- when paperboy first stored it: what "new" means
    updated_at    INTEGER NOT NULL,
    upvotes       INTEGER,
    abstract_url  TEXT,
    pdf_url       TEXT,
    hf_url        TEXT,
    code_url      TEXT,
    project_url   TEXT,
    sources       TEXT NOT NULL                -- comma-separated source names that listed it
);
CREATE INDEX papers_first_seen ON papers (first_seen_at);

CREATE TABLE subscribers (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,        -- normalised
    status        TEXT NOT NULL CHECK (status IN ('pending','active','paused','unsubscribed','suspended')),
    interests     TEXT NOT NULL,
    frequency     TEXT NOT NULL DEFAULT 'daily',
    send_time     TEXT NOT NULL,               -- HH:MM local
    timezone      TEXT NOT NULL,               -- IANA name
    max_papers    INTEGER NOT NULL,
    token_version INTEGER NOT NULL DEFAULT 1,
    hard_bounces  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    confirmed_at  INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX subscribers_status ON subscribers (status);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    digest_date     TEXT NOT NULL,             -- the subscriber's local date, YYYY-MM-DD
    -- planned -> sending (leased) -> sent; or -> retry -> ... -> failed; 'empty' = nothing matched
    status          TEXT NOT NULL CHECK (status IN ('planned','sending','sent','retry','failed','empty')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    message_id      TEXT NOT NULL,             -- stable across resends
    last_error      TEXT,
    planned_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (subscriber_id, digest_date)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);

CREATE TABLE delivery_papers (
    delivery_id   INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    paper_id      TEXT NOT NULL REFERENCES papers (id),
    rank          INTEGER NOT NULL,
    score         REAL NOT NULL,
    reason        TEXT NOT NULL,               -- JSON: the explanation shown in the digest
    PRIMARY KEY (delivery_id, paper_id),
    UNIQUE (subscriber_id, paper_id)           -- invariant 2: no paper reaches a subscriber twice
);

CREATE TABLE feedback (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    paper_id      TEXT NOT NULL REFERENCES papers (id),
    vote          INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (subscriber_id, paper_id)
);

CREATE TABLE source_state (
    source          TEXT PRIMARY KEY,
    checkpoint      TEXT,                      -- the last date fetched completely, YYYY-MM-DD
    last_success_at INTEGER,
    last_error      TEXT,
    last_error_at   INTEGER
);
