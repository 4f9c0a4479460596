/**
 * Consumers that fall out of the ring catch up from the event log page by page. They rarely fall
 * alone: after a burst none of them could absorb, or when everyone reconnects after a relay
 * restart, a pack of consumers asks for nearly the same pages. Read independently, N consumers
 * cost N queries and, worse, N times the main-thread work of receiving and parsing every row,
 * which is what ingest needs the main thread for. Measured in the load benchmark: 250 lagging
 * consumers cut ingest from ~1,600 to ~360 commits/s.
 *
 * This reader shares that work: a query in flight is joined by every request it will answer, and
 * recently read pages stay in memory (bounded in bytes, least recently used first out) for the
 * rest of the pack. A page read with `seq > after` holds every event in (after, last seq], so any
 * request starting inside that range is answered from it.
 *
 * Takedowns: the cache is cleared when the broadcaster hides a DID, so hidden events are never
 * served from here after the hide (the log itself stops returning them at the same moment).
 */
import type { BroadcastFrame, EventLogReader } from './types.ts'

interface Page {
  /** the query's `after`: the page holds every event with after < seq <= last */
  after: number
  last: number
  frames: BroadcastFrame[]
  bytes: number
}

interface InFlight {
  after: number
  promise: Promise<BroadcastFrame[]>
}

export interface ReplayCacheStats {
  hits: number
  misses: number
  /** requests that waited for a query another consumer started */
  joined: number
  pages: number
  bytes: number
}

export class SharedReplayReader implements EventLogReader {
  readonly #inner: EventLogReader
  readonly #maxBytes: number
  /** insertion order = recency (a hit re-inserts) */
  readonly #pages = new Map<number, Page>()
  readonly #inFlight = new Set<InFlight>()
  #bytes = 0
  /** bumped by invalidate(): a query started before it must not fill the cache after it */
  #generation = 0
  readonly #counts = { hits: 0, misses: 0, joined: 0 }

  constructor(inner: EventLogReader, opts: { maxBytes: number }) {
    this.#inner = inner
    this.#maxBytes = Math.max(0, opts.maxBytes)
  }

  prunedThrough(): number {
    return this.#inner.prunedThrough()
  }

  stats(): ReplayCacheStats {
    return { ...this.#counts, pages: this.#pages.size, bytes: this.#bytes }
  }

  /** Forget every cached page (a takedown hid events some of them may hold). */
  invalidate(): void {
    this.#pages.clear()
    this.#bytes = 0
    this.#generation++
  }

  async readRange(afterSeq: number, limit: number): Promise<BroadcastFrame[]> {
    const cached = this.#lookup(afterSeq, limit)
    if (cached) return cached
    // A query started from at or below our position will likely cover us: wait for the nearest.
    let lead: InFlight | undefined
    // (seqs are dense apart from takedowns, so a page of `limit` events reaches about after + limit)
    for (const q of this.#inFlight) {
      if (q.after <= afterSeq && afterSeq < q.after + limit && (!lead || q.after > lead.after)) lead = q
    }
    if (lead) {
      this.#counts.joined++
      await lead.promise.catch(() => {})
      const again = this.#lookup(afterSeq, limit)
      if (again) return again
    }
    this.#counts.misses++
    const generation = this.#generation
    const q: InFlight = { after: afterSeq, promise: this.#inner.readRange(afterSeq, limit) }
    this.#inFlight.add(q)
    try {
      const frames = await q.promise
      if (generation === this.#generation) this.#store(afterSeq, frames)
      return frames
    } finally {
      this.#inFlight.delete(q)
    }
  }

  #lookup(after: number, limit: number): BroadcastFrame[] | undefined {
    for (const [key, p] of this.#pages) {
      if (!(p.after <= after && after < p.last)) continue
      this.#pages.delete(key)
      this.#pages.set(key, p)
      this.#counts.hits++
      const from = firstAfter(p.frames, after)
      return p.frames.slice(from, from + limit)
    }
    return undefined
  }

  #store(after: number, frames: BroadcastFrame[]): void {
    if (frames.length === 0) return
    let bytes = 0
    for (const f of frames) bytes += f.frame.byteLength
    if (bytes > this.#maxBytes) return
    const old = this.#pages.get(after)
    if (old) {
      this.#pages.delete(after)
      this.#bytes -= old.bytes
    }
    this.#pages.set(after, { after, last: frames[frames.length - 1]!.seq, frames, bytes })
    this.#bytes += bytes
    for (const [key, p] of this.#pages) {
      if (this.#bytes <= this.#maxBytes) break
      this.#pages.delete(key)
      this.#bytes -= p.bytes
    }
  }
}

/** Index of the first frame with seq > after (frames ascending by seq). */
function firstAfter(frames: readonly BroadcastFrame[], after: number): number {
  let lo = 0
  let hi = frames.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (frames[mid]!.seq <= after) lo = mid + 1
    else hi = mid
  }
  return lo
}
