-- The leader lease: one row per job family ('scheduler' = fetch and plan). The instance named
-- in `holder` runs those jobs until `expires_at` (Unix ms) unless it renews. `generation`
-- grows by one at every take and is the fencing token planning writes check (store/leader.rs).
CREATE TABLE leader_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    generation BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
