// DID document parsing, the LRU, and the identity resolver's cache discipline (single-flight,
// negative cache, purge, bounded fetches) with an in-memory fetcher and a fake clock.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRequire } from 'node:module'
import { Lru } from '../../../src/validator/lru.ts'
import { didDocumentUrl, parseDidDocument } from '../../../src/validator/identity/did-doc.ts'
import { IdentityResolver, type FetchOutcome } from '../../../src/validator/identity/resolver.ts'
import { base58Encode } from '../../../src/validator/base58.ts'
import { formatDidKey, parseDidKey } from '../../../src/validator/keys.ts'
import { makeKeypair } from './helpers.ts'

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'

function doc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: DID,
    alsoKnownAs: ['at://Alice.Example.com'],
    verificationMethod: [
      { id: '#atproto', type: 'Multikey', controller: DID, publicKeyMultibase: 'zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF' },
    ],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: 'https://PDS.example.com/' }],
    ...over,
  }
}

test('parseDidDocument: Multikey, relative ids, endpoint normalised, handle from alsoKnownAs', () => {
  const r = parseDidDocument(DID, doc())
  assert.ok(r.ok)
  assert.equal(r.identity.signingKey?.curve, 'k256')
  assert.equal(formatDidKey(r.identity.signingKey!), 'did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF')
  assert.equal(r.identity.pdsHost, 'pds.example.com')
  assert.equal(r.identity.pdsEndpoint, 'https://PDS.example.com/')
  assert.equal(r.identity.handle, 'alice.example.com')
})

test('parseDidDocument: absolute ids, legacy k256 (uncompressed) and p256 keys', async () => {
  const k = await makeKeypair('k256')
  const secp = createRequire(import.meta.url)('secp256k1') as { publicKeyConvert(p: Uint8Array, c: boolean): Uint8Array }
  const uncompressed = secp.publicKeyConvert(parseDidKey(k.did())!.compressed, false)
  const legacy = doc({
    verificationMethod: [
      {
        id: `${DID}#atproto`,
        type: 'EcdsaSecp256k1VerificationKey2019',
        controller: DID,
        publicKeyMultibase: 'z' + base58Encode(uncompressed),
      },
    ],
    service: [{ id: `${DID}#atproto_pds`, type: 'AtprotoPersonalDataServer', serviceEndpoint: 'http://localhost:2583' }],
  })
  const r = parseDidDocument(DID, legacy)
  assert.ok(r.ok)
  assert.equal(r.identity.signingKey && formatDidKey(r.identity.signingKey), k.did())
  assert.equal(r.identity.pdsHost, 'localhost:2583')

  const p = await makeKeypair('p256')
  const r2 = parseDidDocument(
    DID,
    doc({ verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: DID, publicKeyMultibase: p.did().slice(8) }] }),
  )
  assert.ok(r2.ok)
  assert.equal(r2.identity.signingKey?.curve, 'p256')
})

test('parseDidDocument: the first valid #atproto key and #atproto_pds service; others ignored', () => {
  const r = parseDidDocument(
    DID,
    doc({
      verificationMethod: [
        { id: '#other', type: 'Multikey', controller: DID, publicKeyMultibase: 'zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF' },
        {
          id: '#atproto',
          type: 'Multikey',
          controller: 'did:plc:someoneelse',
          publicKeyMultibase: 'zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF',
        },
        { id: '#atproto', type: 'Multikey', controller: DID, publicKeyMultibase: 'zgarbage' },
      ],
      service: [
        { id: '#atproto_pds', type: 'Something', serviceEndpoint: 'https://wrong.example.com' },
        { id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: 'https://right.example.com' },
      ],
    }),
  )
  assert.ok(r.ok)
  assert.equal(r.identity.signingKey, null)
  assert.equal(r.identity.pdsHost, 'right.example.com')
})

test('parseDidDocument: wrong id, non-object, unusable endpoints', () => {
  assert.equal(parseDidDocument(DID, doc({ id: 'did:plc:other' })).ok, false)
  assert.equal(parseDidDocument(DID, null).ok, false)
  assert.equal(parseDidDocument(DID, [1]).ok, false)
  for (const ep of ['https://pds.example.com:8443', 'https://10.0.0.1', 'ftp://pds.example.com', 'not a url']) {
    const r = parseDidDocument(DID, doc({ service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: ep }] }))
    assert.ok(r.ok)
    assert.equal(r.identity.pdsHost, null, ep)
    assert.equal(r.identity.pdsEndpoint, ep)
  }
  const none = parseDidDocument(DID, doc({ service: undefined, verificationMethod: undefined, alsoKnownAs: undefined }))
  assert.ok(none.ok)
  assert.equal(none.identity.pdsHost, null)
  assert.equal(none.identity.handle, null)
})

test('didDocumentUrl: plc, did:web (https; http only for localhost in insecure mode)', () => {
  assert.deepEqual(didDocumentUrl(DID, 'https://plc.directory/', false), { ok: true, url: `https://plc.directory/${DID}` })
  assert.deepEqual(didDocumentUrl('did:web:example.com', 'x', false), { ok: true, url: 'https://example.com/.well-known/did.json' })
  assert.deepEqual(didDocumentUrl('did:web:localhost%3A8080', 'x', true), { ok: true, url: 'http://localhost:8080/.well-known/did.json' })
  assert.equal(didDocumentUrl('did:web:localhost%3A8080', 'x', false).ok, false)
  assert.equal(didDocumentUrl('did:web:example.com%3A8080', 'x', true).ok, false)
  assert.equal(didDocumentUrl('did:web:example.com:user:alice', 'x', true).ok, false)
  assert.equal(didDocumentUrl('did:web:%ZZ', 'x', true).ok, false)
  assert.equal(didDocumentUrl('did:plc:UPPER', 'x', true).ok, false)
  assert.equal(didDocumentUrl('did:key:zabc', 'x', true).ok, false)
})

test('Lru: bounded, recency on get, expiry', () => {
  let now = 0
  const l = new Lru<string, number>(2, () => now)
  l.set('a', 1)
  l.set('b', 2)
  assert.equal(l.get('a'), 1) // a is now most recent
  l.set('c', 3)
  assert.equal(l.get('b'), undefined)
  assert.equal(l.evictions, 1)
  l.set('d', 4, 10)
  now = 9
  assert.equal(l.get('d'), 4)
  now = 10
  assert.equal(l.get('d'), undefined)
  assert.equal(l.size, 1)
})

function controllable() {
  const calls: string[] = []
  const pending: Array<{ did: string; resolve: (o: FetchOutcome) => void; reject: (e: Error) => void }> = []
  const fetch = (did: string) =>
    new Promise<FetchOutcome>((resolve, reject) => {
      calls.push(did)
      pending.push({ did, resolve, reject })
    })
  return { calls, pending, fetch }
}
const tick = () => new Promise((r) => setImmediate(r))

test('resolver: single-flight per DID, cached with its verifier, TTL', async () => {
  let now = 1000
  const f = controllable()
  const r = new IdentityResolver({ fetch: f.fetch, cacheSize: 10, ttlMs: 100, negativeTtlMs: 10, concurrency: 4, now: () => now })
  const a = r.resolve(DID)
  const b = r.resolve(DID)
  await tick()
  assert.equal(f.calls.length, 1)
  f.pending[0]!.resolve({ kind: 'found', doc: doc() })
  const [ra, rb] = await Promise.all([a, b])
  assert.ok(ra.ok && rb.ok)
  assert.equal(ra.identity, rb.identity)
  assert.ok(ra.identity.verifier)
  const again = await r.resolve(DID)
  assert.ok(again.ok && again.identity === ra.identity)
  assert.equal(f.calls.length, 1)
  assert.deepEqual([r.stats().hits, r.stats().misses, r.stats().coalesced], [1, 1, 1])
  now += 100
  const p = r.resolve(DID)
  await tick()
  assert.equal(f.calls.length, 2, 'expired entry refetched')
  f.pending[1]!.resolve({ kind: 'found', doc: doc() })
  await p
})

test('resolver: negative cache for not-found and errors, distinct kinds, short TTL', async () => {
  let now = 0
  const f = controllable()
  const r = new IdentityResolver({ fetch: f.fetch, cacheSize: 10, ttlMs: 1000, negativeTtlMs: 60, concurrency: 4, now: () => now })
  const p1 = r.resolve('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa')
  const p2 = r.resolve('did:plc:bbbbbbbbbbbbbbbbbbbbbbbb')
  await tick()
  f.pending[0]!.resolve({ kind: 'not_found', message: 'HTTP 404' })
  f.pending[1]!.reject(new Error('ECONNRESET'))
  const [n, e] = await Promise.all([p1, p2])
  assert.ok(!n.ok && n.kind === 'not_found')
  assert.ok(!e.ok && e.kind === 'error')
  const n2 = await r.resolve('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa')
  assert.ok(!n2.ok && n2.kind === 'not_found')
  assert.equal(f.calls.length, 2)
  assert.equal(r.stats().negativeHits, 1)
  now = 60
  const p3 = r.resolve('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa')
  await tick()
  assert.equal(f.calls.length, 3)
  f.pending[2]!.resolve({ kind: 'found', doc: { ...doc(), id: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa' } })
  assert.ok((await p3).ok)
  // an invalid document is a failure too
  const p4 = r.resolve(DID)
  await tick()
  f.pending[3]!.resolve({ kind: 'found', doc: { id: 'did:plc:notthisone' } })
  const inv = await p4
  assert.ok(!inv.ok && inv.kind === 'invalid')
})

test('resolver: purge during a fetch discards its answer; force refetches', async () => {
  const f = controllable()
  const r = new IdentityResolver({ fetch: f.fetch, cacheSize: 10, ttlMs: 1000, negativeTtlMs: 60, concurrency: 4 })
  const p1 = r.resolve(DID)
  await tick()
  r.purge(DID)
  f.pending[0]!.resolve({ kind: 'found', doc: doc() })
  await p1
  const p2 = r.resolve(DID)
  await tick()
  assert.equal(f.calls.length, 2, 'purged flight not cached')
  f.pending[1]!.resolve({ kind: 'found', doc: doc() })
  await p2
  assert.ok(r.peek(DID))
  const p3 = r.resolve(DID, { force: true })
  await tick()
  assert.equal(f.calls.length, 3)
  f.pending[2]!.resolve({ kind: 'found', doc: doc({ alsoKnownAs: ['at://bob.example.com'] }) })
  const r3 = await p3
  assert.ok(r3.ok && r3.identity.handle === 'bob.example.com')
})

test('resolver: fetches in flight are bounded, the rest queue', async () => {
  const f = controllable()
  const r = new IdentityResolver({ fetch: f.fetch, cacheSize: 100, ttlMs: 1000, negativeTtlMs: 60, concurrency: 2 })
  const dids = Array.from({ length: 5 }, (_, i) => `did:plc:${'abcde'[i]!.repeat(24)}`)
  const ps = dids.map((d) => r.resolve(d))
  await tick()
  assert.equal(f.calls.length, 2)
  assert.deepEqual([r.stats().inFlight, r.stats().queued], [2, 3])
  for (let done = 0; done < 5; done++) {
    await tick()
    const p = f.pending[done]!
    p.resolve({ kind: 'not_found', message: '404' })
    await tick()
    assert.ok(r.stats().inFlight <= 2)
  }
  await Promise.all(ps)
  assert.deepEqual([r.stats().inFlight, r.stats().queued], [0, 0])
  assert.equal(f.calls.length, 5)
})

test('resolver: prime seeds the cache without fetching', async () => {
  const r = new IdentityResolver({
    fetch: () => Promise.reject(new Error('no network')),
    cacheSize: 10,
    ttlMs: 1000,
    negativeTtlMs: 60,
    concurrency: 1,
  })
  assert.ok(r.prime(DID, doc()).ok)
  const got = await r.resolve(DID)
  assert.ok(got.ok && got.identity.pdsHost === 'pds.example.com')
  assert.equal(r.stats().fetches, 0)
})
