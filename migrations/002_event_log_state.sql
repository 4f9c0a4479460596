-- Event-log bookkeeping that must outlive the rows it describes. Retention pruning and takedowns
-- delete events, yet the next relay seq must never fall back to a seq a consumer may have seen,
-- and replay must know how far retention has removed history (OutdatedCursor).
CREATE TABLE event_log_state (
  id              smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  -- highest seq ever deleted from `event` (pruning or takedown); the sequencer restarts above it
  max_deleted_seq bigint NOT NULL DEFAULT 0,
  -- every seq <= this may have been removed by retention (takedowns do not move it)
  pruned_through  bigint NOT NULL DEFAULT 0
);
INSERT INTO event_log_state (id) VALUES (1);
