import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Secp256k1Keypair, P256Keypair } from '@atproto/crypto'
import {
  parseDidKey,
  parseMultikey,
  parseVerificationMethod,
  createVerifier,
  formatDidKey,
  verifierFromDidKey,
  k256Backend,
  k256BackendError,
  k256NativeBackends,
} from '../../../src/validator/keys.ts'
import { verifySignature, isAcceptableSignature } from '../../../src/validator/signature.ts'
import { base58Decode, base58Encode } from '../../../src/validator/base58.ts'
import { sha256 } from '../../../src/validator/bytes.ts'

const FIX = new URL('../../fixtures/atproto-interop-tests/crypto/', import.meta.url)
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

test('K-256 runs on the libsecp256k1 addon built at install, with the secp256k1 package as fallback', () => {
  assert.equal(k256Backend, 'libsecp256k1', `fell back: ${k256BackendError}`)
  assert.deepEqual(
    k256NativeBackends().map((b) => b.name),
    ['libsecp256k1', 'native-secp256k1'],
  )
})

test('interop signature fixtures (did:key and legacy multibase)', () => {
  const cases = JSON.parse(readFileSync(new URL('signature-fixtures.json', FIX), 'utf8'))
  assert.equal(cases.length, 6)
  for (const c of cases) {
    const fromDid = verifierFromDidKey(c.publicKeyDid)
    assert.ok(fromDid, c.comment)
    const legacy = parseVerificationMethod({ type: c.didDocSuite, publicKeyMultibase: c.publicKeyMultibase })
    assert.ok(legacy, c.comment)
    assert.equal(formatDidKey(legacy), c.publicKeyDid)
    for (const v of [fromDid, createVerifier(legacy)]) {
      assert.equal(verifySignature(v, b64(c.messageBase64), b64(c.signatureBase64)), c.validSignature, c.comment)
    }
  }
})

test('native addon itself rejects high-S (we enforce it anyway)', () => {
  const cases = JSON.parse(readFileSync(new URL('signature-fixtures.json', FIX), 'utf8'))
  const native = createRequire(import.meta.url)('secp256k1/bindings')
  const c = cases.find((x: { algorithm: string; tags: string[] }) => x.algorithm === 'ES256K' && x.tags.includes('high-s'))
  const key = parseDidKey(c.publicKeyDid)!
  assert.equal(isAcceptableSignature('k256', b64(c.signatureBase64)), false)
  assert.equal(native.ecdsaVerify(b64(c.signatureBase64), sha256(b64(c.messageBase64)), key.compressed), false)
})

test('every native K-256 backend rejects high-S itself and agrees with the interop fixtures', () => {
  const cases = (JSON.parse(readFileSync(new URL('signature-fixtures.json', FIX), 'utf8')) as Fixture[]).filter(
    (c) => c.algorithm === 'ES256K',
  )
  assert.ok(cases.some((c) => c.tags.includes('high-s')))
  for (const backend of k256NativeBackends()) {
    for (const c of cases) {
      const verify = backend.prepare(parseDidKey(c.publicKeyDid)!.compressed)!
      // no shape gate here: the curve code alone must refuse high-S
      assert.equal(verify(sha256(b64(c.messageBase64)), b64(c.signatureBase64)), c.validSignature, `${backend.name}: ${c.comment}`)
    }
  }
})

interface Fixture {
  algorithm: string
  tags: string[]
  comment: string
  publicKeyDid: string
  messageBase64: string
  signatureBase64: string
  validSignature: boolean
}

const K256_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const toBytes32 = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'))
const fromBytes = (b: Uint8Array) => BigInt('0x' + Buffer.from(b).toString('hex'))

test('K-256 backends agree with OpenSSL on real, tampered, high-S, out-of-range and zero signatures', async () => {
  const { createPublicKey, verify: osslVerify } = await import('node:crypto')
  const spki = Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex')
  let checked = 0
  for (let k = 0; k < 8; k++) {
    const kp = await Secp256k1Keypair.create()
    const key = parseDidKey(kp.did())!
    const ossl = createPublicKey({ key: Buffer.concat([spki, key.compressed]), format: 'der', type: 'spki' })
    const verifiers = k256NativeBackends().map((b) => ({ name: b.name, verify: b.prepare(key.compressed)! }))
    for (let m = 0; m < 12; m++) {
      const msg = Uint8Array.from(Buffer.from(`message ${k}/${m} ` + 'x'.repeat(m * 17)))
      const sig = await kp.sign(msg)
      const s = fromBytes(sig.subarray(32))
      const variants: [string, Uint8Array, Uint8Array][] = [
        ['valid', msg, sig],
        ['message bit', Uint8Array.from(msg, (b, i) => (i === m % msg.length ? b ^ 0x10 : b)), sig],
        ['r bit', msg, Uint8Array.from(sig, (b, i) => (i === m ? b ^ 1 : b))],
        ['s bit', msg, Uint8Array.from(sig, (b, i) => (i === 40 + m ? b ^ 0x80 : b))],
        ['high-S', msg, Uint8Array.from([...sig.subarray(0, 32), ...toBytes32(K256_N - s)])],
        ['r = n', msg, Uint8Array.from([...toBytes32(K256_N), ...sig.subarray(32)])],
        ['r = 0', msg, Uint8Array.from([...new Uint8Array(32), ...sig.subarray(32)])],
        ['s = 0', msg, Uint8Array.from([...sig.subarray(0, 32), ...new Uint8Array(32)])],
      ]
      for (const [what, message, signature] of variants) {
        // OpenSSL accepts high-S, so the reference is OpenSSL plus atproto's shape rule
        const expected =
          isAcceptableSignature('k256', signature) && osslVerify('sha256', message, { key: ossl, dsaEncoding: 'ieee-p1363' }, signature)
        assert.equal(expected, what === 'valid', what)
        for (const v of verifiers) assert.equal(v.verify(sha256(message), signature), expected, `${v.name}: ${what}`)
        checked++
      }
    }
  }
  assert.equal(checked, 8 * 12 * 8)
})

test('the libsecp256k1 addon refuses malformed arguments instead of reading past them', () => {
  const addon = createRequire(import.meta.url)('../../../native/k256/build/k256.node')
  assert.equal(addon.parsePubkey(new Uint8Array(33)), null)
  assert.equal(addon.parsePubkey(new Uint8Array(32)), null)
  assert.equal(addon.parsePubkey('not bytes'), null)
  assert.equal(addon.parsePubkey(), null)
  const key = k256NativeBackends()[0]
  assert.equal(key.name, 'libsecp256k1')
  const parsed = addon.parsePubkey(parseDidKey('did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme')!.compressed)
  assert.equal(parsed.length, 64)
  const sig = new Uint8Array(64).fill(1)
  const msg = new Uint8Array(32)
  assert.equal(addon.verify(sig.subarray(0, 63), msg, parsed), false)
  assert.equal(addon.verify(sig, msg.subarray(1), parsed), false)
  assert.equal(addon.verify(sig, msg, parsed.subarray(1)), false)
  assert.equal(addon.verify(sig, msg, new Float64Array(8)), false)
  assert.equal(addon.verify(sig, msg), false)
  // a view into a larger buffer is read at its offset
  const backing = new Uint8Array(200)
  backing.set(sig, 100)
  assert.equal(addon.verify(backing.subarray(100, 164), msg, parsed), false)
})

test('w3c did:key fixtures parse (K-256 and P-256)', () => {
  for (const f of ['w3c_didkey_K256.json', 'w3c_didkey_P256.json']) {
    const cases = JSON.parse(readFileSync(new URL(f, FIX), 'utf8')) as { publicDidKey: string }[]
    assert.ok(cases.length > 0)
    for (const c of cases) {
      const k = parseDidKey(c.publicDidKey)
      assert.ok(k, c.publicDidKey)
      assert.equal(formatDidKey(k), c.publicDidKey)
    }
  }
})

function jwkPoint(j: { x?: string; y?: string }): Uint8Array {
  return Uint8Array.from([4, ...Buffer.from(j.x!, 'base64url'), ...Buffer.from(j.y!, 'base64url')])
}

test('Multikey, legacy uncompressed, garbage', async () => {
  for (const kp of [await Secp256k1Keypair.create({ exportable: true }), await P256Keypair.create({ exportable: true })]) {
    const did = kp.did()
    const key = parseMultikey(did.slice(8))!
    assert.ok(parseVerificationMethod({ type: 'Multikey', publicKeyMultibase: did.slice(8) }))
    const msg = new TextEncoder().encode('hello world')
    const sig = await kp.sign(msg)
    assert.ok(verifySignature(createVerifier(key), msg, sig))
    // legacy uncompressed form
    const uncompressed =
      kp instanceof Secp256k1Keypair
        ? createRequire(import.meta.url)('secp256k1/bindings').publicKeyConvert(key.compressed, false)
        : jwkPoint(
            (await import('node:crypto'))
              .createPublicKey({
                key: Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), key.compressed]),
                format: 'der',
                type: 'spki',
              })
              .export({ format: 'jwk' }),
          )
    const type = kp instanceof Secp256k1Keypair ? 'EcdsaSecp256k1VerificationKey2019' : 'EcdsaSecp256r1VerificationKey2019'
    const legacy = parseVerificationMethod({ type, publicKeyMultibase: 'z' + base58Encode(uncompressed) })
    assert.ok(legacy)
    assert.equal(formatDidKey(legacy), did)
    assert.equal(verifySignature(createVerifier(legacy), msg, sig.subarray(0, 63)), false)
  }
  assert.equal(parseDidKey('did:key:zQ3shBAD'), null)
  assert.equal(parseDidKey('did:web:x'), null)
  assert.equal(parseVerificationMethod({ type: 'Ed25519VerificationKey2020', publicKeyMultibase: 'z6Mk' }), null)
  assert.equal(base58Decode('0OIl'), null)
})
