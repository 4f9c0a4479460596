// Public key parsing (did:key, Multikey, legacy EcdsaSecp256{k1,r1}VerificationKey2019) into a
// reusable verifier. Build one per DID and cache it: the expensive parts (point decompression, key
// object construction) happen once here, not per signature.
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import { base58Decode, base58Encode } from './base58.ts'
import { sha256Into } from './sha256.ts'

export type Curve = 'k256' | 'p256'

export interface PublicKey {
  curve: Curve
  /** SEC1 compressed point, 33 bytes */
  compressed: Uint8Array
}

export interface Verifier {
  readonly curve: Curve
  readonly didKey: string
  /**
   * Curve verification of a 64-byte compact signature over sha256(message). Does NOT apply the
   * low-S / length rules: call signature.ts verifySignature(), which does.
   */
  verifyRaw(message: Uint8Array, sig: Uint8Array): boolean
}

interface NativeSecp256k1 {
  ecdsaVerify(sig: Uint8Array, msg32: Uint8Array, pubkey: Uint8Array): boolean
  publicKeyConvert(pubkey: Uint8Array, compressed?: boolean): Uint8Array
}

let native: NativeSecp256k1 | null = null
let nativeLoadError: string | null = null
try {
  // Load the N-API binding explicitly: the package root silently falls back to pure JS.
  native = createRequire(import.meta.url)('secp256k1/bindings') as NativeSecp256k1
} catch (err) {
  nativeLoadError = (err as Error).message
}

/** Which K-256 backend is in use (log it and export it as a metric at startup). */
export const k256Backend: 'native-secp256k1' | 'node-crypto' = native ? 'native-secp256k1' : 'node-crypto'
export const k256BackendError: string | null = nativeLoadError

const K256_PREFIX = [0xe7, 0x01]
const P256_PREFIX = [0x80, 0x24]

// SubjectPublicKeyInfo DER prefixes (id-ecPublicKey + named curve), for compressed (33 B) and
// uncompressed (65 B) points.
const SPKI = {
  k256: {
    33: Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'),
    65: Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex'),
  },
  p256: {
    33: Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
    65: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
  },
} as const

function keyObjectFor(curve: Curve, point: Uint8Array): KeyObject | null {
  if (point.length !== 33 && point.length !== 65) return null
  try {
    const prefix = SPKI[curve][point.length as 33 | 65]
    return createPublicKey({ key: Buffer.concat([prefix, point]), format: 'der', type: 'spki' })
  } catch {
    return null
  }
}

function compress(curve: Curve, point: Uint8Array): Uint8Array | null {
  if (point.length === 33) {
    if (point[0] !== 0x02 && point[0] !== 0x03) return null
    // validate it is on the curve
    return keyObjectFor(curve, point) ? point : null
  }
  if (point.length !== 65 || point[0] !== 0x04) return null
  if (!keyObjectFor(curve, point)) return null
  const out = new Uint8Array(33)
  out[0] = point[64] & 1 ? 0x03 : 0x02
  out.set(point.subarray(1, 33), 1)
  return out
}

/** Multibase ('z' base58btc) multicodec-prefixed key, as in did:key and Multikey. */
export function parseMultikey(multibase: string): PublicKey | null {
  if (typeof multibase !== 'string' || multibase[0] !== 'z') return null
  const b = base58Decode(multibase.slice(1))
  if (b === null || b.length < 3) return null
  let curve: Curve
  if (b[0] === K256_PREFIX[0] && b[1] === K256_PREFIX[1]) curve = 'k256'
  else if (b[0] === P256_PREFIX[0] && b[1] === P256_PREFIX[1]) curve = 'p256'
  else return null
  const compressed = compress(curve, b.subarray(2))
  return compressed ? { curve, compressed } : null
}

export function parseDidKey(didKey: string): PublicKey | null {
  if (typeof didKey !== 'string' || !didKey.startsWith('did:key:')) return null
  return parseMultikey(didKey.slice(8))
}

/**
 * A DID document verificationMethod entry. Multikey: multicodec-prefixed multibase. Legacy types:
 * raw SEC1 point in multibase, no multicodec prefix (uncompressed per spec; compressed also seen).
 */
export function parseVerificationMethod(vm: { type?: unknown; publicKeyMultibase?: unknown }): PublicKey | null {
  const mb = vm.publicKeyMultibase
  if (typeof mb !== 'string') return null
  if (vm.type === 'Multikey') return parseMultikey(mb)
  let curve: Curve
  if (vm.type === 'EcdsaSecp256k1VerificationKey2019') curve = 'k256'
  else if (vm.type === 'EcdsaSecp256r1VerificationKey2019') curve = 'p256'
  else return null
  if (mb[0] !== 'z') return null
  const raw = base58Decode(mb.slice(1))
  if (raw === null) return null
  const compressed = compress(curve, raw)
  return compressed ? { curve, compressed } : null
}

export function formatDidKey(key: PublicKey): string {
  const prefix = key.curve === 'k256' ? K256_PREFIX : P256_PREFIX
  const b = new Uint8Array(2 + key.compressed.length)
  b.set(prefix, 0)
  b.set(key.compressed, 2)
  return 'did:key:z' + base58Encode(b)
}

const msg32 = new Uint8Array(32)

export function createVerifier(key: PublicKey): Verifier {
  const didKey = formatDidKey(key)
  if (key.curve === 'k256' && native) {
    const n = native
    // Uncompressed form spares libsecp256k1 a square root on every verify.
    const uncompressed = n.publicKeyConvert(key.compressed, false)
    return {
      curve: 'k256',
      didKey,
      verifyRaw: (message, sig) => {
        // one digest call, written into a reused buffer (the addon reads it synchronously)
        sha256Into(message, msg32, 0)
        return n.ecdsaVerify(sig, msg32, uncompressed)
      },
    }
  }
  const ko = keyObjectFor(key.curve, key.compressed)
  if (!ko) throw new Error('invalid public key')
  const opts = { key: ko, dsaEncoding: 'ieee-p1363' as const }
  return {
    curve: key.curve,
    didKey,
    verifyRaw: (message, sig) => nodeVerify('sha256', message, opts, sig),
  }
}

/** Convenience: did:key string → verifier, or null when unparseable. */
export function verifierFromDidKey(didKey: string): Verifier | null {
  const k = parseDidKey(didKey)
  return k ? createVerifier(k) : null
}
