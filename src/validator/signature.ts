// Signature acceptance rules shared by both curves: atproto only accepts 64-byte compact (r || s)
// signatures in low-S form. OpenSSL happily verifies high-S (and DER with dsaEncoding 'der'), so
// the shape checks live here and run before any curve arithmetic.
import type { Verifier } from './keys.ts'

// n/2 (floor) for each curve, big-endian.
const K256_HALF_N = Buffer.from('7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0', 'hex')
const P256_HALF_N = Buffer.from('7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8', 'hex')

function lowS(sig: Uint8Array, halfN: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) {
    const a = sig[32 + i]
    const b = halfN[i]
    if (a < b) return true
    if (a > b) return false
  }
  return true // s == n/2
}

function nonZero(sig: Uint8Array, from: number): boolean {
  for (let i = from; i < from + 32; i++) if (sig[i] !== 0) return true
  return false
}

/** Shape check: 64 bytes, r and s non-zero, s <= n/2 for the curve. */
export function isAcceptableSignature(curve: 'k256' | 'p256', sig: Uint8Array): boolean {
  if (sig.length !== 64) return false
  if (!nonZero(sig, 0) || !nonZero(sig, 32)) return false
  return lowS(sig, curve === 'k256' ? K256_HALF_N : P256_HALF_N)
}

/** Full check: shape rules then the curve verification. Never throws. */
export function verifySignature(verifier: Verifier, message: Uint8Array, sig: Uint8Array): boolean {
  if (!isAcceptableSignature(verifier.curve, sig)) return false
  try {
    return verifier.verifyRaw(message, sig)
  } catch {
    return false
  }
}
