import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { sha256, sha256Backend, sha256Implementations, sha256Into, sha256Matches } from '../../../src/validator/sha256.ts'

const reference = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())

test('blocks are hashed by the addon when it is built', () => {
  assert.equal(sha256Backend, 'addon')
  assert.ok(sha256Implementations.addon)
})

test('both implementations equal node:crypto on every length, offset and view', () => {
  const impls = [sha256Implementations.node, sha256Implementations.addon!]
  const backing = randomBytes(5000)
  let checked = 0
  for (const len of [0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 150, 400, 1200, 4096]) {
    for (const start of [0, 1, 7]) {
      const data = new Uint8Array(backing.buffer, backing.byteOffset + start, len) // a view at an offset
      const want = reference(data)
      for (const impl of impls) {
        const out = new Uint8Array(40).fill(0xee)
        impl.into(data, out, 5)
        assert.deepEqual(out.subarray(5, 37), want, `into len ${len} start ${start}`)
        assert.ok(out.subarray(0, 5).every((b) => b === 0xee) && out.subarray(37).every((b) => b === 0xee), 'writes exactly 32 bytes')
        // matches over a range of a larger buffer, against a digest at an offset
        const expected = new Uint8Array(3 + 32)
        expected.set(want, 3)
        assert.equal(impl.matches(backing, start, start + len, expected, 3), true)
        expected[3 + (len % 32)] ^= 1
        assert.equal(impl.matches(backing, start, start + len, expected, 3), false)
        checked++
      }
    }
  }
  assert.equal(checked, 14 * 3 * 2)
  // the exported functions are one of the two, and sha256() returns a fresh digest
  const data = randomBytes(300)
  assert.deepEqual(sha256(data), reference(data))
  const out = new Uint8Array(32)
  sha256Into(data, out, 0)
  assert.deepEqual(out, reference(data))
  assert.equal(sha256Matches(data, 0, data.length, out, 0), true)
})

test('the addon refuses out-of-bounds ranges instead of reading or writing past them', () => {
  const { into, matches } = sha256Implementations.addon!
  const data = new Uint8Array(100)
  assert.throws(() => into(data, new Uint8Array(31), 0), TypeError)
  assert.throws(() => into(data, new Uint8Array(40), 9), TypeError)
  assert.throws(() => into('text' as never, new Uint8Array(32), 0), TypeError)
  assert.throws(() => matches(data, 50, 40, new Uint8Array(32), 0), TypeError)
  assert.throws(() => matches(data, 0, 101, new Uint8Array(32), 0), TypeError)
  assert.throws(() => matches(data, 0, 10, new Uint8Array(32), 1), TypeError)
  assert.throws(() => matches(data, -1, 10, new Uint8Array(32), 0), TypeError)
})
