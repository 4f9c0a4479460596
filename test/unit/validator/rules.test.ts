import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tidTimestampUs, revIsNewer, revIsFuture, checkChain, syncRevAcceptable } from '../../../src/validator/rules.ts'

const B32 = '234567abcdefghijklmnopqrstuvwxyz'
function tidFor(us: number, clock = 0): string {
  let v = BigInt(us) * 1024n + BigInt(clock)
  let s = ''
  for (let i = 0; i < 13; i++) {
    s = B32[Number(v & 31n)] + s
    v >>= 5n
  }
  return s
}

test('TID timestamp and ordering', () => {
  const us = 1_700_000_000_123_456
  assert.equal(tidTimestampUs(tidFor(us, 17)), us)
  assert.equal(tidTimestampUs('nope'), null)
  assert.ok(revIsNewer(tidFor(us + 1), tidFor(us)))
  assert.ok(!revIsNewer(tidFor(us), tidFor(us)))
})

test('future rev tolerance is 5 minutes', () => {
  const nowMs = 1_700_000_000_000
  assert.equal(revIsFuture(tidFor(nowMs * 1000 + 299_000_000), nowMs), false)
  assert.equal(revIsFuture(tidFor(nowMs * 1000 + 301_000_000), nowMs), true)
})

test('chain check and #sync rollback', () => {
  const data = new Uint8Array([1, 2])
  const stored = { rev: '3kaaaaaaaaaaa', dataCid: data }
  assert.equal(checkChain(null, null, null), 'ok')
  assert.equal(checkChain('3kaaaaaaaaaaa', data, stored), 'ok')
  assert.equal(checkChain('3kaaaaaaaaaab', data, stored), 'chain_break')
  assert.equal(checkChain('3kaaaaaaaaaaa', new Uint8Array([1, 3]), stored), 'chain_break')
  assert.equal(syncRevAcceptable('3kaaaaaaaaaa2', stored), false)
  assert.equal(syncRevAcceptable('3kaaaaaaaaaaa', stored), true)
  assert.equal(syncRevAcceptable('3kaaaaaaaaaab', stored), true)
})
