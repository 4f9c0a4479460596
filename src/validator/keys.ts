// Public key parsing (did:key, Multikey, legacy EcdsaSecp256{k1,r1}VerificationKey2019) into a
// reusable verifier. Build one per DID and cache it: the expensive parts (point decompression, key
// object construction) happen once here, not per signature.
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import { base58Decode, base58Encode } from './base58.ts'
import { sha256Into } from './sha256.ts'
import { nativeAddon, nativeAddonError } from './native.ts'

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

// K-256 backends, best first. `libsecp256k1` is our addon over a current libsecp256k1 (built at
// install by native/k256/build.mjs; its verify is 13-32% faster than the 2019 library in the
// `secp256k1` package, which stays as the fallback when no C compiler was available).
// node:crypto's generic secp256k1 is the last resort (~7x slower than either).
export type K256BackendName = 'libsecp256k1' | 'native-secp256k1' | 'node-crypto'

export interface K256Backend {
  name: K256BackendName
  /** null when the point does not parse; the verify function never throws */
  prepare(compressed: Uint8Array): ((msg32: Uint8Array, sig: Uint8Array) => boolean) | null
}

const requireHere = createRequire(import.meta.url)
const loadErrors: string[] = []

function loadLibsecp256k1(): K256Backend | null {
  const addon = nativeAddon
  if (addon === null) {
    loadErrors.push(`libsecp256k1 addon: ${nativeAddonError}`)
    return null
  }
  return {
    name: 'libsecp256k1',
    prepare(compressed) {
      // parsed once per key: no square root (decompression) on each verify
      const parsed = addon.parsePubkey(compressed)
      return parsed ? (msg32, sig) => addon.verify(sig, msg32, parsed) : null
    },
  }
}

function loadSecp256k1Package(): K256Backend | null {
  let addon: {
    ecdsaVerify(sig: Uint8Array, msg32: Uint8Array, pubkey: Uint8Array): boolean
    publicKeyConvert(p: Uint8Array, compressed?: boolean): Uint8Array
  }
  try {
    // the N-API binding itself: the package root silently falls back to pure JS
    addon = requireHere('secp256k1/bindings')
  } catch (err) {
    loadErrors.push(`secp256k1 package: ${(err as Error).message.split('\n')[0]}`)
    return null
  }
  return {
    name: 'native-secp256k1',
    prepare(compressed) {
      let uncompressed: Uint8Array
      try {
        // the uncompressed form spares the library a square root on every verify
        uncompressed = addon.publicKeyConvert(compressed, false)
      } catch {
        return null
      }
      return (msg32, sig) => {
        try {
          return addon.ecdsaVerify(sig, msg32, uncompressed)
        } catch {
          return false // its JS wrapper throws on a wrong length or an unparseable r/s
        }
      }
    },
  }
}

function once<T>(load: () => T): () => T {
  let loaded = false
  let value: T
  return () => {
    if (!loaded) [value, loaded] = [load(), true]
    return value
  }
}
const backendLoaders = [once(loadLibsecp256k1), once(loadSecp256k1Package)]

// The fallback is only loaded when the addon is missing: each library keeps ~1 MB of tables.
const k256Native: K256Backend | null = backendLoaders.reduce<K256Backend | null>((found, load) => found ?? load(), null)

/** Every native K-256 backend that loads, best first (tests and benchmarks compare them). */
export function k256NativeBackends(): K256Backend[] {
  return backendLoaders.map((load) => load()).filter((b) => b !== null)
}

/** Which K-256 backend is in use (logged and exported as a metric by the workers). */
export const k256Backend: K256BackendName = k256Native?.name ?? 'node-crypto'
/** Why a better backend did not load (null when the best one did). */
export const k256BackendError: string | null = loadErrors.length > 0 ? loadErrors.join('; ') : null

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

/** `k256` picks another K-256 backend than the best one (benchmarks compare them). */
export function createVerifier(key: PublicKey, k256: K256Backend | null = k256Native): Verifier {
  const didKey = formatDidKey(key)
  const verifyDigest = key.curve === 'k256' ? k256?.prepare(key.compressed) : null
  if (verifyDigest) {
    return {
      curve: 'k256',
      didKey,
      verifyRaw: (message, sig) => {
        // one digest call, written into a reused buffer (the addon reads it synchronously)
        sha256Into(message, msg32, 0)
        return verifyDigest(msg32, sig)
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
