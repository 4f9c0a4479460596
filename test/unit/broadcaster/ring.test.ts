import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ring } from '../../../src/broadcaster/ring.ts'
import type { RingEntry } from '../../../src/broadcaster/ring.ts'

function entry(seq: number, size = 10, did = `did:plc:${seq % 3}`): RingEntry {
  return { seq, did, time: seq, size, wire: Buffer.alloc(0) }
}

function seqs(r: Ring): number[] {
  const out: number[] = []
  for (let i = 0; i < r.length; i++) out.push(r.at(i)!.seq)
  return out
}

test('empty ring', () => {
  const r = new Ring({ maxFrames: 4, maxBytes: 100, floorSeq: 7 })
  assert.equal(r.length, 0)
  assert.equal(r.bytes, 0)
  assert.equal(r.oldestSeq, undefined)
  assert.equal(r.newestSeq, undefined)
  assert.equal(r.floorSeq, 7)
  assert.equal(r.firstIndexAfter(0), 0)
  assert.equal(r.at(0), undefined)
  assert.equal(r.bytesFrom(0), 0)
})

test('rejects out-of-order and at-or-below-floor pushes', () => {
  const r = new Ring({ maxFrames: 4, maxBytes: 100, floorSeq: 5 })
  assert.throws(() => r.push(entry(5)), RangeError)
  r.push(entry(6))
  assert.throws(() => r.push(entry(6)), RangeError)
  assert.throws(() => r.push(entry(3)), RangeError)
  r.push(entry(9))
  assert.deepEqual(seqs(r), [6, 9])
})

test('count bound evicts oldest and moves floor', () => {
  const r = new Ring({ maxFrames: 3, maxBytes: 1e9 })
  for (let s = 1; s <= 5; s++) r.push(entry(s))
  assert.deepEqual(seqs(r), [3, 4, 5])
  assert.equal(r.oldestSeq, 3)
  assert.equal(r.newestSeq, 5)
  assert.equal(r.floorSeq, 2)
  assert.equal(r.evictedCount, 2)
  assert.equal(r.bytes, 30)
})

test('byte bound evicts oldest; newest kept even if oversized', () => {
  const r = new Ring({ maxFrames: 100, maxBytes: 25 })
  r.push(entry(1, 10))
  r.push(entry(2, 10))
  assert.deepEqual(seqs(r), [1, 2])
  r.push(entry(3, 10))
  assert.deepEqual(seqs(r), [2, 3])
  assert.equal(r.bytes, 20)
  r.push(entry(4, 50))
  assert.deepEqual(seqs(r), [4])
  assert.equal(r.bytes, 50)
  assert.equal(r.floorSeq, 3)
})

test('grows past the initial capacity and wraps correctly', () => {
  const r = new Ring({ maxFrames: 3000, maxBytes: 1e12 })
  for (let s = 1; s <= 5000; s++) r.push(entry(s * 2, 1))
  assert.equal(r.length, 3000)
  assert.equal(r.oldestSeq, 2 * 2001)
  assert.equal(r.newestSeq, 10000)
  for (let i = 0; i < r.length; i += 97) assert.equal(r.at(i)!.seq, 2 * (2001 + i))
  assert.equal(r.floorSeq, 4000)
})

test('firstIndexAfter: binary search over wrapped storage with gaps', () => {
  const r = new Ring({ maxFrames: 8, maxBytes: 1e9 })
  for (let s = 1; s <= 13; s++) r.push(entry(s * 10)) // holds 60..130
  assert.equal(r.oldestSeq, 60)
  assert.equal(r.firstIndexAfter(0), 0)
  assert.equal(r.firstIndexAfter(59), 0)
  assert.equal(r.firstIndexAfter(60), 1)
  assert.equal(r.firstIndexAfter(65), 1)
  assert.equal(r.firstIndexAfter(129), 7)
  assert.equal(r.firstIndexAfter(130), 8)
  assert.equal(r.firstIndexAfter(1e15), 8)
  for (let c = 50; c <= 140; c++) {
    const i = r.firstIndexAfter(c)
    if (i < r.length) assert.ok(r.at(i)!.seq > c)
    if (i > 0) assert.ok(r.at(i - 1)!.seq <= c)
  }
})

test('bytesFrom counts bytes from an index to the newest', () => {
  const r = new Ring({ maxFrames: 3, maxBytes: 1e9 })
  r.push(entry(1, 5))
  r.push(entry(2, 7))
  r.push(entry(3, 11))
  r.push(entry(4, 13)) // evicts 1
  assert.equal(r.bytesFrom(0), 7 + 11 + 13)
  assert.equal(r.bytesFrom(1), 11 + 13)
  assert.equal(r.bytesFrom(2), 13)
  assert.equal(r.bytesFrom(3), 0)
  assert.equal(r.appendedBytes, 36)
})

test('hideDid marks only held frames of that DID', () => {
  const r = new Ring({ maxFrames: 4, maxBytes: 1e9 })
  r.push(entry(1, 1, 'did:a'))
  r.push(entry(2, 1, 'did:b'))
  r.push(entry(3, 1, 'did:a'))
  assert.equal(r.hideDid('did:a'), 2)
  assert.equal(r.hideDid('did:a'), 0)
  r.push(entry(4, 1, 'did:a'))
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => r.isHidden(i)),
    [true, false, true, false],
  )
  r.push(entry(5, 1, 'did:b')) // evicts seq 1; slot reuse must clear the flag
  r.push(entry(6, 1, 'did:b'))
  r.push(entry(7, 1, 'did:b'))
  r.push(entry(8, 1, 'did:b'))
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => r.isHidden(i)),
    [false, false, false, false],
  )
})

test('validates options', () => {
  assert.throws(() => new Ring({ maxFrames: 0, maxBytes: 1 }), RangeError)
  assert.throws(() => new Ring({ maxFrames: 1, maxBytes: 0 }), RangeError)
})
