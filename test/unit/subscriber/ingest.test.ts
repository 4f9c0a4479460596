import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CursorTracker } from '../../../src/subscriber/cursor-tracker.ts'
import { CursorRegistry } from '../../../src/subscriber/ingest.ts'

describe('CursorTracker.safeCursorIf', () => {
  it('answers without marking', () => {
    const t = new CursorTracker(10)
    for (const s of [11, 12, 13, 14]) t.register(s)
    assert.equal(t.safeCursorIf([12]), 10, '11 still in flight')
    assert.equal(t.safeCursorIf([11, 12]), 12)
    t.markDone(13)
    assert.equal(t.safeCursorIf([12, 11]), 13, 'done frames after the batch extend it')
    assert.equal(t.safeCursor(), 10, 'nothing marked')
    assert.equal(t.safeCursorIf([]), 10)
  })
})

describe('CursorRegistry', () => {
  it('cursorsFor reports batch hosts once per advance; committed marks; drops advance through the next call', () => {
    const r = new CursorRegistry()
    r.open(1, null)
    r.open(2, 100)
    for (const s of [1, 2, 3]) r.register(1, s)
    for (const s of [101, 102]) r.register(2, s)
    const batch = new Map([[1, [1, 2]]])
    assert.deepEqual([...r.cursorsFor(batch)], [[1, 2]])
    r.committed(batch)
    assert.equal(r.safeCursor(1), 2)
    // unchanged host is not re-sent
    assert.deepEqual([...r.cursorsFor(new Map([[1, []]]))], [])
    // a drop (validation) on host 2 advances it outside any batch
    assert.equal(r.markDone(2, 101), true)
    assert.deepEqual([...r.cursorsFor(new Map())], [[2, 101]])
    assert.deepEqual([...r.cursorsFor(new Map())], [])
    // idempotent marking (submit resolution after committed())
    assert.equal(r.markDone(1, 1), false)
  })

  it('batch order across hosts and out-of-order completion', () => {
    const r = new CursorRegistry()
    r.open(7, 0)
    for (let s = 1; s <= 5; s++) r.register(7, s)
    // frames 3 and 5 persisted first (another DID's worker was faster)
    const b1 = new Map([[7, [5, 3]]])
    assert.deepEqual([...r.cursorsFor(b1)], [])
    r.committed(b1)
    assert.equal(r.safeCursor(7), 0)
    const b2 = new Map([[7, [1, 2]]])
    assert.deepEqual([...r.cursorsFor(b2)], [[7, 3]])
    r.committed(b2)
    r.markDone(7, 4)
    assert.deepEqual([...r.cursorsFor(new Map())], [[7, 5]])
  })

  it('whenIdle and reset', async () => {
    const r = new CursorRegistry()
    r.open(1, 50)
    r.register(1, 51)
    let idle = false
    const p = r.whenIdle(1).then(() => {
      idle = true
    })
    await Promise.resolve()
    assert.equal(idle, false)
    assert.throws(() => r.reset(1, null))
    r.markDone(1, 51)
    await p
    assert.equal(idle, true)
    r.reset(1, null)
    assert.equal(r.lastSeq(1), null)
    assert.equal(r.register(1, 3), 'ok', 'lower seqs accepted after a reset')
  })
})
