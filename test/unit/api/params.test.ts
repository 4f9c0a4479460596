import assert from 'node:assert/strict'
import { test } from 'node:test'
import { XrpcError } from '../../../src/api/http.ts'
import { boolParam, didParam, hostnameParam, idCursor, intParam, isNsid, nsidParam, single, tidParam } from '../../../src/api/params.ts'

const q = (s: string) => new URLSearchParams(s)

function rejects(fn: () => unknown, param: string): void {
  assert.throws(
    fn,
    (err: unknown) => err instanceof XrpcError && err.status === 400 && err.error === 'InvalidRequest' && err.message.includes(param),
  )
}

test('NSID syntax', () => {
  for (const ok of ['app.bsky.feed.post', 'com.example.fooBar', 'com.ex-ample.x1', 'a.b.c', 'net.users.bob.ping', 'cn.8.lex.stuff'])
    assert.ok(isNsid(ok), ok)
  for (const bad of [
    '',
    'app',
    'app.bsky',
    'app.bsky.',
    '.app.bsky.post',
    'app..bsky.post',
    '1app.bsky.post',
    'app.bsky.1post',
    'app.bsky.po-st',
    'app.bsky.feed.post#main',
    'app.-bsky.post',
    'app.bsky-.post',
    'a'.repeat(64) + '.b.c',
    'app.bsky.feed.pöst',
  ]) {
    assert.ok(!isNsid(bad), bad)
  }
  assert.ok(!isNsid(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.e`)) // authority > 253
})

test('integers: default, range, syntax', () => {
  const o = { min: 1, max: 1000, default: 200 }
  assert.equal(intParam(q(''), 'limit', o), 200)
  assert.equal(intParam(q('limit='), 'limit', o), 200)
  assert.equal(intParam(q('limit=1'), 'limit', o), 1)
  assert.equal(intParam(q('limit=1000'), 'limit', o), 1000)
  for (const bad of ['0', '1001', '-5', '1e3', '10.0', ' 5', '0x10', '99999999999999999'])
    rejects(() => intParam(q(`limit=${encodeURIComponent(bad)}`), 'limit', o), 'limit')
  rejects(() => intParam(q('limit=1&limit=2'), 'limit', o), 'limit')
})

test('id cursors', () => {
  assert.equal(idCursor(q('')), 0)
  assert.equal(idCursor(q('cursor=')), 0)
  assert.equal(idCursor(q('cursor=42')), 42)
  for (const bad of ['-1', 'abc', '1.5', '12345678901234567']) rejects(() => idCursor(q(`cursor=${bad}`)), 'cursor')
})

test('did, tid, nsid and hostname parameters', () => {
  assert.equal(didParam(q('did=did:plc:abc123')), 'did:plc:abc123')
  assert.equal(didParam(q('did=did:web:example.com')), 'did:web:example.com')
  rejects(() => didParam(q('')), 'did')
  rejects(() => didParam(q('did=plc:abc')), 'did')
  assert.equal(tidParam(q(''), 'since'), undefined)
  assert.equal(tidParam(q('since=3l3qo2vutsw2b'), 'since'), '3l3qo2vutsw2b')
  rejects(() => tidParam(q('since=3l3qo2vutsw2'), 'since'), 'since')
  rejects(() => nsidParam(q(''), 'collection'), 'collection')
  assert.equal(hostnameParam(q('hostname=HTTPS://Pds.Example.com/'), 'hostname'), 'pds.example.com')
  assert.equal(hostnameParam(q('hostname=localhost:2583'), 'hostname'), 'localhost:2583')
  rejects(() => hostnameParam(q('hostname=127.0.0.1'), 'hostname'), 'hostname')
  rejects(() => hostnameParam(q('hostname=pds.example.com/path'), 'hostname'), 'hostname')
})

test('booleans use Go ParseBool spellings', () => {
  assert.equal(boolParam(q('enabled=true'), 'enabled'), true)
  assert.equal(boolParam(q('enabled=1'), 'enabled'), true)
  assert.equal(boolParam(q('enabled=False'), 'enabled'), false)
  assert.equal(boolParam(q(''), 'enabled'), undefined)
  rejects(() => boolParam(q('enabled=yes'), 'enabled'), 'enabled')
})

test('single: repeated parameters are rejected', () => {
  assert.equal(single(q('a=1'), 'a'), '1')
  rejects(() => single(q('a=1&a=1'), 'a'), 'a')
})
