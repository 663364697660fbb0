-- Sentence vectors of abstracts, SQLite: the highlight of a paper picked by meaning alone is the
-- sentence of its abstract closest to the interest (src/embed: `Embedder::embed_papers`).
--
-- sentences: for each sentence of the abstract, its byte range in the abstract (start and end,
--            u32 little-endian) and its vector (384 half-precision floats, little-endian): 776
--            bytes a sentence (`embed::sentences_to_stored`). NULL for a paper embedded before
--            this column existed: it is shown with the abstract's opening, as before;
--            `paperboy db embed --again` computes them.
ALTER TABLE paper_vectors ADD COLUMN sentences BLOB;
