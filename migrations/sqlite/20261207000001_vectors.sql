-- Sentence vectors for matching by meaning (src/embed), SQLite. Times are Unix milliseconds.
--
-- paper_vectors:    one per paper, from its title and abstract, computed once when the paper is
--                   first stored (fetch), never again on restart.
-- interest_vectors: one per distinct interest clause (`embed::interest_key`: the phrase as the
--                   model reads it), shared by every subscriber who wrote it.
-- model:  which model made the vector (`embed::MODEL_NAME`); vectors of another model are
--         never compared with these and are recomputed by `paperboy db embed --again`.
-- vector: 384 half-precision floats, little-endian (768 bytes).
CREATE TABLE paper_vectors (
    paper_id   TEXT PRIMARY KEY REFERENCES papers (id) ON DELETE CASCADE,
    model      TEXT NOT NULL,
    vector     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE interest_vectors (
    interest   TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    vector     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
