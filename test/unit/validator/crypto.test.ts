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
} from '../../../src/validator/keys.ts'
import { verifySignature, isAcceptableSignature } from '../../../src/validator/signature.ts'
import { base58Decode, base58Encode } from '../../../src/validator/base58.ts'
import { sha256 } from '../../../src/validator/bytes.ts'

const FIX = new URL('../../fixtures/atproto-interop-tests/crypto/', import.meta.url)
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

test('native secp256k1 binding is loaded', () => {
  assert.equal(k256Backend, 'native-secp256k1')
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
