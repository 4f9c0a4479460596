// The subscriber's two seams with the rest of the pipeline, injected by the integrator:
//
// - IngestSink: where frames go (the sharded pool, then the sequencer). The subscriber asks for
//   room before reading further and pauses its socket until there is some: blocking
//   backpressure, never a drop.
// - CursorRegistry: which upstream seqs are still between the socket and the database, per host.
//   The sequencer asks it, inside the transaction that persists a batch, for the host cursors the
//   batch makes safe, writes them in that same transaction, and reports the batch after COMMIT.
//   So a saved cursor never runs ahead of the events it covers (a crash cannot skip a frame) and
//   never lags behind them by more than what is still in flight (a restart re-fetches only
//   frames that were not persisted; the rev check makes those idempotent anyway).

import type { FrameMeta, FrameResult } from '../pool/types.ts'
import type { HostCursor } from '../store/sequencer.ts'
import { CursorTracker, type RegisterResult } from './cursor-tracker.ts'

export interface IngestSink {
  /** Room for a frame of `bytes` for this DID now (pool shard bytes and sequencer pending)? */
  hasRoom(did: string, bytes: number): boolean
  /** Resolves once there is room; the subscriber keeps its socket paused meanwhile. */
  waitForRoom(did: string, bytes: number): Promise<void>
  /**
   * Hand a frame off. Resolves when its fate is final: persisted (accept), or dropped/ignored by
   * validation. A rejection means the frame's fate is unknown (e.g. the pipeline shut down): its
   * seq is then never marked done, so the saved cursor stays below it and it is fetched again.
   * The frame buffer is not reused by the subscriber; the sink may keep a reference to it.
   */
  submit(did: string, frame: Uint8Array, meta: FrameMeta): Promise<FrameResult>
}

interface HostCursors {
  tracker: CursorTracker
  /** last cursor handed to the sequencer for this host (so idle hosts are not re-sent every batch) */
  reported: number | null
  reportedAbove: number[]
  idleWaiters: Array<() => void>
}

/**
 * Per-host CursorTrackers, shared by the subscribers (register / mark done) and the sequencer
 * (`cursorsFor` inside the transaction, `committed` after COMMIT). Main thread only.
 */
export class CursorRegistry {
  private readonly hosts = new Map<number, HostCursors>()
  /** hosts whose safe cursor moved outside a batch (drops) since the last `cursorsFor` */
  private readonly advanced = new Set<number>()
  private readonly maxInFlight: number | undefined

  constructor(opts: { maxInFlightPerHost?: number } = {}) {
    this.maxInFlight = opts.maxInFlightPerHost
  }

  /**
   * Start tracking a host from `initialCursor` (its saved cursor, or null for the live head) and
   * the saved seqs above it that were already persisted. A host already tracked keeps its
   * tracker: frames of an earlier connection may still be in flight, and its last registered seq
   * is the cursor to reconnect with.
   */
  open(hostId: number, initialCursor: number | null, alreadyPersisted: readonly number[] = []): CursorTracker {
    let h = this.hosts.get(hostId)
    if (!h) {
      const tracker = new CursorTracker(initialCursor, { maxInFlight: this.maxInFlight, alreadyPersisted })
      const reportedAbove = tracker.doneAboveIf([]).doneAbove
      h = { tracker, reported: initialCursor, reportedAbove, idleWaiters: [] }
      this.hosts.set(hostId, h)
    }
    return h.tracker
  }

  has(hostId: number): boolean {
    return this.hosts.has(hostId)
  }

  register(hostId: number, seq: number): RegisterResult {
    const h = this.hosts.get(hostId)
    if (!h) throw new Error(`host ${hostId} is not tracked`)
    const before = h.tracker.safeCursor()
    const r = h.tracker.register(seq)
    if (r === 'already_persisted' && h.tracker.safeCursor() !== before) this.advanced.add(hostId)
    return r
  }

  /**
   * A frame's fate is final; `pinned` when it was persisted as an event a replay would duplicate.
   * Idempotent: a seq already done (or unknown) returns false.
   */
  markDone(hostId: number, seq: number, pinned = false): boolean {
    const h = this.hosts.get(hostId)
    if (!h) return false
    const before = h.tracker.safeCursor()
    const ok = h.tracker.markDone(seq, pinned)
    if (ok && h.tracker.safeCursor() !== before) this.advanced.add(hostId)
    if (ok && h.tracker.inFlight === 0 && h.idleWaiters.length > 0) for (const w of h.idleWaiters.splice(0)) w()
    return ok
  }

  safeCursor(hostId: number): number | null {
    return this.hosts.get(hostId)?.tracker.safeCursor() ?? null
  }

  lastSeq(hostId: number): number | null {
    return this.hosts.get(hostId)?.tracker.lastSeq ?? null
  }

  inFlight(hostId: number): number {
    return this.hosts.get(hostId)?.tracker.inFlight ?? 0
  }

  /** Total frames in flight over all hosts. */
  totalInFlight(): number {
    let n = 0
    for (const h of this.hosts.values()) n += h.tracker.inFlight
    return n
  }

  /** Resolves when the host has nothing in flight. */
  whenIdle(hostId: number): Promise<void> {
    const h = this.hosts.get(hostId)
    if (!h || h.tracker.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => h.idleWaiters.push(resolve))
  }

  /**
   * New baseline after a policy reset (stale cursor, upstream seq reset): null = live head. The
   * host must have nothing in flight (await `whenIdle` first).
   */
  reset(hostId: number, baseline: number | null): void {
    const h = this.hosts.get(hostId)
    if (!h) {
      this.open(hostId, baseline)
      return
    }
    h.tracker.resetTo(baseline)
    h.reported = baseline
    h.reportedAbove = []
    this.advanced.delete(hostId)
  }

  /** Forget a host (deleted / banned) once nothing is in flight. */
  remove(hostId: number): void {
    const h = this.hosts.get(hostId)
    if (h && h.tracker.inFlight === 0) {
      this.hosts.delete(hostId)
      this.advanced.delete(hostId)
    }
  }

  /**
   * Called by the sequencer just before a batch's transaction: for each host in the batch, the
   * safe cursor if those seqs were done, with the persisted seqs above it (`pinnedByHost`: the
   * batch's events a replay would duplicate); plus each host whose cursor advanced through drops
   * since the last call. Tracker state is not touched (the batch may still roll back); only the
   * record of what was last reported is, so an unchanged host is not re-sent with every batch.
   */
  cursorsFor(batchSeqsByHost: Map<number, number[]>, pinnedByHost: Map<number, number[]> = new Map()): Map<number, HostCursor> {
    const out = new Map<number, HostCursor>()
    const report = (hostId: number, h: HostCursors, seqs: readonly number[]) => {
      const { cursor, doneAbove } = h.tracker.doneAboveIf(seqs, pinnedByHost.get(hostId))
      if (cursor === null) return
      const advanced = h.reported === null || cursor > h.reported
      if (!advanced && sameSeqs(doneAbove, h.reportedAbove)) return
      out.set(hostId, { seq: cursor, doneAbove })
      h.reported = cursor
      h.reportedAbove = doneAbove
    }
    for (const [hostId, seqs] of batchSeqsByHost) {
      const h = this.hosts.get(hostId)
      if (h) report(hostId, h, seqs)
    }
    for (const hostId of this.advanced) {
      const h = this.hosts.get(hostId)
      if (h && !batchSeqsByHost.has(hostId)) report(hostId, h, [])
    }
    this.advanced.clear()
    return out
  }

  /** Called after COMMIT with the batch's upstream seqs (and its pinned ones): they are done. */
  committed(batchSeqsByHost: Map<number, number[]>, pinnedByHost: Map<number, number[]> = new Map()): void {
    for (const [hostId, seqs] of batchSeqsByHost) {
      const pinned = pinnedByHost.get(hostId)
      const pinnedSet = pinned && pinned.length > 0 ? new Set(pinned) : null
      for (const seq of seqs) this.markDone(hostId, seq, pinnedSet !== null && pinnedSet.has(seq))
    }
  }
}

function sameSeqs(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
