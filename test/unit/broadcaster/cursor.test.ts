import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decideCursor, parseCursor } from '../../../src/broadcaster/cursor.ts'
import type { CursorContext } from '../../../src/broadcaster/cursor.ts'

test('parseCursor: absent or empty = live', () => {
  assert.deepEqual(parseCursor(undefined), { ok: true, cursor: undefined })
  assert.deepEqual(parseCursor(null), { ok: true, cursor: undefined })
  assert.deepEqual(parseCursor([]), { ok: true, cursor: undefined })
  assert.deepEqual(parseCursor(''), { ok: true, cursor: undefined })
  assert.deepEqual(parseCursor(['']), { ok: true, cursor: undefined })
})

test('parseCursor: non-negative integers', () => {
  assert.deepEqual(parseCursor('0'), { ok: true, cursor: 0 })
  assert.deepEqual(parseCursor('42'), { ok: true, cursor: 42 })
  assert.deepEqual(parseCursor('007'), { ok: true, cursor: 7 })
  assert.deepEqual(parseCursor(['9007199254740991']), { ok: true, cursor: 9007199254740991 })
})

test('parseCursor: rejects negative, non-integer, too large, repeated', () => {
  for (const bad of ['-1', '-0', '1.5', '1e3', 'abc', ' 1', '1 ', '+1', '0x10', 'NaN', 'Infinity']) {
    const r = parseCursor(bad)
    assert.equal(r.ok, false, bad)
    if (!r.ok) {
      assert.equal(r.error, 'InvalidRequest')
      assert.match(r.message, /cursor/)
    }
  }
  for (const big of ['9007199254740992', '99999999999999999999999']) {
    const r = parseCursor(big)
    assert.equal(r.ok, false, big)
    if (!r.ok) assert.match(r.message, /cursor must be at most 9007199254740991/)
  }
  const r = parseCursor(['1', '2'])
  assert.equal(r.ok, false)
  if (!r.ok) assert.match(r.message, /cursor/)
})

const base: CursorContext = { headSeq: 1000, ringFloor: 800, prunedThrough: 100, hasStore: true }

test('decide: no cursor = live', () => {
  assert.deepEqual(decideCursor(undefined, base), { action: 'live' })
})

test('decide: cursor above head = future (also on an empty log)', () => {
  assert.deepEqual(decideCursor(1001, base), { action: 'future' })
  assert.deepEqual(decideCursor(1, { headSeq: 0, ringFloor: 0, prunedThrough: 0, hasStore: true }), { action: 'future' })
})

test('decide: cursor equal to head = replay of nothing from the ring (then live)', () => {
  assert.deepEqual(decideCursor(1000, base), { action: 'replay', source: 'ring', afterSeq: 1000, outdated: false })
})

test('decide: cursor within ring coverage = ring replay (boundary: cursor == ringFloor)', () => {
  assert.deepEqual(decideCursor(900, base), { action: 'replay', source: 'ring', afterSeq: 900, outdated: false })
  assert.deepEqual(decideCursor(800, base), { action: 'replay', source: 'ring', afterSeq: 800, outdated: false })
})

test('decide: cursor older than ring but in window = store replay (boundaries)', () => {
  assert.deepEqual(decideCursor(799, base), { action: 'replay', source: 'store', afterSeq: 799, outdated: false })
  assert.deepEqual(decideCursor(100, base), { action: 'replay', source: 'store', afterSeq: 100, outdated: false })
})

test('decide: cursor older than the window = OutdatedCursor then replay from the oldest', () => {
  assert.deepEqual(decideCursor(99, base), { action: 'replay', source: 'store', afterSeq: 100, outdated: true })
  assert.deepEqual(decideCursor(0, base), { action: 'replay', source: 'store', afterSeq: 100, outdated: true })
})

test('decide: cursor=0 with nothing pruned = full replay, not outdated', () => {
  const ctx = { ...base, prunedThrough: 0 }
  assert.deepEqual(decideCursor(0, ctx), { action: 'replay', source: 'store', afterSeq: 0, outdated: false })
})

test('decide: outdated but window floor already inside the ring = ring', () => {
  const ctx = { ...base, prunedThrough: 850 }
  assert.deepEqual(decideCursor(10, ctx), { action: 'replay', source: 'ring', afterSeq: 850, outdated: true })
})

test('decide: without a store the ring is the window', () => {
  const ctx = { headSeq: 1000, ringFloor: 800, prunedThrough: 0, hasStore: false }
  assert.deepEqual(decideCursor(900, ctx), { action: 'replay', source: 'ring', afterSeq: 900, outdated: false })
  assert.deepEqual(decideCursor(800, ctx), { action: 'replay', source: 'ring', afterSeq: 800, outdated: false })
  assert.deepEqual(decideCursor(799, ctx), { action: 'replay', source: 'ring', afterSeq: 800, outdated: true })
  assert.deepEqual(decideCursor(0, { ...ctx, ringFloor: 0 }), { action: 'replay', source: 'ring', afterSeq: 0, outdated: false })
})
