-- A subscriber's profile beyond the interests query (SQLite). Times are Unix milliseconds.
-- One row per subscriber who set any of it; no row means an empty profile.
--
-- authors:       JSON array of followed author names; a new paper by one is always included.
-- categories:    JSON array of arXiv categories (cs.LG) or archives (cs).
-- category_mode: 'boost' (papers in the categories rank higher) or 'filter' (only those).
-- examples:      JSON array of arXiv ids whose text stands for "more like these".
-- The votes from the digest's feedback links stay in `feedback` (first migration).
CREATE TABLE subscriber_profiles (
    subscriber_id INTEGER PRIMARY KEY REFERENCES subscribers (id) ON DELETE CASCADE,
    authors       TEXT NOT NULL DEFAULT '[]',
    categories    TEXT NOT NULL DEFAULT '[]',
    category_mode TEXT NOT NULL DEFAULT 'boost' CHECK (category_mode IN ('boost', 'filter')),
    examples      TEXT NOT NULL DEFAULT '[]',
    updated_at    INTEGER NOT NULL
);
