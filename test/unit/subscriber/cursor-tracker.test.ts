import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CursorTracker } from '../../../src/subscriber/cursor-tracker.ts'

describe('CursorTracker', () => {
  it('starts at the connection cursor (or null for a new host at the live head)', () => {
    assert.equal(new CursorTracker(100).safeCursor(), 100)
    assert.equal(new CursorTracker(null).safeCursor(), null)
  })

  it('refuses duplicate and decreasing seqs, including against the initial cursor', () => {
    const t = new CursorTracker(10)
    assert.equal(t.register(10), 'duplicate')
    assert.equal(t.register(9), 'decreasing')
    assert.equal(t.register(11), 'ok')
    assert.equal(t.register(11), 'duplicate')
    assert.equal(t.register(5), 'decreasing')
    assert.equal(t.register(20), 'ok') // gaps are fine
    assert.equal(t.lastSeq, 20)
    assert.equal(t.inFlight, 2)
  })

  it('advances only over a fully completed prefix (out-of-order completion)', () => {
    const t = new CursorTracker(null)
    for (const s of [1, 2, 3, 5, 8]) assert.equal(t.register(s), 'ok')
    assert.equal(t.markDone(3), true)
    assert.equal(t.safeCursor(), null)
    assert.equal(t.markDone(5), true)
    assert.equal(t.safeCursor(), null)
    assert.equal(t.markDone(1), true)
    assert.equal(t.safeCursor(), 1)
    assert.equal(t.markDone(2), true)
    assert.equal(t.safeCursor(), 5) // 1,2,3,5 all done
    assert.equal(t.inFlight, 1)
    assert.equal(t.markDone(8), true)
    assert.equal(t.safeCursor(), 8)
    assert.equal(t.inFlight, 0)
  })

  it('reports unknown or repeated completions', () => {
    const t = new CursorTracker(0)
    t.register(1)
    t.register(2)
    assert.equal(t.markDone(7), false)
    assert.equal(t.markDone(2), true)
    assert.equal(t.markDone(2), false)
    assert.equal(t.markDone(1), true)
    assert.equal(t.markDone(1), false) // already retired below the safe cursor
    assert.equal(t.safeCursor(), 2)
  })

  it('random completion order over a growing ring matches a reference model', () => {
    let seed = 99
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const t = new CursorTracker(1_000)
    const pending: number[] = []
    const registered: number[] = []
    const done = new Set<number>()
    let next = 1_000
    for (let step = 0; step < 50_000; step++) {
      if (pending.length === 0 || rnd(3) !== 0) {
        next += 1 + rnd(3)
        assert.equal(t.register(next), 'ok')
        pending.push(next)
        registered.push(next)
      } else {
        const k = rnd(pending.length)
        const s = pending[k]!
        pending[k] = pending[pending.length - 1]!
        pending.pop()
        assert.equal(t.markDone(s), true)
        done.add(s)
      }
      if (step % 997 === 0) {
        // reference: highest registered seq with every registered seq ≤ it done
        let safe = 1_000
        for (const s of registered) {
          if (!done.has(s)) break
          safe = s
        }
        assert.equal(t.safeCursor(), safe, `step ${step}`)
        assert.equal(t.inFlight, pending.length + countDoneAbove(registered, done, safe))
      }
    }
  })

  it('caps in-flight frames', () => {
    const t = new CursorTracker(null, { maxInFlight: 3 })
    assert.equal(t.register(1), 'ok')
    assert.equal(t.register(2), 'ok')
    assert.equal(t.register(3), 'ok')
    assert.equal(t.register(4), 'full')
    assert.equal(t.lastSeq, 3) // a refused frame is not registered
    t.markDone(2) // not a prefix: still 3 in flight
    assert.equal(t.register(4), 'full')
    t.markDone(1)
    assert.equal(t.register(4), 'ok')
  })

  it('resetTo after an upstream seq reset, only once drained', () => {
    const t = new CursorTracker(500)
    t.register(501)
    assert.throws(() => t.resetTo(null))
    t.markDone(501)
    t.resetTo(null)
    assert.equal(t.safeCursor(), null)
    assert.equal(t.register(1), 'ok')
    t.markDone(1)
    assert.equal(t.safeCursor(), 1)
  })
})

function countDoneAbove(registered: number[], done: Set<number>, safe: number): number {
  let n = 0
  for (const s of registered) if (s > safe && done.has(s)) n++
  return n
}
