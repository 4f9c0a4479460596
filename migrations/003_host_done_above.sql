-- Upstream seqs above a host's saved cursor that are already in the event log.
--
-- The cursor is the highest upstream seq below which every frame is persisted or dropped. Frames
-- for different DIDs finish on different workers, so a slow shard holds the cursor back while
-- later frames are already persisted. After a crash the host replays from the cursor: commits are
-- refused by the rev check, but #identity, #account and same-rev #sync events carry no ordering
-- state, so without this list they would be persisted (and delivered) a second time. Written in
-- the same transaction as `last_seq`, holding only those non-idempotent seqs; its length is bounded
-- by the frames in flight for the host.
ALTER TABLE host ADD COLUMN done_above bigint[] NOT NULL DEFAULT '{}';
