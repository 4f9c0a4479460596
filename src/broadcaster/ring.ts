/**
 * Ring buffer of the most recent outbound frames, bounded by frame count and by total bytes.
 *
 * Storage is a power-of-two circular buffer of parallel arrays that grows (doubling) up to the
 * count bound, so a large `maxFrames` costs nothing until it is used. Append and eviction are O(1)
 * amortized; "first entry with seq > cursor" is a binary search over the seq column.
 *
 * `floorSeq` is the ring's coverage guarantee: every frame with `seq > floorSeq` that was ever
 * pushed is still in the ring (possibly marked hidden). It starts at the seq the event log had
 * reached when the ring was created and becomes the seq of the last evicted frame. A cursor
 * `>= floorSeq` can be served from the ring alone; an older one needs the event log.
 */

export interface RingOptions {
  /** Maximum number of frames kept (>= 1). */
  maxFrames: number
  /** Maximum total payload bytes kept (>= 1). The newest frame is always kept, even if larger. */
  maxBytes: number
  /** Newest seq already persisted before this ring existed (0 for an empty log). */
  floorSeq?: number
}

/** A frame as stored in the ring. `wire` is what gets written to consumer sockets. */
export interface RingEntry {
  seq: number
  did: string
  time: number
  /** Bytes counted against `maxBytes`. */
  size: number
  /** Opaque per-frame payload shared by all consumers (e.g. the pre-framed WebSocket message). */
  wire: Buffer
}

const INITIAL_CAPACITY = 1024

export class Ring {
  readonly maxFrames: number
  readonly maxBytes: number

  #cap: number
  #mask: number
  #head = 0 // physical slot of the oldest entry
  #len = 0
  #bytes = 0
  #floor: number
  #appendedBytes = 0 // running total of sizes ever pushed
  #evicted = 0

  #seqs: Float64Array
  #cumBefore: Float64Array // #appendedBytes just before this entry was pushed
  #entries: (RingEntry | undefined)[]
  #hidden: Uint8Array

  constructor(opts: RingOptions) {
    if (!(Number.isSafeInteger(opts.maxFrames) && opts.maxFrames >= 1)) {
      throw new RangeError('ring maxFrames must be a positive integer')
    }
    if (!(Number.isFinite(opts.maxBytes) && opts.maxBytes >= 1)) {
      throw new RangeError('ring maxBytes must be positive')
    }
    this.maxFrames = opts.maxFrames
    this.maxBytes = opts.maxBytes
    this.#floor = opts.floorSeq ?? 0
    this.#cap = Math.min(INITIAL_CAPACITY, nextPow2(opts.maxFrames))
    this.#mask = this.#cap - 1
    this.#seqs = new Float64Array(this.#cap)
    this.#cumBefore = new Float64Array(this.#cap)
    this.#entries = new Array(this.#cap).fill(undefined)
    this.#hidden = new Uint8Array(this.#cap)
  }

  /** Number of frames held. */
  get length(): number {
    return this.#len
  }
  /** Total bytes held (sum of `size`). */
  get bytes(): number {
    return this.#bytes
  }
  /** Every pushed frame with seq > floorSeq is still held. */
  get floorSeq(): number {
    return this.#floor
  }
  get oldestSeq(): number | undefined {
    return this.#len === 0 ? undefined : this.#seqs[this.#head]
  }
  get newestSeq(): number | undefined {
    return this.#len === 0 ? undefined : this.#seqs[(this.#head + this.#len - 1) & this.#mask]
  }
  /** Frames evicted since creation (for metrics). */
  get evictedCount(): number {
    return this.#evicted
  }
  /** Running total of bytes ever pushed; with `bytesBefore()` gives byte distances. */
  get appendedBytes(): number {
    return this.#appendedBytes
  }

  /** Appends a frame; seq must be greater than every seq pushed before and than floorSeq. */
  push(entry: RingEntry): void {
    const newest = this.#len === 0 ? this.#floor : this.#seqs[(this.#head + this.#len - 1) & this.#mask]!
    if (!(entry.seq > newest)) {
      throw new RangeError(`ring push out of order: seq ${entry.seq} after ${newest}`)
    }
    if (this.#len === this.maxFrames) this.#evictOldest()
    else if (this.#len === this.#cap) this.#grow()
    const slot = (this.#head + this.#len) & this.#mask
    this.#seqs[slot] = entry.seq
    this.#cumBefore[slot] = this.#appendedBytes
    this.#entries[slot] = entry
    this.#hidden[slot] = 0
    this.#len++
    this.#bytes += entry.size
    this.#appendedBytes += entry.size
    while (this.#bytes > this.maxBytes && this.#len > 1) this.#evictOldest()
  }

  /** Entry at logical index i (0 = oldest), or undefined when out of range. */
  at(i: number): RingEntry | undefined {
    if (i < 0 || i >= this.#len) return undefined
    return this.#entries[(this.#head + i) & this.#mask]
  }

  /** Whether the entry at logical index i is hidden by a takedown. */
  isHidden(i: number): boolean {
    return this.#hidden[(this.#head + i) & this.#mask] === 1
  }

  /** Logical index of the first entry with seq > cursor (== length when there is none). */
  firstIndexAfter(cursor: number): number {
    let lo = 0
    let hi = this.#len
    const seqs = this.#seqs
    const head = this.#head
    const mask = this.#mask
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (seqs[(head + mid) & mask]! > cursor) hi = mid
      else lo = mid + 1
    }
    return lo
  }

  /** Sum of sizes of the entries from logical index i to the newest (0 when i >= length). */
  bytesFrom(i: number): number {
    if (i >= this.#len) return 0
    if (i < 0) i = 0
    return this.#appendedBytes - this.#cumBefore[(this.#head + i) & this.#mask]!
  }

  /**
   * Marks every held frame of `did` hidden so replay skips it. Returns how many were marked.
   * O(length); takedowns are rare. Frames pushed later are not affected.
   */
  hideDid(did: string): number {
    let n = 0
    for (let i = 0; i < this.#len; i++) {
      const slot = (this.#head + i) & this.#mask
      if (this.#hidden[slot] === 0 && this.#entries[slot]!.did === did) {
        this.#hidden[slot] = 1
        n++
      }
    }
    return n
  }

  #evictOldest(): void {
    const slot = this.#head
    const e = this.#entries[slot]!
    this.#entries[slot] = undefined
    this.#bytes -= e.size
    this.#floor = e.seq
    this.#head = (slot + 1) & this.#mask
    this.#len--
    this.#evicted++
  }

  #grow(): void {
    const cap = this.#cap * 2
    const seqs = new Float64Array(cap)
    const cum = new Float64Array(cap)
    const entries: (RingEntry | undefined)[] = new Array(cap).fill(undefined)
    const hidden = new Uint8Array(cap)
    for (let i = 0; i < this.#len; i++) {
      const from = (this.#head + i) & this.#mask
      seqs[i] = this.#seqs[from]!
      cum[i] = this.#cumBefore[from]!
      entries[i] = this.#entries[from]
      hidden[i] = this.#hidden[from]!
    }
    this.#cap = cap
    this.#mask = cap - 1
    this.#head = 0
    this.#seqs = seqs
    this.#cumBefore = cum
    this.#entries = entries
    this.#hidden = hidden
  }
}

function nextPow2(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}
