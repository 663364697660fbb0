-- Sources beyond Hugging Face (issue 6): arXiv metadata on papers, which source saw which paper,
-- and per-source politeness and health state. All times are UTC, Unix milliseconds.

-- arXiv metadata, filled by the arXiv listing and API (a Hugging Face paper gets it by merge).
ALTER TABLE papers ADD COLUMN doi TEXT;
ALTER TABLE papers ADD COLUMN comment TEXT;
ALTER TABLE papers ADD COLUMN journal_ref TEXT;

-- One row per (paper, source that listed it): `paperboy papers` shows these. `papers.sources`
-- stays as the comma-joined summary older code reads.
CREATE TABLE paper_sources (
    paper_id      TEXT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    source        TEXT NOT NULL,               -- hf, arxiv, arxiv-api, or a [[sources.feeds]] name
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    announce_type TEXT,                        -- arXiv listing: new, cross, replace, replace-cross
    PRIMARY KEY (paper_id, source)
);
CREATE INDEX paper_sources_source ON paper_sources (source, first_seen_at);

-- Conditional GET validators of the source's listing URL, and what staleness needs.
ALTER TABLE source_state ADD COLUMN etag TEXT;
ALTER TABLE source_state ADD COLUMN last_modified TEXT;
ALTER TABLE source_state ADD COLUMN first_run_at BIGINT;      -- when this source first ran
ALTER TABLE source_state ADD COLUMN last_papers_at BIGINT;    -- last run that produced >= 1 paper
ALTER TABLE source_state ADD COLUMN last_fetched BIGINT;      -- papers in the last successful run
ALTER TABLE source_state ADD COLUMN last_skipped BIGINT;      -- unreadable items in that run
