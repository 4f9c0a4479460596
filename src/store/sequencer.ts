// The one sequencer: assigns relay seqs and group-commits accepted events to Postgres.
//
// Validation workers finish events in any order across DIDs; whatever order they reach submit()
// in is the order of seqs, of rows in the log and of frames handed to the broadcaster. Events are
// collected into batches (bounded by count, bytes and a short delay) and each batch is one
// transaction holding: the event rows, the account repo state they advance, the collection-index
// deltas and the upstream host cursors that the batch makes safe. Either all of that is durable
// (synchronous_commit on) or none of it is, so a crash neither loses an acknowledged event nor
// replays one on restart.
//
// Seqs are assigned in memory when a batch is formed. A batch that fails is retried as-is (same
// seqs, same bytes) until it commits; nothing from it was visible, so reusing its seqs is safe,
// and later events wait behind it, so order holds. Submitters wait meanwhile: a database outage
// stops ingest (backpressure) rather than dropping anything.

import { Registry } from 'prom-client'
import type { QueryConfig } from 'pg'
import type { Pool, PoolClient } from '../core/db.ts'
import type { Logger } from '../core/log.ts'
import { TurnAdmission } from '../core/turn-admission.ts'
import { SequencerMetrics } from './metrics.ts'
import { boolArray, byteaArray, int2Array, int8Array, textArray } from './pg-binary.ts'
import { MAX_SEQ, spliceSeq } from './seq-splice.ts'

export type EventKind = 'commit' | 'sync' | 'identity' | 'account'

/** event.kind smallint codes */
export const EVENT_KIND_CODES: Readonly<Record<EventKind, number>> = { commit: 1, sync: 2, identity: 3, account: 4 }
export const EVENT_KIND_BY_CODE: Readonly<Record<number, EventKind>> = { 1: 'commit', 2: 'sync', 3: 'identity', 4: 'account' }

export interface RepoState {
  rev: string
  commitCid: string
  dataCid: string
  /** a #sync may re-assert the current rev: apply when the stored rev equals this one too */
  allowEqual?: boolean
  /** when set, account.desynchronized takes this value in the same (conditional) update */
  desynchronized?: boolean
}

export interface AcceptedEvent {
  did: string
  kind: EventKind
  /** complete outbound frame with `seq` encoded as the single byte 0x00 at seqOffset */
  frame: Uint8Array
  seqOffset: number
  /** #commit/#sync: the account's repo state after this event (applied only if rev advances) */
  repoState?: RepoState
  /** upstream origin of the frame; absent for relay-originated events */
  hostId?: number
  upstreamSeq?: number
  /** per-collection record count changes for listReposByCollection */
  collectionDeltas?: Array<{ collection: string; delta: number }>
}

export interface PersistedEvent {
  seq: number
  did: string
  kind: EventKind
  /** final outbound bytes, with the seq spliced in */
  frame: Buffer
  /** spare bytes of the frame's own allocation in front of it (see BroadcastFrame.headroom) */
  headroom: number
  /** wall-clock ms at which the event was sequenced (stored as event.created_at); non-decreasing in seq */
  time: number
  hostId?: number
  upstreamSeq?: number
}

export interface CommittedBatch {
  events: PersistedEvent[]
  /** upstream seqs in this batch, per host, in submission order */
  seqsByHost: Map<number, number[]>
  /** the subset of seqsByHost whose events a replay would duplicate (see `pinnedByHost`) */
  pinnedByHost: Map<number, number[]>
  /** host cursors written in the same transaction (as returned by the cursor provider) */
  cursors: Map<number, HostCursor>
  /** duration of the successful transaction attempt, BEGIN to COMMIT acknowledged */
  commitMs: number
}

/**
 * A host's upstream cursor to save, and the upstream seqs above it whose events are already in the
 * log and must be skipped if the host replays them after a crash (see migrations/003).
 */
export interface HostCursor {
  seq: number
  doneAbove: number[]
}

/**
 * Given the upstream seqs a batch carries (per host) and the pinned subset (events the rev check
 * would not refuse on replay: everything but #commit), returns the host cursors that are safe to
 * save once that batch commits. Called once per batch just before its transaction, and with empty
 * maps by the periodic cursor flush (progress from frames that validation dropped). A cursor below
 * the saved one is not written; an equal one rewrites the done list.
 */
export type CursorProvider = (batchSeqsByHost: Map<number, number[]>, pinnedByHost: Map<number, number[]>) => Map<number, HostCursor>

export interface SequencerOptions {
  db: Pool
  log: Logger
  registry?: Registry
  /** floor for the first seq (the next seq is max(stored max + 1, initialSeq)); default 1 */
  initialSeq?: number
  /** default 1000 (capped at 10,000: bind parameters per statement are limited) */
  maxBatchEvents?: number
  /** default 16 MiB of frame bytes */
  maxBatchBytes?: number
  /** how long the oldest queued event may wait for companions; default 5 ms */
  maxBatchDelayMs?: number
  /** pending limits callers wait on with waitForRoom(); defaults 100,000 events / 256 MiB */
  maxPendingEvents?: number
  maxPendingBytes?: number
  cursorProvider?: CursorProvider
  /** cursor-only flush period; default 1000 ms, 0 disables */
  cursorFlushIntervalMs?: number
  /** after COMMIT, in seq order, before submit() promises resolve: the broadcaster's hand-off */
  onPersisted?: (events: PersistedEvent[]) => void
  /** after COMMIT (and after onPersisted) with the whole batch: the subscriber's hook */
  onCommitted?: (batch: CommittedBatch) => void
  /** retry backoff; defaults 50 ms doubling to 5 s, with jitter */
  retryInitialMs?: number
  retryMaxMs?: number
  /** client-side timeout per statement, so a silently dead connection cannot hang ingest; default 60 s */
  queryTimeoutMs?: number
  /**
   * How a batch is sent: 'unnest' (default; one fixed prepared statement with binary array
   * parameters) or 'values' (multi-row VALUES, binary bytea parameters, SQL text per batch size).
   * Measured in bench/store/sequencer.bench.ts.
   */
  insertMethod?: 'values' | 'unnest'
  /**
   * Spare bytes allocated in front of each spliced frame for the next stage's use (the broadcaster
   * writes its WebSocket header there instead of copying the frame). Default 0.
   */
  frameHeadroom?: number
}

interface Pending {
  ev: AcceptedEvent
  bytes: number
  enqueuedAt: number
  resolve: (e: PersistedEvent) => void
  reject: (err: Error) => void
}

interface Batch {
  entries: Pending[]
  events: PersistedEvent[]
  bytes: number
  firstSeq: number
  lastSeq: number
  time: number
  seqsByHost: Map<number, number[]>
  pinnedByHost: Map<number, number[]>
}

interface RoomWaiter {
  bytes: number
  events: number
  resolve: () => void
}

const MAX_STATEMENT_ROWS = 10_000
const ROW_OVERHEAD_BYTES = 64 // per queued event beyond its frame: object, DID string, promise

export class Sequencer {
  readonly name = 'sequencer'
  readonly metrics: SequencerMetrics
  private readonly db: Pool
  private readonly log: Logger
  private readonly initialSeq: number
  private readonly maxBatchEvents: number
  private readonly maxBatchBytes: number
  private readonly maxBatchDelayMs: number
  private readonly frameHeadroom: number
  readonly maxPendingEvents: number
  readonly maxPendingBytes: number
  private readonly cursorProvider?: CursorProvider
  private readonly cursorFlushIntervalMs: number
  private readonly onPersisted?: (events: PersistedEvent[]) => void
  private readonly onCommitted?: (batch: CommittedBatch) => void
  private readonly retryInitialMs: number
  private readonly retryMaxMs: number
  private readonly queryTimeoutMs: number
  private readonly insertMethod: 'values' | 'unnest'

  private nextSeq = 0
  private committedSeq = 0
  private lastTime = 0
  private started = false
  private closed = false
  private closing?: Promise<void>
  private running = false
  private timer?: NodeJS.Timeout
  private cursorTimer?: NodeJS.Timeout
  private cursorFlushDue = false
  private queue: Pending[] = []
  private queuedBytes = 0
  private pendingEventCount = 0
  private pendingByteCount = 0
  private submitted = 0
  private committed = 0
  private flushTargets: Array<{ target: number; resolve: () => void }> = []
  private roomWaiters: RoomWaiter[] = []
  /**
   * waitForRoom() callers (at most one per upstream host). A caller submits events of unknown
   * size, so each woken one reserves the current average event (at least 1 KiB) and one event.
   */
  private readonly admission = new TurnAdmission<{ resolve: () => void }>(
    (_head, reservedBytes, woken) =>
      this.pendingByteCount + reservedBytes < this.maxPendingBytes && this.pendingEventCount + woken < this.maxPendingEvents,
    () => Math.max(1024, this.pendingEventCount > 0 ? this.pendingByteCount / this.pendingEventCount : 4096),
  )
  /** cursors the provider handed out that are not in the database yet (a failed cursor flush) */
  private unwrittenCursors = new Map<number, HostCursor>()
  private readonly syncCommitClients = new WeakSet<PoolClient>()
  private readonly valuesSql = new Map<number, string>()
  private idleWaiters: Array<() => void> = []

  constructor(opts: SequencerOptions) {
    this.db = opts.db
    this.log = opts.log
    this.initialSeq = opts.initialSeq ?? 1
    if (!Number.isSafeInteger(this.initialSeq) || this.initialSeq < 1)
      throw new RangeError(`initialSeq must be a positive safe integer: ${opts.initialSeq}`)
    this.maxBatchEvents = Math.max(1, Math.min(opts.maxBatchEvents ?? 1000, MAX_STATEMENT_ROWS))
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? 16 * 1024 * 1024)
    this.maxBatchDelayMs = Math.max(0, opts.maxBatchDelayMs ?? 5)
    this.frameHeadroom = opts.frameHeadroom ?? 0
    this.maxPendingEvents = opts.maxPendingEvents ?? 100_000
    this.maxPendingBytes = opts.maxPendingBytes ?? 256 * 1024 * 1024
    this.cursorProvider = opts.cursorProvider
    this.cursorFlushIntervalMs = opts.cursorFlushIntervalMs ?? 1000
    this.onPersisted = opts.onPersisted
    this.onCommitted = opts.onCommitted
    this.retryInitialMs = opts.retryInitialMs ?? 50
    this.retryMaxMs = opts.retryMaxMs ?? 5000
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 60_000
    this.insertMethod = opts.insertMethod ?? 'unnest'
    this.metrics = new SequencerMetrics(opts.registry ?? new Registry(), {
      pendingEvents: () => this.pendingEventCount,
      pendingBytes: () => this.pendingByteCount,
      roomWaiters: () => this.admission.length + this.roomWaiters.length,
      headSeq: () => this.committedSeq,
    })
  }

  /** Restores the seq counter from the log; events submitted earlier wait until then. */
  async start(): Promise<void> {
    if (this.started) return
    const { rows } = await this.db.query<{ last: number; last_time: string | null }>(`
      SELECT greatest(coalesce((SELECT max(seq) FROM event), 0), (SELECT max_deleted_seq FROM event_log_state)) AS last,
             (SELECT round(extract(epoch FROM created_at) * 1000)::text FROM event ORDER BY seq DESC LIMIT 1) AS last_time`)
    const last = rows[0]!.last
    this.committedSeq = last
    this.nextSeq = Math.max(last + 1, this.initialSeq)
    this.lastTime = rows[0]!.last_time ? Number(rows[0]!.last_time) : 0
    if (this.nextSeq > MAX_SEQ) throw new Error(`event log seq ${last} is at the 2^53-1 limit`)
    this.started = true
    this.log.info({ nextSeq: this.nextSeq, storedMax: last, initialSeq: this.initialSeq }, 'sequencer ready')
    if (this.cursorProvider && this.cursorFlushIntervalMs > 0) {
      this.cursorTimer = setInterval(() => {
        this.cursorFlushDue = true
        if (!this.running) this.kick()
      }, this.cursorFlushIntervalMs)
      this.cursorTimer.unref()
    }
    this.schedule()
  }

  /** Graceful stop: refuses new events, commits everything accepted, writes the final cursors. */
  stop(): Promise<void> {
    return this.close()
  }

  close(): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    this.closed = true
    if (!this.started) {
      for (const p of this.queue.splice(0)) p.reject(new Error('sequencer closed before it started'))
      return
    }
    await this.flush()
    if (this.cursorTimer) clearInterval(this.cursorTimer)
    if (this.cursorProvider) {
      this.cursorFlushDue = true
      this.kick()
    }
    await this.idle()
    if (this.timer) clearTimeout(this.timer)
  }

  /** Next seq to be assigned (restored at start). */
  get nextSequence(): number {
    return this.nextSeq
  }

  /** Highest seq committed (0 before any). */
  get headSeq(): number {
    return this.committedSeq
  }

  get pendingEvents(): number {
    return this.pendingEventCount
  }

  /** Frame bytes (plus a small per-event overhead) submitted and not yet committed. */
  get pendingBytes(): number {
    return this.pendingByteCount
  }

  hasRoom(): boolean {
    return this.pendingByteCount < this.maxPendingBytes && this.pendingEventCount < this.maxPendingEvents
  }

  /** Resolves once pending bytes are at or below `limitBytes` (and events at or below `limitEvents`). */
  whenBelow(limitBytes: number, limitEvents = Infinity): Promise<void> {
    if (this.pendingByteCount <= limitBytes && this.pendingEventCount <= limitEvents) return Promise.resolve()
    return new Promise((resolve) => this.roomWaiters.push({ bytes: limitBytes, events: limitEvents, resolve }))
  }

  /**
   * Resolves when there is room under the configured pending limits. Waiters are woken in arrival
   * order, per event-loop turn only as many as the freed room takes (see TurnAdmission).
   */
  waitForRoom(): Promise<void> {
    if (this.hasRoom() && this.admission.length === 0) return Promise.resolve()
    return new Promise((resolve) => {
      this.admission.push({ resolve })
      this.admission.admit()
    })
  }

  /**
   * Queues an accepted event. Resolves after the transaction holding it committed, with its seq
   * and final bytes. Never drops: while Postgres is unreachable the promise just waits. Rejects
   * only for malformed input (checked before queueing) or after close().
   */
  submit(ev: AcceptedEvent): Promise<PersistedEvent> {
    if (this.closed) return Promise.reject(new Error('sequencer is closed'))
    const problem = checkEvent(ev)
    if (problem) {
      this.metrics.rejected.inc({ reason: problem.reason })
      return Promise.reject(new TypeError(`event refused: ${problem.message}`))
    }
    if (!this.hasRoom()) this.metrics.overCapacity.inc()
    const bytes = ev.frame.byteLength + ev.did.length + ROW_OVERHEAD_BYTES
    return new Promise<PersistedEvent>((resolve, reject) => {
      this.queue.push({ ev, bytes, enqueuedAt: performance.now(), resolve, reject })
      this.queuedBytes += bytes
      this.pendingEventCount++
      this.pendingByteCount += bytes
      this.submitted++
      this.schedule()
    })
  }

  /** Resolves when every event submitted before the call is committed (skips the batch delay). */
  flush(): Promise<void> {
    const target = this.submitted
    if (this.committed >= target) return Promise.resolve()
    return new Promise((resolve) => {
      this.flushTargets.push({ target, resolve })
      this.schedule()
    })
  }

  // ---- batching loop -------------------------------------------------------------------------

  private schedule(): void {
    if (!this.started || this.running || this.queue.length === 0) return
    if (this.readyToRun(performance.now())) {
      if (this.timer) {
        clearTimeout(this.timer)
        this.timer = undefined
      }
      this.kick()
      return
    }
    if (!this.timer) {
      const wait = Math.max(0, this.queue[0]!.enqueuedAt + this.maxBatchDelayMs - performance.now())
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.kick()
      }, Math.ceil(wait))
    }
  }

  private readyToRun(now: number): boolean {
    if (this.queue.length === 0) return false
    return (
      this.queue.length >= this.maxBatchEvents ||
      this.queuedBytes >= this.maxBatchBytes ||
      this.flushTargets.length > 0 ||
      this.closed ||
      now - this.queue[0]!.enqueuedAt >= this.maxBatchDelayMs
    )
  }

  private kick(): void {
    if (this.running || !this.started) return
    this.running = true
    void this.loop()
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        if (this.readyToRun(performance.now())) {
          await this.commitNextBatch()
          continue
        }
        if (this.cursorFlushDue) {
          this.cursorFlushDue = false
          await this.flushCursors()
          continue
        }
        break
      }
    } catch (err) {
      // commitNextBatch retries internally; reaching here is a bug, not a database error.
      this.log.error({ err }, 'sequencer loop failed')
    } finally {
      this.running = false
      for (const w of this.idleWaiters.splice(0)) w()
      this.schedule()
    }
  }

  private idle(): Promise<void> {
    if (!this.running) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private takeBatch(): Batch | undefined {
    let n = 0
    let bytes = 0
    while (n < this.queue.length && n < this.maxBatchEvents) {
      const b = this.queue[n]!.bytes
      if (n > 0 && bytes + b > this.maxBatchBytes) break
      bytes += b
      n++
    }
    const entries = this.queue.splice(0, n)
    this.queuedBytes -= bytes
    // Wall-clock time stored with the events; kept non-decreasing so created_at follows seq
    // (retention and OutdatedCursor rely on it) even if the clock steps back.
    const time = (this.lastTime = Math.max(this.lastTime, Date.now()))
    const events: PersistedEvent[] = []
    const seqsByHost = new Map<number, number[]>()
    const pinnedByHost = new Map<number, number[]>()
    const firstSeq = this.nextSeq
    for (let i = 0; i < entries.length; i++) {
      const p = entries[i]!
      const seq = firstSeq + i
      if (seq > MAX_SEQ) {
        // Cannot happen before ~285,000 years at 1M events/s; refuse rather than wrap.
        const err = new Error('relay seq reached 2^53-1')
        this.log.fatal({ seq }, 'relay seq exhausted')
        for (const q of entries.slice(i)) this.settle(q, undefined, err)
        entries.length = i
        break
      }
      const { ev } = p
      events.push({
        seq,
        did: ev.did,
        kind: ev.kind,
        frame: spliceSeq(ev.frame, ev.seqOffset, seq, this.frameHeadroom),
        headroom: this.frameHeadroom,
        time,
        hostId: ev.hostId,
        upstreamSeq: ev.upstreamSeq,
      })
      if (ev.hostId !== undefined && ev.upstreamSeq !== undefined) {
        let list = seqsByHost.get(ev.hostId)
        if (!list) seqsByHost.set(ev.hostId, (list = []))
        list.push(ev.upstreamSeq)
        // A replayed #commit is refused by the rev check; nothing else is (a #sync may repeat its rev).
        if (ev.kind !== 'commit') {
          let pinned = pinnedByHost.get(ev.hostId)
          if (!pinned) pinnedByHost.set(ev.hostId, (pinned = []))
          pinned.push(ev.upstreamSeq)
        }
      }
    }
    if (events.length === 0) return undefined
    this.nextSeq = firstSeq + events.length
    return { entries, events, bytes, firstSeq, lastSeq: firstSeq + events.length - 1, time, seqsByHost, pinnedByHost }
  }

  private async commitNextBatch(): Promise<void> {
    const batch = this.takeBatch()
    if (!batch) return
    const cursors = this.collectCursors(batch.seqsByHost, batch.pinnedByHost)
    let attempt = 0
    let failingSince = 0
    let commitMs = 0
    for (;;) {
      const t0 = performance.now()
      try {
        // After a failure the COMMIT may have succeeded with only its acknowledgement lost.
        const already = attempt > 0 && (await this.batchCommitted(batch))
        if (!already) await this.writeBatch(batch, cursors)
        commitMs = performance.now() - t0
        this.metrics.commitSeconds.observe(commitMs / 1000)
        if (attempt > 0)
          this.log.info(
            { attempt, firstSeq: batch.firstSeq, downMs: Math.round(performance.now() - failingSince), recovered: already },
            'event batch committed after retries',
          )
        break
      } catch (err) {
        attempt++
        if (attempt === 1) failingSince = t0
        this.metrics.retries.inc()
        this.metrics.errors.inc({ op: 'batch' })
        const delay = backoff(attempt, this.retryInitialMs, this.retryMaxMs)
        // One line per failure would flood the log during an outage: first, then every 10th.
        if (attempt === 1 || attempt % 10 === 0) {
          this.log.warn(
            { err: errMessage(err), attempt, firstSeq: batch.firstSeq, events: batch.events.length, retryInMs: delay },
            'event batch failed; retrying (ingest waits)',
          )
        }
        await sleep(delay)
      }
    }
    this.finishBatch(batch, cursors, commitMs)
  }

  private finishBatch(batch: Batch, cursors: Map<number, HostCursor>, commitMs: number): void {
    this.committedSeq = batch.lastSeq
    this.metrics.batchEvents.observe(batch.events.length)
    this.metrics.batchBytes.observe(batch.bytes)
    this.metrics.persistLatencySeconds.observe((performance.now() - batch.entries[0]!.enqueuedAt) / 1000)
    for (const e of batch.events) this.metrics.persisted.inc({ kind: e.kind })
    if (this.onPersisted) {
      try {
        this.onPersisted(batch.events)
      } catch (err) {
        this.metrics.callbackErrors.inc({ callback: 'onPersisted' })
        this.log.error({ err }, 'onPersisted callback threw')
      }
    }
    if (this.onCommitted) {
      try {
        this.onCommitted({ events: batch.events, seqsByHost: batch.seqsByHost, pinnedByHost: batch.pinnedByHost, cursors, commitMs })
      } catch (err) {
        this.metrics.callbackErrors.inc({ callback: 'onCommitted' })
        this.log.error({ err }, 'onCommitted callback threw')
      }
    }
    for (let i = 0; i < batch.entries.length; i++) this.settle(batch.entries[i]!, batch.events[i]!)
    this.committed += batch.entries.length
    if (this.flushTargets.length) {
      const still: typeof this.flushTargets = []
      for (const f of this.flushTargets) this.committed >= f.target ? f.resolve() : still.push(f)
      this.flushTargets = still
    }
    this.admission.admit()
    if (this.roomWaiters.length) {
      const still: RoomWaiter[] = []
      for (const w of this.roomWaiters) {
        if (this.pendingByteCount <= w.bytes && this.pendingEventCount <= w.events) w.resolve()
        else still.push(w)
      }
      this.roomWaiters = still
    }
  }

  private settle(p: Pending, value: PersistedEvent | undefined, err?: Error): void {
    this.pendingEventCount--
    this.pendingByteCount -= p.bytes
    if (value) p.resolve(value)
    else p.reject(err!)
  }

  private collectCursors(seqsByHost: Map<number, number[]>, pinnedByHost: Map<number, number[]>): Map<number, HostCursor> {
    const out = new Map(this.unwrittenCursors)
    this.unwrittenCursors.clear()
    if (!this.cursorProvider) return out
    let given: Map<number, HostCursor>
    try {
      given = this.cursorProvider(seqsByHost, pinnedByHost)
    } catch (err) {
      // Without cursors the batch is still correct: the saved host cursors just lag.
      this.metrics.callbackErrors.inc({ callback: 'cursorProvider' })
      this.log.error({ err }, 'cursor provider threw; committing without cursor updates')
      return out
    }
    for (const [host, c] of given) {
      if (!Number.isSafeInteger(host) || !Number.isSafeInteger(c?.seq) || !Array.isArray(c.doneAbove)) continue
      if (!c.doneAbove.every((s) => Number.isSafeInteger(s))) continue
      // The provider's answer is newer than an unwritten one unless its cursor went backwards.
      if (c.seq >= (out.get(host)?.seq ?? -Infinity)) out.set(host, c)
    }
    return out
  }

  /** Cursor-only progress (every frame since the last save was dropped by validation). */
  private async flushCursors(): Promise<void> {
    // The provider reports only cursors that advanced; no filtering here, so a host whose
    // cursor was reset to the live head (upstream seq reset) saves its new, lower cursors.
    const cursors = this.collectCursors(new Map(), new Map())
    if (cursors.size === 0) return
    const p = new Params()
    const sql = `${hostCursorSql(p, cursors)} SELECT count(*)::int AS n FROM h`
    try {
      const { rows } = await this.db.query<{ n: number }>(timed('WITH ' + sql, p.values, this.queryTimeoutMs))
      this.metrics.hostCursorWrites.inc(rows[0]!.n)
    } catch (err) {
      this.metrics.errors.inc({ op: 'cursor_flush' })
      this.log.warn({ err: errMessage(err) }, 'host cursor flush failed; will retry')
      for (const [host, c] of cursors) if (c.seq >= (this.unwrittenCursors.get(host)?.seq ?? -Infinity)) this.unwrittenCursors.set(host, c)
    }
  }

  // ---- SQL -----------------------------------------------------------------------------------

  private async writeBatch(batch: Batch, cursors: Map<number, HostCursor>): Promise<void> {
    const repo = mergeRepoStates(batch.entries)
    const deltas = mergeCollectionDeltas(batch.entries)
    const negative = deltas.filter((d) => d.delta < 0)
    const main =
      this.insertMethod === 'unnest'
        ? mainStatementUnnest(batch, repo, deltas, cursors)
        : this.mainStatementValues(batch, repo, deltas, cursors)
    const client = await this.db.connect()
    // node-postgres also emits 'error' on a checked-out client whose connection drops; without a
    // listener that is an uncaught exception. The failing query rejects too, which is what we act on.
    const onClientError = (err: Error) => this.log.debug({ err: err.message }, 'sequencer connection error')
    client.on('error', onClientError)
    let broken = false
    try {
      const q = (config: QueryConfig) => client.query({ ...config, query_timeout: this.queryTimeoutMs } as QueryConfig)
      if (!this.syncCommitClients.has(client)) {
        // Session-level, so it holds for every batch on this connection whatever the server default.
        await q({ text: 'SET synchronous_commit = on' })
        this.syncCommitClients.add(client)
      }
      let counts: { accounts: number; hosts: number }
      if (negative.length === 0) {
        // One statement is one transaction: a single round trip commits the whole batch.
        counts = (await q(main)).rows[0]
      } else {
        // Rows that reach zero can only be seen by a second statement (all parts of one statement
        // share a snapshot), so this batch needs an explicit transaction.
        await q({ text: 'BEGIN' })
        try {
          counts = (await q(main)).rows[0]
          await q({
            name: 'relay_seq_collection_prune',
            text: `DELETE FROM collection_repo c USING unnest($1::text[], $2::text[]) AS v(collection, did)
                   WHERE c.collection = v.collection AND c.did = v.did AND c.record_count <= 0`,
            values: [textArray(negative.map((d) => d.collection)), textArray(negative.map((d) => d.did))],
          })
          await q({ text: 'COMMIT' })
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {})
          throw err
        }
      }
      this.metrics.repoStateSkipped.inc(repo.length - counts.accounts)
      this.metrics.hostCursorWrites.inc(counts.hosts)
    } catch (err) {
      broken = true
      throw err
    } finally {
      // After any error the connection's state is unknown (a timed-out query may still run):
      // discard it rather than return it to the pool.
      client.removeListener('error', onClientError)
      client.release(broken)
    }
  }

  /** Multi-row VALUES with one Buffer (binary) parameter per frame; SQL text varies with the batch. */
  private mainStatementValues(batch: Batch, repo: MergedRepoState[], deltas: MergedDelta[], cursors: Map<number, HostCursor>): QueryConfig {
    const p = new Params()
    const time = p.add(new Date(batch.time).toISOString())
    const base = p.values.length
    for (const e of batch.events) p.values.push(e.seq, e.did, EVENT_KIND_CODES[e.kind], e.frame)
    const ctes = [`e AS (${this.valuesInsert(batch.events.length, base, time)})`]
    if (repo.length) ctes.push(accountSql(p, repo))
    if (deltas.length) ctes.push(collectionUpsertSql(p, deltas))
    if (cursors.size) ctes.push(hostCursorSql(p, cursors))
    const select = `SELECT ${repo.length ? '(SELECT count(*) FROM a)::int' : '0'} AS accounts, ${cursors.size ? '(SELECT count(*) FROM h)::int' : '0'} AS hosts`
    return { text: `WITH ${ctes.join(',\n')}\n${select}`, values: p.values }
  }

  private valuesInsert(n: number, base: number, time: string): string {
    const key = n * 100_000 + base
    let sql = this.valuesSql.get(key)
    if (!sql) {
      const rows: string[] = []
      for (let i = 0; i < n; i++) {
        const o = base + i * 4
        rows.push(`($${o + 1}::bigint, $${o + 2}::text, $${o + 3}::smallint, $${o + 4}::bytea, ${time}::timestamptz)`)
      }
      sql = `INSERT INTO event (seq, did, kind, frame, created_at) VALUES ${rows.join(',')}`
      if (this.valuesSql.size > 64) this.valuesSql.clear()
      this.valuesSql.set(key, sql)
    }
    return sql
  }

  /** Did an earlier attempt of this batch commit? Compares stored bytes, so a foreign writer is noticed. */
  private async batchCommitted(batch: Batch): Promise<boolean> {
    const { rows } = await this.db.query<{ seq: number; frame: Buffer }>(
      timed(
        'SELECT seq, frame FROM event WHERE seq BETWEEN $1 AND $2 ORDER BY seq LIMIT 1',
        [batch.firstSeq, batch.lastSeq],
        this.queryTimeoutMs,
      ),
    )
    const row = rows[0]
    if (!row) return false
    const mine = batch.events[row.seq - batch.firstSeq]!
    if (!mine.frame.equals(row.frame)) {
      throw new Error(`seq ${row.seq} already holds a different event: is another relay writing to this database?`)
    }
    return true
  }
}

/** node-postgres honours a per-query `query_timeout` (client side); its types don't declare it. */
function timed(text: string, values: unknown[] | undefined, timeoutMs: number): QueryConfig {
  return { text, values, query_timeout: timeoutMs } as QueryConfig
}

class Params {
  readonly values: unknown[] = []
  add(v: unknown): string {
    this.values.push(v)
    return '$' + this.values.length
  }
}

// The whole batch as ONE prepared statement with fixed text: every part takes binary arrays
// (empty when unused), so Postgres parses and plans it once per connection. Parts:
//   e: event rows;  a: conditional repo-state update;  c: collection-count upsert;
//   h: host cursors, never backwards (an equal cursor rewrites the done list above it).
// The repo-state condition makes the write idempotent and order-proof: a stale or replayed event
// can never roll an account back (revs compare bytewise: TIDs are base32-sortable ASCII).
const MAIN_STATEMENT = `WITH
e AS (INSERT INTO event (seq, did, kind, frame, created_at)
      SELECT s, d, k, f, $5::timestamptz FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::bytea[]) AS t(s, d, k, f)),
a AS (UPDATE account AS acc
      SET rev = v.rev, commit_cid = v.commit_cid, data_cid = v.data_cid,
          desynchronized = coalesce(v.desync, acc.desynchronized), updated_at = now()
      FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::boolean[])
           AS v(did, rev, commit_cid, data_cid, allow_equal, desync)
      WHERE acc.did = v.did
        AND (acc.rev IS NULL OR acc.rev COLLATE "C" < v.rev COLLATE "C" OR (v.allow_equal AND acc.rev = v.rev))
      RETURNING 1),
c AS (INSERT INTO collection_repo (collection, did, record_count)
      SELECT collection, did, n FROM unnest($12::text[], $13::text[], $14::bigint[]) AS v(collection, did, n)
      ON CONFLICT (collection, did) DO UPDATE SET record_count = collection_repo.record_count + excluded.record_count),
h AS (UPDATE host SET last_seq = v.seq, updated_at = now(),
        done_above = coalesce((SELECT array_agg(d.s ORDER BY d.s) FROM unnest($17::bigint[], $18::bigint[]) AS d(id, s) WHERE d.id = v.id), '{}')
      FROM unnest($15::bigint[], $16::bigint[]) AS v(id, seq)
      WHERE host.id = v.id AND host.last_seq <= v.seq
      RETURNING 1)
SELECT (SELECT count(*) FROM a)::int AS accounts, (SELECT count(*) FROM h)::int AS hosts`

function mainStatementUnnest(batch: Batch, repo: MergedRepoState[], deltas: MergedDelta[], cursors: Map<number, HostCursor>): QueryConfig {
  const ev = batch.events
  const above = doneAboveColumns(cursors)
  return {
    name: 'relay_seq_batch',
    text: MAIN_STATEMENT,
    values: [
      int8Array(ev.map((e) => e.seq)),
      textArray(ev.map((e) => e.did)),
      int2Array(ev.map((e) => EVENT_KIND_CODES[e.kind])),
      byteaArray(ev.map((e) => e.frame)),
      new Date(batch.time).toISOString(),
      textArray(repo.map((r) => r.did)),
      textArray(repo.map((r) => r.rev)),
      textArray(repo.map((r) => r.commitCid)),
      textArray(repo.map((r) => r.dataCid)),
      boolArray(repo.map((r) => r.allowEqual === true)),
      boolArray(repo.map((r) => (r.desynchronized === undefined ? null : r.desynchronized))),
      textArray(deltas.map((d) => d.collection)),
      textArray(deltas.map((d) => d.did)),
      int8Array(deltas.map((d) => d.delta)),
      int8Array([...cursors.keys()]),
      int8Array([...cursors.values()].map((c) => c.seq)),
      int8Array(above.hosts),
      int8Array(above.seqs),
    ],
  }
}

/** The done lists flattened to (host, seq) columns, which unnest takes where ragged arrays can't go. */
function doneAboveColumns(cursors: Map<number, HostCursor>): { hosts: number[]; seqs: number[] } {
  const hosts: number[] = []
  const seqs: number[] = []
  for (const [host, c] of cursors) {
    for (const s of c.doneAbove) {
      hosts.push(host)
      seqs.push(s)
    }
  }
  return { hosts, seqs }
}

interface MergedRepoState extends RepoState {
  did: string
}

/** One update per DID: the highest rev in the batch (a later equal rev with allowEqual wins). */
export function mergeRepoStates(entries: ReadonlyArray<{ ev: AcceptedEvent }>): MergedRepoState[] {
  const byDid = new Map<string, MergedRepoState>()
  for (const { ev } of entries) {
    const s = ev.repoState
    if (!s) continue
    const kept = byDid.get(ev.did)
    // JS string order is code-unit order, the same as COLLATE "C" for the ASCII revs (TIDs).
    if (!kept || s.rev > kept.rev || (s.rev === kept.rev && s.allowEqual)) byDid.set(ev.did, { did: ev.did, ...s })
  }
  return [...byDid.values()]
}

function accountSql(p: Params, repo: MergedRepoState[]): string {
  const dids = p.add(repo.map((r) => r.did))
  const revs = p.add(repo.map((r) => r.rev))
  const commits = p.add(repo.map((r) => r.commitCid))
  const datas = p.add(repo.map((r) => r.dataCid))
  const eq = p.add(repo.map((r) => r.allowEqual === true))
  const desync = p.add(repo.map((r) => (r.desynchronized === undefined ? null : r.desynchronized)))
  // The condition makes the write idempotent and order-proof: a stale or replayed event can never
  // roll an account back (revs compare bytewise: TIDs are base32-sortable ASCII).
  return `a AS (UPDATE account AS acc
      SET rev = v.rev, commit_cid = v.commit_cid, data_cid = v.data_cid,
          desynchronized = coalesce(v.desync, acc.desynchronized), updated_at = now()
      FROM unnest(${dids}::text[], ${revs}::text[], ${commits}::text[], ${datas}::text[], ${eq}::boolean[], ${desync}::boolean[])
           AS v(did, rev, commit_cid, data_cid, allow_equal, desync)
      WHERE acc.did = v.did
        AND (acc.rev IS NULL OR acc.rev COLLATE "C" < v.rev COLLATE "C" OR (v.allow_equal AND acc.rev = v.rev))
      RETURNING 1)`
}

interface MergedDelta {
  collection: string
  did: string
  delta: number
}

/** Sums deltas per (collection, did), drops zeros, sorts (stable lock order). */
export function mergeCollectionDeltas(entries: ReadonlyArray<{ ev: AcceptedEvent }>): MergedDelta[] {
  const sums = new Map<string, MergedDelta>()
  for (const { ev } of entries) {
    if (!ev.collectionDeltas) continue
    for (const { collection, delta } of ev.collectionDeltas) {
      const key = collection + '\u0000' + ev.did
      const cur = sums.get(key)
      if (cur) cur.delta += delta
      else sums.set(key, { collection, did: ev.did, delta })
    }
  }
  return [...sums.entries()]
    .filter(([, d]) => d.delta !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, d]) => d)
}

function collectionUpsertSql(p: Params, deltas: MergedDelta[]): string {
  const cols = p.add(deltas.map((d) => d.collection))
  const dids = p.add(deltas.map((d) => d.did))
  const ns = p.add(deltas.map((d) => d.delta))
  return `c AS (INSERT INTO collection_repo (collection, did, record_count)
      SELECT collection, did, n FROM unnest(${cols}::text[], ${dids}::text[], ${ns}::bigint[]) AS v(collection, did, n)
      ON CONFLICT (collection, did) DO UPDATE SET record_count = collection_repo.record_count + excluded.record_count)`
}

function hostCursorSql(p: Params, cursors: Map<number, HostCursor>): string {
  const ids = p.add([...cursors.keys()])
  const seqs = p.add([...cursors.values()].map((c) => c.seq))
  const above = doneAboveColumns(cursors)
  const aboveHosts = p.add(above.hosts)
  const aboveSeqs = p.add(above.seqs)
  return `h AS (UPDATE host SET last_seq = v.seq, updated_at = now(),
        done_above = coalesce((SELECT array_agg(d.s ORDER BY d.s) FROM unnest(${aboveHosts}::bigint[], ${aboveSeqs}::bigint[]) AS d(id, s) WHERE d.id = v.id), '{}')
      FROM unnest(${ids}::bigint[], ${seqs}::bigint[]) AS v(id, seq)
      WHERE host.id = v.id AND host.last_seq <= v.seq
      RETURNING 1)`
}

// ---- input checks --------------------------------------------------------------------------------

const MAX_DID_LENGTH = 2048

/** Refuses what would make the batch's transaction fail forever (and so stall the whole log). */
export function checkEvent(ev: AcceptedEvent): { reason: string; message: string } | undefined {
  if (typeof ev !== 'object' || ev === null) return { reason: 'shape', message: 'not an object' }
  if (typeof ev.did !== 'string' || ev.did.length === 0 || ev.did.length > MAX_DID_LENGTH || hasNul(ev.did)) {
    return { reason: 'did', message: 'did must be a non-empty string without NUL, at most 2048 characters' }
  }
  if (!Object.hasOwn(EVENT_KIND_CODES, ev.kind)) return { reason: 'kind', message: `unknown kind ${String(ev.kind)}` }
  if (!(ev.frame instanceof Uint8Array)) return { reason: 'frame', message: 'frame must be a Uint8Array' }
  if (!Number.isInteger(ev.seqOffset) || ev.seqOffset < 0 || ev.seqOffset >= ev.frame.length || ev.frame[ev.seqOffset] !== 0) {
    return { reason: 'seq_offset', message: `no 0x00 seq placeholder at offset ${ev.seqOffset}` }
  }
  const s = ev.repoState
  if (s !== undefined) {
    for (const v of [s.rev, s.commitCid, s.dataCid]) {
      if (typeof v !== 'string' || v.length === 0 || hasNul(v))
        return { reason: 'repo_state', message: 'repoState fields must be non-empty strings without NUL' }
    }
  }
  if (
    (ev.hostId !== undefined || ev.upstreamSeq !== undefined) &&
    !(Number.isSafeInteger(ev.hostId) && Number.isSafeInteger(ev.upstreamSeq))
  ) {
    return { reason: 'upstream', message: 'hostId and upstreamSeq must both be safe integers when given' }
  }
  if (ev.collectionDeltas !== undefined) {
    if (!Array.isArray(ev.collectionDeltas)) return { reason: 'collection', message: 'collectionDeltas must be an array' }
    for (const d of ev.collectionDeltas) {
      if (typeof d?.collection !== 'string' || d.collection.length === 0 || hasNul(d.collection) || !Number.isSafeInteger(d.delta)) {
        return { reason: 'collection', message: 'collection deltas need a non-empty collection without NUL and an integer delta' }
      }
    }
  }
  return undefined
}

function hasNul(s: string): boolean {
  return s.includes('\u0000')
}

function backoff(attempt: number, initial: number, max: number): number {
  const base = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20))
  return Math.round(base / 2 + Math.random() * (base / 2))
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
