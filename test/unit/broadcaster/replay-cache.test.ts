import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SharedReplayReader } from '../../../src/broadcaster/replay-cache.ts'
import type { BroadcastFrame, EventLogReader } from '../../../src/broadcaster/types.ts'

/** An in-memory event log that counts queries and can hold them until released. */
function fakeLog(count: number, frameBytes = 100) {
  const events: BroadcastFrame[] = Array.from({ length: count }, (_, i) => ({
    seq: i + 1,
    did: `did:plc:${i % 7}`,
    frame: new Uint8Array(frameBytes),
    time: 0,
  }))
  const queries: number[] = []
  let gate: Promise<void> | null = null
  const log: EventLogReader & { events: BroadcastFrame[] } = {
    events,
    async readRange(after, limit) {
      queries.push(after)
      if (gate) await gate
      return log.events.filter((e) => e.seq > after).slice(0, limit)
    },
    prunedThrough: () => 0,
  }
  return {
    log,
    queries,
    hold() {
      let release!: () => void
      gate = new Promise((r) => (release = r))
      return () => {
        gate = null
        release()
      }
    },
  }
}

const seqs = (fs: BroadcastFrame[]) => fs.map((f) => f.seq)

describe('SharedReplayReader', () => {
  it('a pack of consumers reads each page from the log once', async () => {
    const f = fakeLog(1000)
    const r = new SharedReplayReader(f.log, { maxBytes: 1 << 20 })
    const release = f.hold()
    // the leader and two followers slightly ahead of it, all while the leader's query is out
    const pending = [r.readRange(100, 50), r.readRange(100, 50), r.readRange(120, 50)]
    release()
    const [a, b, c] = await Promise.all(pending)
    assert.deepEqual(seqs(a), range(101, 150))
    assert.deepEqual(seqs(b), range(101, 150))
    assert.deepEqual(seqs(c), range(121, 150), 'served from the leader page, up to its end')
    assert.deepEqual(f.queries, [100])
    // later requests inside the page are hits; past its end a new query
    assert.deepEqual(seqs(await r.readRange(149, 50)), [150])
    assert.deepEqual(seqs(await r.readRange(150, 10)), range(151, 160))
    assert.deepEqual(f.queries, [100, 150])
    const st = r.stats()
    assert.equal(st.misses, 2)
    assert.ok(st.hits >= 3 && st.joined === 2, JSON.stringify(st))
  })

  it('answers exactly what the log would (seq > after, at most limit)', async () => {
    const f = fakeLog(300)
    const r = new SharedReplayReader(f.log, { maxBytes: 1 << 20 })
    await r.readRange(0, 200)
    for (const [after, limit] of [
      [0, 5],
      [17, 3],
      [198, 10],
      [199, 10],
    ]) {
      assert.deepEqual(
        seqs(await r.readRange(after, limit)),
        seqs(f.log.events.filter((e) => e.seq > after).slice(0, limit)).slice(0, Math.min(limit, 200 - after)),
      )
    }
    assert.deepEqual(f.queries, [0], 'all inside the page (0, 200]')
    assert.deepEqual(seqs(await r.readRange(200, 3)), [201, 202, 203])
    assert.deepEqual(f.queries, [0, 200], 'past the page end: a query')
  })

  it('stays within its byte cap, least recently used page out; an oversized page is not kept', async () => {
    const f = fakeLog(1000, 1000)
    const r = new SharedReplayReader(f.log, { maxBytes: 25_000 }) // two pages of 10 frames
    await r.readRange(0, 10)
    await r.readRange(10, 10)
    await r.readRange(5, 1) // touch the first page
    await r.readRange(20, 10) // evicts the page (10, 20]
    assert.ok(r.stats().bytes <= 25_000)
    assert.equal(r.stats().pages, 2)
    const q = f.queries.length
    await r.readRange(3, 2)
    assert.equal(f.queries.length, q, 'the recently used page survived')
    await r.readRange(12, 2)
    assert.equal(f.queries.length, q + 1, 'the least recently used one was evicted')
    await r.readRange(500, 100) // 100 KB page > cap
    assert.ok(r.stats().bytes <= 25_000)
  })

  it('a takedown clears the cache, and a query in flight across it does not refill it', async () => {
    const f = fakeLog(100)
    const r = new SharedReplayReader(f.log, { maxBytes: 1 << 20 })
    await r.readRange(0, 50)
    r.invalidate()
    assert.equal(r.stats().pages, 0)
    const release = f.hold()
    const p = r.readRange(0, 50)
    r.invalidate()
    // the log now hides did:plc:0 (what a takedown does to the log)
    f.log.events = f.log.events.filter((e) => e.did !== 'did:plc:0')
    release()
    await p
    assert.equal(r.stats().pages, 0, 'a page read before the takedown is not kept')
    const after = await r.readRange(0, 50)
    assert.ok(after.every((e) => e.did !== 'did:plc:0'))
  })

  it('an empty answer is not cached (nothing persisted yet after that seq)', async () => {
    const f = fakeLog(10)
    const r = new SharedReplayReader(f.log, { maxBytes: 1 << 20 })
    assert.deepEqual(await r.readRange(10, 5), [])
    f.log.events.push({ seq: 11, did: 'did:plc:x', frame: new Uint8Array(1), time: 0 })
    assert.deepEqual(seqs(await r.readRange(10, 5)), [11])
  })
})

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i)
}
