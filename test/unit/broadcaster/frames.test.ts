import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeFirst, decode } from '@atcute/cbor'
import {
  encodeErrorFrame,
  encodeInfoFrame,
  WS_MAX_HEADER_BYTES,
  wsBinaryHeader,
  wsBinaryMessage,
  wsHeaderLength,
} from '../../../src/broadcaster/frames.ts'
import { spliceSeq } from '../../../src/store/seq-splice.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

test('FutureCursor error frame matches the PDS bytes (protocol.md §1.2)', () => {
  const expected = 'a1626f7020a2656572726f726c467574757265437572736f72676d65737361676575437572736f7220696e20746865206675747572652e'
  assert.equal(hex(encodeErrorFrame('FutureCursor', 'Cursor in the future.')), expected)
})

test('error header is {op:-1} with no t; message optional', () => {
  const f = encodeErrorFrame('ConsumerTooSlow')
  assert.equal(hex(f.subarray(0, 5)), 'a1626f7020')
  const [header, rest] = decodeFirst(f)
  assert.deepEqual(header, { op: -1 })
  assert.deepEqual(decode(rest), { error: 'ConsumerTooSlow' })
})

test('#info frame: header {t:"#info", op:1} (t first), body {name, message}', () => {
  const f = encodeInfoFrame('OutdatedCursor', 'Requested cursor exceeded limit. Possibly missing events')
  assert.equal(hex(f.subarray(0, 13)), 'a26174652369' + '6e666f626f7001')
  const [header, rest] = decodeFirst(f)
  assert.deepEqual(header, { t: '#info', op: 1 })
  // canonical key order: "name" (4) before "message" (7)
  assert.equal(rest[0], 0xa2)
  assert.equal(hex(rest.subarray(1, 6)), '646e616d65')
  assert.deepEqual(decode(rest), { name: 'OutdatedCursor', message: 'Requested cursor exceeded limit. Possibly missing events' })
})

test('WebSocket binary framing for all three length forms', () => {
  assert.equal(hex(wsBinaryHeader(0)), '8200')
  assert.equal(hex(wsBinaryHeader(125)), '827d')
  assert.equal(hex(wsBinaryHeader(126)), '827e007e')
  assert.equal(hex(wsBinaryHeader(65535)), '827effff')
  assert.equal(hex(wsBinaryHeader(65536)), '827f0000000000010000')
  assert.equal(hex(wsBinaryHeader(2 ** 32 + 5)), '827f0000000100000005')
  for (const n of [0, 125, 126, 65535, 65536]) assert.equal(wsBinaryHeader(n).length, wsHeaderLength(n))
  const payload = new Uint8Array([1, 2, 3])
  assert.equal(hex(wsBinaryMessage(payload)), '8203010203')
})

test('wsBinaryMessage writes the header into reserved headroom instead of copying', () => {
  for (const len of [3, 125, 126, 65535, 65536]) {
    const spliced = spliceSeqLike(len, WS_MAX_HEADER_BYTES)
    const before = Buffer.from(spliced)
    const wire = wsBinaryMessage(spliced, WS_MAX_HEADER_BYTES)
    assert.equal(wire.buffer, spliced.buffer, `len ${len}: a view of the same allocation`)
    assert.equal(wire.byteOffset + wsHeaderLength(len), spliced.byteOffset)
    assert.deepEqual(wire, wsBinaryMessage(before), `len ${len}: same bytes as the copying path`)
    assert.deepEqual(spliced, before, 'payload untouched')
  }
  // no or too little headroom: a copy, and the bytes in front of the payload are left alone
  const shared = Buffer.alloc(20, 0xee)
  const payload = shared.subarray(10, 13)
  for (const headroom of [0, 1]) {
    const wire = wsBinaryMessage(payload, headroom)
    assert.notEqual(wire.buffer, shared.buffer)
    assert.equal(hex(wire), hex(wsBinaryMessage(new Uint8Array(payload))))
  }
  assert.equal(hex(shared.subarray(0, 10)), 'ee'.repeat(10))
})

/** What the sequencer hands the broadcaster: a frame view with `headroom` spare bytes in front. */
function spliceSeqLike(len: number, headroom: number): Buffer {
  const frame = Buffer.alloc(len, 0xab)
  frame[0] = 0 // the seq placeholder
  return spliceSeq(frame, 0, 0, headroom)
}

test('a copied message owns its allocation: one queued to a slow consumer pins only its own bytes', () => {
  for (const len of [10, 200, 3000, 70_000]) {
    const msg = wsBinaryMessage(new Uint8Array(len))
    assert.equal(msg.byteOffset, 0)
    assert.equal(msg.buffer.byteLength, msg.length, `payload ${len}`)
  }
})
