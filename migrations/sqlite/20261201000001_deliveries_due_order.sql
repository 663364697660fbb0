-- The send job claims due deliveries in (next_attempt_at, id) order, one status at a time
-- (store::dialect::claim_due). With id in the index each claim reads only the rows it takes;
-- without it PostgreSQL sorted every row that shared a next_attempt_at (a whole day's plan).
CREATE INDEX deliveries_due_order ON deliveries (status, next_attempt_at, id);
DROP INDEX deliveries_due;
