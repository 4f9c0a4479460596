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

describe('CursorTracker pinned frames (persisted above the cursor, skipped after a restart)', () => {
  it('lists pinned done seqs above the would-be cursor, batch pins included, until the cursor passes them', () => {
    const t = new CursorTracker(10)
    for (const s of [11, 12, 13, 14, 15]) t.register(s)
    assert.deepEqual(t.doneAboveIf([]), { cursor: 10, doneAbove: [] })
    // 12 (an #identity) persisted while 11 is still in a slow worker; 13 a commit
    t.markDone(12, true)
    t.markDone(13)
    assert.deepEqual(t.doneAboveIf([]), { cursor: 10, doneAbove: [12] }, 'commits are not listed: the rev check refuses their replay')
    assert.deepEqual(t.doneAboveIf([14], [14]), { cursor: 10, doneAbove: [12, 14] }, 'the batch about to commit is included')
    assert.deepEqual(t.doneAboveIf([11, 14], [14]), { cursor: 14, doneAbove: [] }, 'nothing above once the gap closes')
    t.markDone(11)
    assert.equal(t.safeCursor(), 13)
    assert.deepEqual(t.doneAboveIf([]), { cursor: 13, doneAbove: [] })
  })

  it('after a restart, saved seqs are registered as done without submitting, and stay saved until the cursor passes them', () => {
    const t = new CursorTracker(10, { alreadyPersisted: [14, 12, 9, 12] })
    assert.deepEqual(t.doneAboveIf([]), { cursor: 10, doneAbove: [12, 14] }, 'sorted, deduplicated, only above the cursor')
    assert.equal(t.register(11), 'ok')
    assert.equal(t.register(12), 'already_persisted')
    assert.equal(t.register(13), 'ok')
    assert.equal(t.inFlight, 3, '12 holds a slot so the cursor cannot pass 11 early')
    // a second crash now must still skip 12 and 14
    assert.deepEqual(t.doneAboveIf([]), { cursor: 10, doneAbove: [12, 14] })
    t.markDone(11)
    assert.equal(t.safeCursor(), 12, 'the already persisted frame completes with its predecessors')
    assert.deepEqual(t.doneAboveIf([]), { cursor: 12, doneAbove: [14] })
    t.markDone(13)
    assert.equal(t.register(14), 'already_persisted')
    assert.equal(t.safeCursor(), 14, 'at the head it completes at once')
    assert.deepEqual(t.doneAboveIf([]), { cursor: 14, doneAbove: [] })
    assert.equal(t.register(15), 'ok')
  })

  it('a seq reset forgets the saved list', () => {
    const t = new CursorTracker(10, { alreadyPersisted: [12] })
    t.resetTo(null)
    assert.equal(t.register(12), 'ok')
  })
})

describe('CursorRegistry', () => {
  it('reports a host whose done list changed even when its cursor did not, and passes pins through to the tracker', () => {
    const r = new CursorRegistry()
    r.open(1, 0)
    for (const s of [1, 2, 3]) r.register(1, s)
    const b1 = new Map([[1, [2]]])
    const pins = new Map([[1, [2]]])
    assert.deepEqual([...r.cursorsFor(b1, pins)], [[1, { seq: 0, doneAbove: [2] }]], 'cursor unchanged, list changed')
    r.committed(b1, pins)
    assert.deepEqual([...r.cursorsFor(new Map([[1, []]]))], [], 'nothing changed: not re-sent')
    const b2 = new Map([[1, [1]]])
    assert.deepEqual([...r.cursorsFor(b2)], [[1, { seq: 2, doneAbove: [] }]])
    r.committed(b2)
    assert.equal(r.safeCursor(1), 2)
  })

  it('an already persisted frame at the head advances the cursor through the next flush', () => {
    const r = new CursorRegistry()
    r.open(4, 10, [11])
    assert.equal(r.register(4, 11), 'already_persisted')
    assert.equal(r.safeCursor(4), 11)
    assert.deepEqual([...r.cursorsFor(new Map())], [[4, { seq: 11, doneAbove: [] }]])
  })

  it('cursorsFor reports batch hosts once per advance; committed marks; drops advance through the next call', () => {
    const r = new CursorRegistry()
    r.open(1, null)
    r.open(2, 100)
    for (const s of [1, 2, 3]) r.register(1, s)
    for (const s of [101, 102]) r.register(2, s)
    const batch = new Map([[1, [1, 2]]])
    assert.deepEqual([...r.cursorsFor(batch)], [[1, { seq: 2, doneAbove: [] }]])
    r.committed(batch)
    assert.equal(r.safeCursor(1), 2)
    // unchanged host is not re-sent
    assert.deepEqual([...r.cursorsFor(new Map([[1, []]]))], [])
    // a drop (validation) on host 2 advances it outside any batch
    assert.equal(r.markDone(2, 101), true)
    assert.deepEqual([...r.cursorsFor(new Map())], [[2, { seq: 101, doneAbove: [] }]])
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
    assert.deepEqual([...r.cursorsFor(b2)], [[7, { seq: 3, doneAbove: [] }]])
    r.committed(b2)
    r.markDone(7, 4)
    assert.deepEqual([...r.cursorsFor(new Map())], [[7, { seq: 5, doneAbove: [] }]])
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
