/**
 * Shared shapes of the broadcaster. The event-log store (src/store) is another module: this file
 * states the little the broadcaster needs from it.
 */

/** One persisted event, as handed to the broadcaster and as read back from the event log. */
export interface BroadcastFrame {
  /** Relay seq: strictly increasing across calls to `broadcast()`, safe integer, >= 1. */
  seq: number
  did: string
  /** Complete outbound bytes (DAG-CBOR header + body, body includes `seq`). Never mutated. */
  frame: Uint8Array
  /** Wall-clock ms when the event was sequenced. */
  time: number
  /**
   * Bytes in front of `frame` that belong to its allocation and nobody reads: when they fit the
   * WebSocket header, it is written there and the wire message is a view, not a copy.
   */
  headroom?: number
}

/**
 * What the broadcaster needs from the event log to serve cursors older than the ring.
 *
 * Contract:
 * - `readRange(afterSeq, limit)` resolves to at most `limit` frames with `seq > afterSeq`, in
 *   increasing seq order, excluding events hidden by a takedown. It must only return events that
 *   have already been passed to `Broadcaster.broadcast()` or are about to be (persist happens
 *   before broadcast), never events that will not be broadcast.
 *   An empty result means "nothing persisted after afterSeq": the broadcaster then continues from
 *   the ring.
 * - `prunedThrough()` is the retention low-water mark: every event with `seq <= prunedThrough()`
 *   may have been removed by retention pruning (0 when nothing was ever pruned). Synchronous
 *   because the cursor decision must happen in the same tick as the subscription (the store can
 *   keep this number in memory and update it after each prune batch). Takedown removals do not
 *   move it.
 */
export interface EventLogReader {
  readRange(afterSeq: number, limit: number): Promise<BroadcastFrame[]>
  prunedThrough(): number
}

/** Minimal logger (pino-compatible subset). */
export interface BroadcasterLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

export const noopLogger: BroadcasterLogger = {
  info() {},
  warn() {},
  debug() {},
}
