import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeFirst, encode } from '@atcute/cbor'
import { cborUintLength, encodeCborUint, MAX_SEQ, spliceSeq } from '../../../src/store/seq-splice.ts'
import { checkEvent, mergeCollectionDeltas, mergeRepoStates } from '../../../src/store/sequencer.ts'
import { makeEvent } from '../../integration/store/helpers.ts'

test('encodeCborUint matches canonical CBOR at every width boundary', () => {
  for (const n of [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, MAX_SEQ]) {
    const mine = encodeCborUint(n)
    assert.deepEqual(new Uint8Array(mine), encode(n), `n=${n}`)
    assert.equal(mine.length, cborUintLength(n))
    assert.equal(decodeFirst(mine)[0], n)
  }
  assert.throws(() => encodeCborUint(-1), RangeError)
  assert.throws(() => encodeCborUint(1.5), RangeError)
  assert.throws(() => encodeCborUint(2 ** 53), RangeError)
})

test('spliceSeq produces a frame whose body decodes with the seq and is otherwise unchanged', () => {
  const ev = makeEvent('did:plc:abc', { padBytes: 10 })
  for (const seq of [0, 7, 24, 300, 70000, 2 ** 33, MAX_SEQ]) {
    const out = spliceSeq(ev.frame, ev.seqOffset, seq)
    const [header, rest] = decodeFirst(out)
    assert.deepEqual(header, { op: 1, t: '#identity' })
    const [body, tail] = decodeFirst(rest)
    assert.equal(tail.length, 0)
    assert.equal(body.seq, seq)
    assert.equal(body.did, 'did:plc:abc')
    assert.equal(out.length, ev.frame.length - 1 + cborUintLength(seq))
  }
  assert.equal(ev.frame[ev.seqOffset], 0, 'input untouched')
})

test('spliceSeq refuses a missing placeholder, a bad offset and seqs beyond 2^53-1', () => {
  const ev = makeEvent('did:plc:abc', { padBytes: 10 })
  assert.throws(() => spliceSeq(ev.frame, ev.seqOffset - 1, 5), /placeholder/)
  assert.throws(() => spliceSeq(ev.frame, ev.frame.length, 5), /outside/)
  assert.throws(() => spliceSeq(ev.frame, ev.seqOffset, 2 ** 53), /out of range/)
  assert.throws(() => spliceSeq(ev.frame, ev.seqOffset, -1), /out of range/)
})

test('mergeRepoStates keeps the highest rev per DID; an equal rev replaces only with allowEqual', () => {
  const e = (did: string, rev: string, cid: string, allowEqual?: boolean) => ({
    ev: makeEvent(did, { repoState: { rev, commitCid: cid, dataCid: 'd' + cid, allowEqual } }),
  })
  const merged = mergeRepoStates([
    e('a', '3kaaa', 'c1'),
    e('a', '3kaab', 'c2'),
    e('a', '3kaaa', 'c3'),
    e('b', '3kaaa', 'b1'),
    e('b', '3kaaa', 'b2'),
    e('b', '3kaaa', 'b3', true),
  ])
  const byDid = new Map(merged.map((m) => [m.did, m]))
  assert.equal(byDid.get('a')!.commitCid, 'c2')
  assert.equal(byDid.get('b')!.commitCid, 'b3')
})

test('mergeCollectionDeltas sums per (collection, did) and drops zeros', () => {
  const e = (did: string, deltas: Array<[string, number]>) => ({
    ev: makeEvent(did, { collectionDeltas: deltas.map(([collection, delta]) => ({ collection, delta })) }),
  })
  const merged = mergeCollectionDeltas([
    e('a', [
      ['x.post', 1],
      ['x.like', 1],
    ]),
    e('a', [
      ['x.post', 1],
      ['x.like', -1],
    ]),
    e('b', [['x.post', -1]]),
  ])
  assert.deepEqual(merged, [
    { collection: 'x.post', did: 'a', delta: 2 },
    { collection: 'x.post', did: 'b', delta: -1 },
  ])
})

test('checkEvent refuses input that would poison a batch', () => {
  const good = makeEvent('did:plc:abc', { padBytes: 1 })
  assert.equal(checkEvent(good), undefined)
  assert.equal(checkEvent({ ...good, did: 'did:plc:\u0000' })?.reason, 'did')
  assert.equal(checkEvent({ ...good, kind: 'handle' as never })?.reason, 'kind')
  assert.equal(checkEvent({ ...good, seqOffset: 0 })?.reason, 'seq_offset')
  assert.equal(checkEvent({ ...good, hostId: 1 })?.reason, 'upstream')
  assert.equal(checkEvent({ ...good, repoState: { rev: '', commitCid: 'c', dataCid: 'd' } })?.reason, 'repo_state')
  assert.equal(checkEvent({ ...good, collectionDeltas: [{ collection: 'a', delta: 0.5 }] })?.reason, 'collection')
})

test('a spliced frame owns its allocation (headroom + frame), never a slice of the shared Buffer pool', () => {
  // small frames are what Buffer.allocUnsafe would carve out of a pool slab; 40 KB would not be
  for (const size of [40, 600, 3000, 40_000]) {
    const frame = new Uint8Array(size)
    frame[0] = 0xa1
    frame[5] = 0x00
    for (const headroom of [0, 10]) {
      const out = spliceSeq(frame, 5, 1_000_000, headroom)
      assert.equal(out.byteOffset, headroom)
      assert.equal(out.buffer.byteLength, headroom + out.length, `size ${size} headroom ${headroom}`)
    }
  }
})
