// Per-host tracking of upstream seqs that are in flight between the socket and the database.
//
// Frames are registered in arrival order (upstream seq strictly increasing on a connection);
// they finish in any order, because frames for different DIDs go to different workers and some
// are dropped by validation early. The cursor we may save for the host is the highest seq such
// that every registered frame at or below it is done: saving anything higher could skip a frame
// that is still in a worker if we crash; saving lower only re-fetches frames (which the rev check
// makes idempotent, but it costs work).
//
// A crash loses the in-memory part: frames above the saved cursor that were already persisted are
// fetched again on restart. Commits are refused then by the rev check, but #identity, #account and
// same-rev #sync events are not, so those are "pinned": their seqs above the cursor are saved with
// it (`doneAboveIf`) and handed back at startup (`alreadyPersisted`), where `register` answers
// 'already_persisted' and the frame is skipped instead of delivered twice.
//
// Memory: one slot (8-byte seq + 1-byte flag) per in-flight frame, in a ring that grows by
// doubling and never shrinks below its high-water mark. The count of in-flight frames is bounded
// by the caller: the worker pool's queues are bounded in bytes and the subscriber pauses its
// socket when they are full, and every frame is ≥ ~60 bytes, so in-flight ≤ budget / 60.
// `maxInFlight` is a hard backstop: registration beyond it is refused (the caller should treat
// that as a bug / pause), never silently grown without limit.

export type RegisterResult =
  | 'ok'
  /** same seq as the last registered one: upstream resent it, drop and count */
  | 'duplicate'
  /** lower than the last registered one: upstream went backwards, drop and count */
  | 'decreasing'
  /** hard cap reached: caller must stop reading (pause) until frames complete */
  | 'full'
  /**
   * persisted before a restart (saved above the cursor): registered as done, the caller must
   * not submit it again
   */
  | 'already_persisted'

export interface CursorTrackerOptions {
  /** default 1,000,000 in-flight frames */
  maxInFlight?: number
  /** seqs above the initial cursor that were persisted before a restart (the saved done list) */
  alreadyPersisted?: readonly number[]
}

// slot states
const IN_FLIGHT = 0
const DONE = 1
/** done, and persisted as an event whose replay the rev check would not refuse */
const DONE_PINNED = 2

export class CursorTracker {
  private seqs: Float64Array
  private done: Uint8Array
  private head = 0 // index of the oldest in-flight frame
  private size = 0
  private readonly maxInFlight: number
  private last: number | null
  private safe: number | null
  /** slots in the ring in state DONE_PINNED */
  private pinned = 0
  /** saved done seqs above the cursor, still ahead of it (ascending; trimmed as the cursor passes) */
  private skip: number[]

  /**
   * @param initialCursor the cursor the connection was opened with (the saved host cursor), or
   *   null for a new host started at the live head. It is the safe cursor until frames complete.
   */
  constructor(initialCursor: number | null, opts: CursorTrackerOptions = {}) {
    this.maxInFlight = opts.maxInFlight ?? 1_000_000
    this.seqs = new Float64Array(64)
    this.done = new Uint8Array(64)
    this.last = initialCursor
    this.safe = initialCursor
    this.skip = [...new Set(opts.alreadyPersisted ?? [])]
      .filter((s) => Number.isSafeInteger(s) && (initialCursor === null || s > initialCursor))
      .sort((a, b) => a - b)
  }

  /** Frames registered and not yet done. */
  get inFlight(): number {
    return this.size
  }

  /** Highest seq registered so far (the cursor to reconnect with while this process lives). */
  get lastSeq(): number | null {
    return this.last
  }

  /**
   * Register an arriving frame's seq. Anything not strictly greater than the last registered seq
   * is refused so the caller can drop it and count the reason.
   */
  register(seq: number): RegisterResult {
    if (this.last !== null) {
      if (seq === this.last) return 'duplicate'
      if (seq < this.last) return 'decreasing'
    }
    if (this.size >= this.maxInFlight) return 'full'
    if (this.size === this.seqs.length) this.grow()
    const persisted = this.skip.length > 0 && this.skip.includes(seq)
    const i = (this.head + this.size) % this.seqs.length
    this.seqs[i] = seq
    this.done[i] = persisted ? DONE_PINNED : IN_FLIGHT
    this.size++
    this.last = seq
    if (!persisted) return 'ok'
    // Stays pinned (and so in the saved list) until the cursor passes it: a second crash before
    // then must skip it again.
    this.pinned++
    this.advance()
    return 'already_persisted'
  }

  /**
   * Mark a registered frame done (persisted, or dropped by validation). Returns false for a seq
   * that is not in flight (never registered, already done, or below the safe cursor), which
   * indicates a caller bug and should be counted, not thrown.
   */
  markDone(seq: number, pinned = false): boolean {
    const idx = this.find(seq)
    if (idx < 0) return false
    const i = (this.head + idx) % this.seqs.length
    if (this.done[i] !== IN_FLIGHT) return false
    this.done[i] = pinned ? DONE_PINNED : DONE
    if (pinned) this.pinned++
    if (idx === 0) this.advance()
    return true
  }

  /** Advance past the completed prefix; amortised O(1) per frame. */
  private advance(): void {
    const cap = this.seqs.length
    while (this.size > 0 && this.done[this.head] !== IN_FLIGHT) {
      if (this.done[this.head] === DONE_PINNED) this.pinned--
      this.safe = this.seqs[this.head]!
      this.head = (this.head + 1) % cap
      this.size--
    }
    const safe = this.safe
    if (this.skip.length > 0 && safe !== null && this.skip[0]! <= safe) this.skip = this.skip.filter((s) => s > safe)
  }

  /**
   * The cursor that may be saved: the highest seq S such that every registered frame ≤ S is
   * done (or the initial cursor if nothing has completed yet). With nothing in flight this is
   * the last registered seq.
   */
  safeCursor(): number | null {
    return this.safe
  }

  /**
   * What `safeCursor()` would be if `seqs` were also done, without marking them: the sequencer
   * asks this inside its transaction and the seqs are marked only after COMMIT. Cost is the
   * length of the prefix that would complete (plus building the set).
   */
  safeCursorIf(seqs: readonly number[]): number | null {
    if (this.size === 0 || seqs.length === 0) return this.safe
    const cap = this.seqs.length
    let extra: Set<number> | null = null
    let safe = this.safe
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) % cap
      const seq = this.seqs[i]!
      if (this.done[i] === IN_FLIGHT) {
        extra ??= new Set(seqs)
        if (!extra.has(seq)) break
      }
      safe = seq
    }
    return safe
  }

  /**
   * What must be saved with `safeCursorIf(seqs)`: the seqs above that cursor that are persisted
   * and must not be persisted again after a restart — pinned frames already done, the batch's
   * `pinnedSeqs` (about to commit), and saved seqs from before a restart not yet passed.
   * Ascending. Its length is bounded by the frames in flight; scanning costs nothing while no
   * pinned frame is in the ring.
   */
  doneAboveIf(seqs: readonly number[], pinnedSeqs: readonly number[] = []): { cursor: number | null; doneAbove: number[] } {
    const cursor = this.safeCursorIf(seqs)
    if (this.pinned === 0 && pinnedSeqs.length === 0 && this.skip.length === 0) return { cursor, doneAbove: [] }
    const above = (s: number) => cursor === null || s > cursor
    const out = new Set<number>()
    for (const s of this.skip) if (above(s)) out.add(s)
    for (const s of pinnedSeqs) if (above(s)) out.add(s)
    if (this.pinned > 0) {
      const cap = this.seqs.length
      for (let k = 0; k < this.size; k++) {
        const i = (this.head + k) % cap
        if (this.done[i] === DONE_PINNED && above(this.seqs[i]!)) out.add(this.seqs[i]!)
      }
    }
    return { cursor, doneAbove: [...out].sort((a, b) => a - b) }
  }

  /**
   * Reconnecting normally needs no call here: in-flight frames keep their slots (they will still
   * complete), and the order check continues from `lastSeq`, which is the cursor to reconnect
   * with. After an upstream seq reset (the PDS's seq went backwards; policy decided by the caller)
   * set a new baseline with this method. It refuses while frames are in flight, because an old
   * frame finishing later could be confused with a new frame carrying the same seq: the caller
   * waits for the in-flight count to reach zero first (it is already paused/disconnected).
   */
  resetTo(baseline: number | null): void {
    if (this.size !== 0) throw new Error('CursorTracker.resetTo with frames still in flight')
    this.head = 0
    this.pinned = 0
    this.skip = [] // the upstream's old seqs mean nothing against its new sequence
    this.last = baseline
    this.safe = baseline
  }

  /** Binary search over the ring (seqs are strictly increasing from head). */
  private find(seq: number): number {
    let lo = 0
    let hi = this.size - 1
    const cap = this.seqs.length
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const v = this.seqs[(this.head + mid) % cap]!
      if (v === seq) return mid
      if (v < seq) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }

  private grow(): void {
    const cap = this.seqs.length
    const seqs = new Float64Array(cap * 2)
    const done = new Uint8Array(cap * 2)
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) % cap
      seqs[k] = this.seqs[i]!
      done[k] = this.done[i]!
    }
    this.seqs = seqs
    this.done = done
    this.head = 0
  }
}
