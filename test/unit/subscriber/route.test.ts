import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { encode, toBytes } from '@atcute/cbor'
import { routeFrame } from '../../../src/subscriber/route.ts'
import type { RouteResult } from '../../../src/subscriber/route.ts'

const CID = { $link: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' }
const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'

function frame(header: unknown, body: unknown): Uint8Array {
  const h = encode(header)
  const b = encode(body)
  const out = new Uint8Array(h.length + b.length)
  out.set(h, 0)
  out.set(b, h.length)
  return out
}

function cat(...parts: Array<Uint8Array | number[]>): Uint8Array {
  const arrs = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)))
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0))
  let o = 0
  for (const a of arrs) {
    out.set(a, o)
    o += a.length
  }
  return out
}

function commitBody(seq: number, blocksLen = 600): Record<string, unknown> {
  return {
    seq,
    rebase: false,
    tooBig: false,
    repo: DID,
    commit: CID,
    rev: '3lbbqqxm7ok2c',
    since: '3lbbqqkbtnk2c',
    blocks: toBytes(new Uint8Array(blocksLen).fill(7)),
    ops: [
      { action: 'create', path: 'app.bsky.feed.post/3lbbqqxm6wk2c', cid: CID, prev: null },
      { action: 'delete', path: 'app.bsky.feed.like/3lbbqqxm6wk2d', cid: null },
    ],
    blobs: [],
    prevData: CID,
    time: '2024-11-20T12:00:00.000Z',
  }
}

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

function expectInvalid(r: RouteResult, reason: string, fatal: boolean): void {
  assert.equal(r.kind, 'invalid', JSON.stringify(r))
  if (r.kind === 'invalid') {
    assert.equal(r.reason, reason, r.message)
    assert.equal(r.fatal, fatal)
  }
}

describe('routeFrame: well-formed frames', () => {
  it('#commit → seq and repo', () => {
    assert.deepEqual(routeFrame(frame({ t: '#commit', op: 1 }, commitBody(42))), {
      kind: 'event',
      t: '#commit',
      seq: 42,
      did: DID,
      time: '2024-11-20T12:00:00.000Z',
    })
  })
  it('#commit with a 2 MB blocks field (skipped, not decoded)', () => {
    const f = frame({ t: '#commit', op: 1 }, commitBody(2 ** 40, 2_000_000))
    assert.ok(f.length > 2_000_000)
    assert.deepEqual(routeFrame(f), { kind: 'event', t: '#commit', seq: 2 ** 40, did: DID, time: '2024-11-20T12:00:00.000Z' })
  })
  it('header key order does not matter', () => {
    assert.deepEqual(routeFrame(frame({ op: 1, t: '#commit' }, commitBody(7))), {
      kind: 'event',
      t: '#commit',
      seq: 7,
      did: DID,
      time: '2024-11-20T12:00:00.000Z',
    })
  })
  it('#sync, #identity and #account use `did`', () => {
    const sync = { seq: 5, did: DID, blocks: toBytes(new Uint8Array(10)), rev: '3lbbqqxm7ok2c', time: 't' }
    assert.deepEqual(routeFrame(frame({ t: '#sync', op: 1 }, sync)), { kind: 'event', t: '#sync', seq: 5, did: DID, time: 't' })
    const ident = { seq: 6, did: DID, time: 't', handle: 'alice.example.com' }
    assert.deepEqual(routeFrame(frame({ t: '#identity', op: 1 }, ident)), { kind: 'event', t: '#identity', seq: 6, did: DID, time: 't' })
    const acct = { seq: 9007199254740991, did: DID, time: 't', active: false, status: 'takendown' }
    assert.deepEqual(routeFrame(frame({ t: '#account', op: 1 }, acct)), {
      kind: 'event',
      t: '#account',
      seq: 9007199254740991,
      did: DID,
      time: 't',
    })
  })
  it('a #commit `did` field is not mistaken for `repo`', () => {
    const body = { ...commitBody(3), did: 'did:plc:someoneelse' }
    assert.deepEqual(routeFrame(frame({ t: '#commit', op: 1 }, body)), {
      kind: 'event',
      t: '#commit',
      seq: 3,
      did: DID,
      time: '2024-11-20T12:00:00.000Z',
    })
  })
  it('#info', () => {
    const f = frame({ t: '#info', op: 1 }, { name: 'OutdatedCursor', message: 'Requested cursor exceeded limit. Possibly missing events' })
    assert.deepEqual(routeFrame(f), {
      kind: 'info',
      name: 'OutdatedCursor',
      message: 'Requested cursor exceeded limit. Possibly missing events',
    })
    assert.deepEqual(routeFrame(frame({ t: '#info', op: 1 }, { name: 'X' })), { kind: 'info', name: 'X', message: null })
  })
  it('error frame: exact bytes of the reference PDS FutureCursor frame', () => {
    const f = hex('a1626f7020a2656572726f726c467574757265437572736f72676d65737361676575437572736f7220696e20746865206675747572652e')
    assert.deepEqual(routeFrame(f), { kind: 'error', error: 'FutureCursor', message: 'Cursor in the future.' })
    assert.deepEqual(routeFrame(frame({ op: -1 }, { error: 'ConsumerTooSlow' })), {
      kind: 'error',
      error: 'ConsumerTooSlow',
      message: null,
    })
  })
  it('long error messages are truncated, not rejected', () => {
    const r = routeFrame(frame({ op: -1 }, { error: 'X', message: 'é'.repeat(5000) }))
    assert.equal(r.kind, 'error')
    if (r.kind === 'error') assert.ok(r.message !== null && r.message.length <= 1024)
  })
  it('unknown t or op → ignorable', () => {
    assert.deepEqual(routeFrame(frame({ t: '#future', op: 1 }, { seq: 3, x: [1, 2] })), { kind: 'unknown', op: 1, t: '#future', seq: 3 })
    assert.deepEqual(routeFrame(frame({ op: 2 }, {})), { kind: 'unknown', op: 2, t: null, seq: null })
    assert.deepEqual(routeFrame(frame({ t: '#commit', op: 1, extra: { a: [CID] } }, commitBody(1))).kind, 'event')
  })
  it('skips unknown body fields of every type', () => {
    const body = {
      ...commitBody(11),
      zf: 1.5,
      zn: -12345678901,
      zb: true,
      zz: null,
      zm: { a: { b: [[], {}, toBytes(new Uint8Array(3))] } },
    }
    assert.deepEqual(routeFrame(frame({ t: '#commit', op: 1 }, body)), {
      kind: 'event',
      t: '#commit',
      seq: 11,
      did: DID,
      time: '2024-11-20T12:00:00.000Z',
    })
  })
})

describe('routeFrame: schema problems (drop the frame, keep the connection)', () => {
  const c = (body: unknown): RouteResult => routeFrame(frame({ t: '#commit', op: 1 }, body))
  it('seq missing / wrong type / zero / negative / unsafe', () => {
    const { seq: _omit, ...noSeq } = commitBody(1)
    expectInvalid(c(noSeq), 'missing-seq', false)
    expectInvalid(c({ ...commitBody(1), seq: '12' }), 'bad-seq', false)
    expectInvalid(c({ ...commitBody(1), seq: 0 }), 'bad-seq', false)
    expectInvalid(c({ ...commitBody(1), seq: -5 }), 'bad-seq', false)
    // seq = 2^53 (uint64 head): past the safe range
    const h = encode({ t: '#commit', op: 1 })
    const big = cat(
      h,
      [0xa2, 0x63, 0x73, 0x65, 0x71, 0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0x64, 0x72, 0x65, 0x70, 0x6f, 0x63, 0x64, 0x69, 0x64],
    )
    expectInvalid(routeFrame(big), 'bad-seq', false)
  })
  it('repo missing / wrong type / not a DID', () => {
    const { repo: _omit, ...noRepo } = commitBody(1)
    expectInvalid(c(noRepo), 'missing-did', false)
    expectInvalid(c({ ...commitBody(1), repo: 12 }), 'bad-did', false)
    expectInvalid(c({ ...commitBody(1), repo: 'alice.example.com' }), 'bad-did', false)
    expectInvalid(c({ ...commitBody(1), repo: `did:plc:${'a'.repeat(3000)}` }), 'bad-did', false)
    expectInvalid(routeFrame(frame({ t: '#identity', op: 1 }, { seq: 1, repo: DID })), 'missing-did', false)
  })
  it('#info without name, error frame without error', () => {
    expectInvalid(routeFrame(frame({ t: '#info', op: 1 }, { message: 'x' })), 'missing-name', false)
    expectInvalid(routeFrame(frame({ op: -1 }, { message: 'x' })), 'missing-error', false)
  })
})

describe('routeFrame: framing errors (fatal, never thrown)', () => {
  const good = frame({ t: '#commit', op: 1 }, commitBody(99, 100))

  it('every truncation of a valid frame is a fatal error', () => {
    for (let n = 0; n < good.length; n++) {
      const r = routeFrame(good.subarray(0, n))
      assert.equal(r.kind, 'invalid', `prefix ${n}`)
      if (r.kind === 'invalid') assert.equal(r.fatal, true, `prefix ${n}: ${r.reason}`)
    }
  })
  it('trailing bytes', () => {
    expectInvalid(routeFrame(cat(good, [0x00])), 'trailing-bytes', true)
    expectInvalid(routeFrame(cat(good, good)), 'trailing-bytes', true)
  })
  it('header / body not maps; bad op; duplicate keys', () => {
    expectInvalid(routeFrame(cat(encode([1, '#commit']), encode({}))), 'header-not-map', true)
    expectInvalid(routeFrame(cat(encode({ op: 1, t: '#commit' }), encode([1]))), 'body-not-map', true)
    expectInvalid(routeFrame(frame({ t: '#commit' }, commitBody(1))), 'missing-op', true)
    expectInvalid(routeFrame(frame({ t: '#commit', op: '1' }, commitBody(1))), 'bad-op', true)
    expectInvalid(routeFrame(frame({ t: 5, op: 1 }, commitBody(1))), 'bad-t', true)
    // {op:1, op:1}
    expectInvalid(routeFrame(cat([0xa2, 0x62, 0x6f, 0x70, 0x01, 0x62, 0x6f, 0x70, 0x01], encode({}))), 'duplicate-key', true)
    // body {repo: A, repo: B}: the worker and the router must never disagree on the DID
    const h = encode({ t: '#commit', op: 1 })
    const repo = (d: string): Uint8Array => cat([0x64, 0x72, 0x65, 0x70, 0x6f], encode(d))
    const dup = cat(h, [0xa3, 0x63, 0x73, 0x65, 0x71, 0x01], repo(DID), repo('did:plc:other'))
    expectInvalid(routeFrame(dup), 'duplicate-key', true)
  })
  it('non-string map keys', () => {
    expectInvalid(routeFrame(cat([0xa1, 0x01, 0x01], encode({}))), 'non-string-key', true)
  })
  it('indefinite-length items', () => {
    expectInvalid(routeFrame(cat([0xbf, 0x62, 0x6f, 0x70, 0x01, 0xff], encode({}))), 'indefinite-length', true)
    const h = encode({ t: '#commit', op: 1 })
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0x5f, 0x41, 0x00, 0xff])), 'indefinite-length', true) // bytes
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0x9f, 0xff])), 'indefinite-length', true) // array
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0xff])), 'indefinite-length', true) // break
  })
  it('reserved encodings, other tags, other simple values', () => {
    const h = encode({ t: '#commit', op: 1 })
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0x1c])), 'reserved-encoding', true)
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0xc0, 0x60])), 'unsupported-tag', true)
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0xf7])), 'unsupported-simple', true) // undefined
    expectInvalid(routeFrame(cat(h, [0xa1, 0x61, 0x78, 0xf9, 0x3c, 0x00])), 'unsupported-simple', true) // float16
  })
  it('huge declared lengths fail immediately without allocating', () => {
    const h = encode({ t: '#commit', op: 1 })
    const cases: number[][] = [
      [0xa1, 0x61, 0x78, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // bytes of 2^63
      [0xa1, 0x61, 0x78, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // text of 2^64-1
      [0xa1, 0x61, 0x78, 0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // array of 2^32
      [0xa1, 0x61, 0x78, 0xba, 0xff, 0xff, 0xff, 0xff], // map of 2^32-1
      [0xbb, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // body map of 2^53-1
      [0xa1, 0x61, 0x78, 0x5a, 0x00, 0x10, 0x00, 0x00, 0x01], // 1 MB bytes, 1 byte present
    ]
    const before = process.memoryUsage().arrayBuffers
    const t0 = performance.now()
    for (const tail of cases) expectInvalid(routeFrame(cat(h, tail)), 'truncated', true)
    assert.ok(performance.now() - t0 < 100)
    assert.ok(process.memoryUsage().arrayBuffers - before < 1_000_000)
    // a huge header map
    expectInvalid(routeFrame(Uint8Array.from([0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), 'truncated', true)
  })
  it('deep nesting is handled iteratively', () => {
    const depth = 200_000
    const h = encode({ t: '#commit', op: 1 })
    const head = cat([0xa3, 0x63, 0x73, 0x65, 0x71, 0x05, 0x64, 0x72, 0x65, 0x70, 0x6f], encode(DID), [0x61, 0x78])
    const nested = new Uint8Array(depth + 1).fill(0x81) // [[[[…]]]]
    nested[depth] = 0x80 // innermost []
    assert.deepEqual(routeFrame(cat(h, head, nested)), { kind: 'event', t: '#commit', seq: 5, did: DID, time: null })
    // the same without the innermost element: truncated
    expectInvalid(routeFrame(cat(h, head, nested.subarray(0, depth))), 'truncated', true)
    // nested maps
    const maps = new Uint8Array(depth * 3 + 1)
    for (let i = 0; i < depth; i++) maps.set([0xa1, 0x61, 0x6b], i * 3)
    maps[depth * 3] = 0xf6
    assert.equal(routeFrame(cat(h, head, maps)).kind, 'event')
  })
  it('random and mutated inputs never throw', () => {
    let seed = 1234567
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const base = frame({ t: '#commit', op: 1 }, commitBody(1234, 50))
    for (let i = 0; i < 20_000; i++) {
      const f = Uint8Array.from(base)
      const flips = 1 + rnd(4)
      for (let j = 0; j < flips; j++) f[rnd(f.length)] = rnd(256)
      const r = routeFrame(i % 2 === 0 ? f : f.subarray(0, rnd(f.length + 1)))
      assert.ok(typeof r.kind === 'string')
    }
    for (let i = 0; i < 5_000; i++) {
      const f = new Uint8Array(1 + rnd(64))
      for (let j = 0; j < f.length; j++) f[j] = rnd(256)
      assert.ok(typeof routeFrame(f).kind === 'string')
    }
  })
})
