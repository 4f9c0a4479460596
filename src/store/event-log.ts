// Reads of the event log for cursor replay, retention, and takedown hiding.
//
// Writes come only from the Sequencer. Deletions (retention, takedowns) record the highest seq
// they removed in event_log_state, so a restarted sequencer never hands out a seq that a consumer
// may already have seen, even when the newest events were the ones deleted.

import { Registry } from 'prom-client'
import type { Pool } from '../core/db.ts'
import type { Logger } from '../core/log.ts'
import { EventLogMetrics } from './metrics.ts'
import { EVENT_KIND_BY_CODE, type EventKind } from './sequencer.ts'

export interface StoredEvent {
  seq: number
  did: string
  kind: EventKind
  /** complete outbound frame bytes (with this seq); send as-is */
  frame: Buffer
  /** wall-clock ms when the event was sequenced */
  time: number
}

export interface EventLogOptions {
  db: Pool
  log: Logger
  registry?: Registry
  /** replay window; default 72 h */
  retentionMs?: number
  /** how often the retention pass runs; default 60 s; 0 disables the timer */
  pruneIntervalMs?: number
  /** rows per DELETE statement (each its own short transaction); default 5,000 */
  pruneBatchRows?: number
  /** pause between DELETE statements so pruning yields to ingest; default 5 ms */
  prunePauseMs?: number
  /** upper bound on rows one readAfter call returns; default 10,000 */
  maxReadLimit?: number
}

const READ_COLUMNS = `seq, did, kind, frame, round(extract(epoch FROM created_at) * 1000)::float8 AS time`

interface Row {
  seq: number
  did: string
  kind: number
  frame: Buffer
  time: number
}

function toStored(r: Row): StoredEvent {
  return { seq: r.seq, did: r.did, kind: EVENT_KIND_BY_CODE[r.kind]!, frame: r.frame, time: r.time }
}

export class EventLog {
  readonly name = 'event-log'
  readonly metrics: EventLogMetrics
  readonly retentionMs: number
  private readonly db: Pool
  private readonly log: Logger
  private readonly pruneIntervalMs: number
  private readonly pruneBatchRows: number
  private readonly prunePauseMs: number
  private readonly maxReadLimit: number
  private pruned = 0
  private timer?: NodeJS.Timeout
  private pruning?: Promise<number>
  private stopped = false

  constructor(opts: EventLogOptions) {
    this.db = opts.db
    this.log = opts.log
    this.retentionMs = opts.retentionMs ?? 72 * 3600_000
    this.pruneIntervalMs = opts.pruneIntervalMs ?? 60_000
    this.pruneBatchRows = Math.max(1, opts.pruneBatchRows ?? 5000)
    this.prunePauseMs = Math.max(0, opts.prunePauseMs ?? 5)
    this.maxReadLimit = Math.max(1, opts.maxReadLimit ?? 10_000)
    this.metrics = new EventLogMetrics(opts.registry ?? new Registry())
  }

  /** Loads the retention low-water mark and starts the periodic pruning. */
  async start(): Promise<void> {
    this.stopped = false
    const { rows } = await this.db.query<{ pruned_through: number }>('SELECT pruned_through FROM event_log_state')
    this.pruned = Math.max(this.pruned, rows[0]?.pruned_through ?? 0)
    if (this.pruneIntervalMs > 0) {
      this.timer = setInterval(() => void this.runRetention(), this.pruneIntervalMs)
      this.timer.unref()
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.pruning?.catch(() => {})
  }

  /** One retention pass with the configured window, unless one is already running. */
  runRetention(): Promise<number> {
    this.pruning ??= this.pruneOlderThan(this.retentionMs)
      .catch((err) => {
        this.metrics.errors.inc({ op: 'prune' })
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'event log pruning failed; will retry next interval')
        return 0
      })
      .finally(() => {
        this.pruning = undefined
      })
    return this.pruning
  }

  /** Events with seq > afterSeq in ascending order, at most `limit` (capped). */
  async readAfter(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const n = Math.max(0, Math.min(Math.floor(limit), this.maxReadLimit))
    if (n === 0) return []
    const { rows } = await this.db.query<Row>(`SELECT ${READ_COLUMNS} FROM event WHERE seq > $1 ORDER BY seq LIMIT $2`, [
      Math.max(-1, Math.floor(afterSeq)),
      n,
    ])
    return rows.map(toStored)
  }

  /** The broadcaster's EventLogReader name for readAfter. */
  readRange(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.readAfter(afterSeq, limit)
  }

  /**
   * Retention low-water mark: every seq <= this may have been removed by retention (0 if nothing
   * ever was). Kept in memory (loaded at start, advanced by each prune statement) so cursor
   * decisions can be synchronous. Takedowns do not move it.
   */
  prunedThrough(): number {
    return this.pruned
  }

  /** Seq of the oldest retained event, or undefined when the log is empty. */
  async oldestSeq(): Promise<number | undefined> {
    const { rows } = await this.db.query<{ seq: number }>('SELECT seq FROM event ORDER BY seq LIMIT 1')
    return rows[0]?.seq
  }

  /** The oldest retained event's seq and time (for OutdatedCursor), or undefined when empty. */
  async oldestTimeSeq(): Promise<{ seq: number; time: number } | undefined> {
    const { rows } = await this.db.query<{ seq: number; time: number }>(
      'SELECT seq, round(extract(epoch FROM created_at) * 1000)::float8 AS time FROM event ORDER BY seq LIMIT 1',
    )
    return rows[0]
  }

  /** Highest committed seq still in the log (0 when empty); the Sequencer's headSeq is authoritative for "current". */
  async headSeq(): Promise<number> {
    const { rows } = await this.db.query<{ seq: number }>('SELECT seq FROM event ORDER BY seq DESC LIMIT 1')
    return rows[0]?.seq ?? 0
  }

  /**
   * Is `cursor` older than what retention keeps? True when events after it may have been pruned
   * (the consumer gets #info OutdatedCursor, then replay from the oldest event).
   */
  isOutdated(cursor: number): boolean {
    return cursor < this.pruned
  }

  /**
   * Deletes events older than `windowMs`, oldest first, in statements of `pruneBatchRows` rows
   * (each its own transaction, so neither ingest nor replay waits on a long lock or a long
   * snapshot). Returns the number of rows deleted.
   *
   * Each statement looks only at the next `pruneBatchRows` seqs above the low-water mark and
   * deletes those older than the cutoff; it stops at the first young one. The sequencer keeps
   * created_at non-decreasing in seq, so old events are exactly a prefix.
   */
  async pruneOlderThan(windowMs: number): Promise<number> {
    const t0 = performance.now()
    const cutoff = new Date(Date.now() - windowMs).toISOString()
    let total = 0
    for (;;) {
      const { rows } = await this.db.query<{ n: number; mx: number | null; scanned: number }>(
        `WITH b AS (SELECT seq FROM event WHERE seq > $1 ORDER BY seq LIMIT $2),
              d AS (DELETE FROM event e USING b WHERE e.seq = b.seq AND e.created_at < $3::timestamptz RETURNING e.seq),
              m AS (SELECT count(*)::int AS n, max(seq) AS mx, (SELECT count(*)::int FROM b) AS scanned FROM d),
              u AS (UPDATE event_log_state SET pruned_through = greatest(pruned_through, m.mx), max_deleted_seq = greatest(max_deleted_seq, m.mx)
                    FROM m WHERE m.mx IS NOT NULL RETURNING 1)
         SELECT n, mx, scanned FROM m`,
        [this.pruned, this.pruneBatchRows, cutoff],
      )
      const { n, mx, scanned } = rows[0]!
      total += n
      if (mx !== null && mx > this.pruned) this.pruned = mx
      this.metrics.pruned.inc(n)
      if (n < scanned || scanned < this.pruneBatchRows || n === 0 || this.stopped) break
      if (this.prunePauseMs > 0) await new Promise((r) => setTimeout(r, this.prunePauseMs))
    }
    this.metrics.pruneSeconds.observe((performance.now() - t0) / 1000)
    if (total > 0) this.log.info({ rows: total, prunedThrough: this.pruned, ms: Math.round(performance.now() - t0) }, 'pruned event log')
    return total
  }

  /**
   * Takedown: deletes the account's events so replay no longer serves them. Runs in chunks; events
   * sequenced later (e.g. after the takedown is reversed) are served normally.
   *
   * Order of operations for a takedown: stop accepting the account's events (status), await
   * Sequencer.flush() so none are still queued, call hideAccount, then submit the #account event
   * (or pass `throughSeq` to keep events above it). Returns the number of rows deleted.
   */
  async hideAccount(did: string, opts: { throughSeq?: number } = {}): Promise<number> {
    const through = opts.throughSeq ?? Number.MAX_SAFE_INTEGER
    let total = 0
    for (;;) {
      const { rows } = await this.db.query<{ n: number }>(
        `WITH d AS (DELETE FROM event WHERE seq IN (SELECT seq FROM event WHERE did = $1 AND seq <= $2 LIMIT $3) RETURNING seq),
              m AS (SELECT count(*)::int AS n, max(seq) AS mx FROM d),
              u AS (UPDATE event_log_state SET max_deleted_seq = greatest(max_deleted_seq, m.mx) FROM m WHERE m.mx IS NOT NULL RETURNING 1)
         SELECT n FROM m`,
        [did, through, this.pruneBatchRows],
      )
      const n = rows[0]!.n
      total += n
      if (n < this.pruneBatchRows) break
    }
    this.metrics.hidden.inc(total)
    if (total > 0) this.log.info({ did, rows: total }, 'removed taken-down account events from the log')
    return total
  }
}
