import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeFirst } from '@atcute/cbor'
import { makeKeypair, createRepo, buildCommit, create, update, del, encodeFrame } from './helpers.ts'
import { decodeEvent, validateCommit } from '../../../src/validator/validate.ts'
import { verifierFromDidKey } from '../../../src/validator/keys.ts'
import {
  encodeAccountFrame,
  encodeCommitFrame,
  encodeErrorFrame,
  encodeIdentityFrame,
  encodeInfoFrame,
  encodeSyncFrame,
} from '../../../src/validator/encode.ts'
import { spliceSeq } from '../../../src/store/seq-splice.ts'
import { decodeFrame } from '../../../src/validator/frame.ts'

function decodeBoth(bytes: Uint8Array): [Record<string, unknown>, Record<string, unknown>] {
  // compare bytes, not containers: spliced frames are Buffers, @ipld/dag-cbor returns Uint8Arrays
  const frame = new Uint8Array(bytes)
  const [h, rest] = decodeFirst(frame) // atcute enforces canonical key order and minimal ints
  void h
  assert.doesNotThrow(() => decodeFirst(rest))
  const hb = dagCbor.encode(dagCbor.decode(frame.subarray(0, frame.length - rest.length)))
  const header = dagCbor.decode(hb) as Record<string, unknown>
  const body = dagCbor.decode(rest) as Record<string, unknown>
  // canonical: re-encoding with @ipld/dag-cbor yields identical bytes
  assert.deepEqual(dagCbor.encode(body), rest)
  return [header, body]
}

test('#commit: strict outbound frame, seq splice at every width', async () => {
  const kp = await makeKeypair('k256')
  const repo = await createRepo(kp, 'did:plc:encodetest000000000000000', 3)
  const built = await buildCommit(repo, kp, [create()])
  const { tooBig: _t, rebase: _r, blobs: _b, ...lean } = built.body
  const upstream = { ...lean, futureField: { a: [1, 'x'] } }
  const d = decodeEvent(encodeFrame('#commit', upstream))
  assert.ok(d.kind === 'event' && d.event.type === '#commit')
  const r = validateCommit(d.event, null, verifierFromDidKey(kp.did()), { nowMs: Date.now() })
  assert.ok(r.ok)
  assert.equal(r.frame[r.seqOffset], 0)
  for (const seq of [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
    const out = spliceSeq(r.frame, r.seqOffset, seq)
    const [header, body] = decodeBoth(out)
    assert.deepEqual(header, { t: '#commit', op: 1 })
    assert.equal(body.seq, seq)
    assert.equal(body.rebase, false)
    assert.equal(body.tooBig, false)
    assert.deepEqual(body.blobs, [])
    assert.deepEqual(body.futureField, { a: [1, 'x'] })
    for (const k of ['repo', 'rev', 'since', 'time', 'ops', 'commit', 'prevData']) {
      assert.deepEqual(body[k], built.body[k], k)
    }
    assert.deepEqual(body.blocks, built.body.blocks)
  }
  assert.throws(() => spliceSeq(r.frame, r.seqOffset + 1, 5))
})

test('#commit: a canonical upstream frame is copied out, and the copy equals the field-by-field encoding', async () => {
  const kp = await makeKeypair('k256')
  const verifier = verifierFromDidKey(kp.did())
  let repo = await createRepo(kp, 'did:plc:verbatimtest00000000000000', 4)
  const rkeys: string[] = []
  for (const e of await repo.data.list()) rkeys.push(e.key.split('/')[1])
  // upstream seqs of every CBOR integer width: the placeholder replaces 1 to 9 bytes
  const seqs = [7, 200, 40_000, 3_000_000_000, 2 ** 40]
  const variants: { name: string; body: (b: Record<string, unknown>) => Record<string, unknown>; copied: boolean }[] = [
    { name: 'all fields', body: (b) => b, copied: true },
    { name: 'no prevData key', body: ({ prevData: _p, ...b }) => b, copied: true },
    // the outbound encoder omits these, so the source bytes differ from what it would write
    { name: 'explicit prevData null', body: (b) => ({ ...b, prevData: null }), copied: false },
    { name: 'missing tooBig', body: ({ tooBig: _t, ...b }) => b, copied: false },
    {
      name: 'create op with prev null',
      body: (b) => ({ ...b, ops: (b.ops as { action: string }[]).map((o) => (o.action === 'create' ? { ...o, prev: null } : o)) }),
      copied: false,
    },
  ]
  const writes = [[create()], [update(rkeys[0]!)], [del(rkeys[1]!), create()], [update(rkeys[2]!), del(rkeys[3]!)]]
  let i = 0
  for (const w of writes) {
    const built = await buildCommit(repo, kp, w)
    repo = built.repo
    for (const v of variants) {
      const seq = seqs[i++ % seqs.length]!
      const body = v.body({ ...built.body, seq })
      if (v.name === 'create op with prev null' && !(body.ops as { action: string }[]).some((o) => o.action === 'create')) continue
      const d = decodeEvent(encodeFrame('#commit', body))
      assert.ok(d.kind === 'event' && d.event.type === '#commit', v.name)
      assert.equal(d.event.source !== undefined, v.copied, v.name)
      const r = validateCommit(d.event, null, verifier, { nowMs: Date.now() })
      assert.ok(r.ok, v.name)
      const direct = encodeCommitFrame({ ...d.event, source: undefined })
      assert.equal(r.seqOffset, direct.seqOffset, v.name)
      assert.deepEqual(Buffer.from(r.frame), Buffer.from(direct.frame), v.name)
      const [, out] = decodeBoth(spliceSeq(r.frame, r.seqOffset, 123_456))
      assert.equal(out.seq, 123_456)
      assert.deepEqual(out.ops, (built.body.ops as object[]).map((o) => ({ prev: undefined, ...o })).map(stripUndefined))
      assert.deepEqual(out.blocks, built.body.blocks)
    }
  }
})

function stripUndefined(o: object): object {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
}

test('#sync/#identity/#account/#info/error frames', () => {
  const time = '2024-01-01T00:00:00.000Z'
  const s = encodeSyncFrame({
    type: '#sync',
    seq: 1,
    did: 'did:plc:x',
    rev: '3kabcdefghijk',
    blocks: new Uint8Array([1, 2, 3]),
    time,
    extra: null,
  })
  const [sh, sb] = decodeBoth(spliceSeq(s.frame, s.seqOffset, 77))
  assert.deepEqual(sh, { t: '#sync', op: 1 })
  assert.deepEqual(sb, { seq: 77, did: 'did:plc:x', rev: '3kabcdefghijk', blocks: new Uint8Array([1, 2, 3]), time })
  const i = encodeIdentityFrame({ did: 'did:plc:x', time, handle: 'alice.test' })
  assert.deepEqual(decodeBoth(spliceSeq(i.frame, i.seqOffset, 5))[1], { seq: 5, did: 'did:plc:x', time, handle: 'alice.test' })
  const i2 = encodeIdentityFrame({ did: 'did:plc:x', time, handle: null })
  assert.deepEqual(decodeBoth(spliceSeq(i2.frame, i2.seqOffset, 5))[1], { seq: 5, did: 'did:plc:x', time })
  const a = encodeAccountFrame({ did: 'did:plc:x', time, active: false, status: 'takendown' })
  assert.deepEqual(decodeBoth(spliceSeq(a.frame, a.seqOffset, 6))[1], {
    seq: 6,
    did: 'did:plc:x',
    time,
    active: false,
    status: 'takendown',
  })
  const info = encodeInfoFrame('OutdatedCursor', 'Requested cursor exceeded limit. Possibly missing events')
  assert.deepEqual(decodeFrame(info), {
    kind: 'message',
    type: '#info',
    body: { name: 'OutdatedCursor', message: 'Requested cursor exceeded limit. Possibly missing events' },
  })
  const err = encodeErrorFrame('FutureCursor', 'Cursor in the future.')
  assert.equal(
    Buffer.from(err).toString('hex'),
    'a1626f7020a2656572726f726c467574757265437572736f72676d65737361676575437572736f7220696e20746865206675747572652e',
  )
  assert.deepEqual(decodeFrame(err), { kind: 'error', error: 'FutureCursor', message: 'Cursor in the future.' })
})

test('frame decoding outcomes', () => {
  const body = dagCbor.encode({ x: 1 })
  const join = (h: unknown, b: Uint8Array = body) => Uint8Array.from([...dagCbor.encode(h), ...b])
  assert.equal(decodeFrame(join({ t: '#handle', op: 1 })).kind, 'unknown')
  assert.equal(decodeFrame(join({ op: 2 })).kind, 'unknown')
  assert.deepEqual(decodeFrame(join({ t: '#commit', op: 1 })).kind, 'message')
  assert.equal(decodeFrame(Uint8Array.from([...join({ t: '#commit', op: 1 }), 0])).kind, 'invalid')
  assert.equal(decodeFrame(dagCbor.encode({ t: '#commit', op: 1 })).kind, 'invalid')
  assert.equal(decodeFrame(join({ op: 1 })).kind, 'invalid')
  assert.equal(decodeFrame(join({ t: '#commit', op: 1 }, dagCbor.encode([1]))).kind, 'invalid')
  assert.equal(decodeFrame(join([1, 2])).kind, 'invalid')
  assert.equal(decodeFrame(new Uint8Array(5_000_001)).kind, 'invalid')
  // non-canonical key order in the body is a decode error
  assert.equal(
    decodeFrame(Uint8Array.from([...dagCbor.encode({ t: '#commit', op: 1 }), 0xa2, 0x62, 0x6f, 0x70, 0x01, 0x61, 0x74, 0x01])).kind,
    'invalid',
  )
})

test('schema: #identity / #account / bad fields', () => {
  const time = '2024-01-01T00:00:00Z'
  const ok = decodeEvent(encodeFrame('#account', { seq: 3, did: 'did:plc:abc', time, active: false, status: 'deactivated' }))
  assert.ok(ok.kind === 'event' && ok.event.type === '#account' && ok.event.status === 'deactivated')
  const idn = decodeEvent(encodeFrame('#identity', { seq: 3, did: 'did:plc:abc', time, handle: 'bob.test' }))
  assert.ok(idn.kind === 'event' && idn.event.type === '#identity' && idn.event.handle === 'bob.test')
  for (const bad of [
    { seq: -1, did: 'did:plc:abc', time, active: true },
    { seq: 1.5, did: 'did:plc:abc', time, active: true },
    { seq: 1, did: 'not-a-did', time, active: true },
    { seq: 1, did: 'did:plc:abc', time: 'yesterday', active: true },
    { seq: 1, did: 'did:plc:abc', time },
  ]) {
    const d = decodeEvent(encodeFrame('#account', bad))
    assert.ok(d.kind === 'drop' && d.reason === 'structure', JSON.stringify(bad))
  }
})
