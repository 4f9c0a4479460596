// SHA-256 for the per-block hashing of validation (CAR verification, re-hashed MST nodes, signed
// commit bytes). node:crypto's one-shot `hash()` is cheap itself (OpenSSL with SHA-NI), but asking it
// for a 'buffer' result allocates a fresh ArrayBuffer backing store per call, which measured ~2.5 µs
// of the ~3.5 µs per call on the team machine; a 'binary' (latin1) string result, one char per byte, costs
// ~1.1 µs in total. The digest is then compared or copied from the string without allocating.
// (A pure-JS SHA-256 was also measured: slower than this at every input size.)
// When the relay's addon is built, sha256Into / sha256Matches go through it instead: one N-API call
// into OpenSSL's SHA-256 block function, ~0.3 µs for a 150-byte block against ~0.65 µs here (the
// per-call cost of node:crypto's hash() is mostly OpenSSL 3 fetching the algorithm every time).
import { hash } from 'node:crypto'
import { nativeAddon } from './native.ts'

const nativeInto = nativeAddon?.sha256Into ?? null
const nativeEquals = nativeAddon?.sha256Equals ?? null
/** which implementation hashes blocks (benchmarks print it) */
export const sha256Backend: 'addon' | 'node-crypto' = nativeInto && nativeEquals ? 'addon' : 'node-crypto'

/** sha256 of data as a 32-char latin1 string. */
export function sha256Latin1(data: Uint8Array): string {
  return hash('sha256', data, 'binary')
}

function nodeSha256Into(data: Uint8Array, out: Uint8Array, outOff: number): void {
  const d = hash('sha256', data, 'binary')
  for (let i = 0; i < 32; i++) out[outOff + i] = d.charCodeAt(i)
}

function nodeSha256Matches(data: Uint8Array, start: number, end: number, expected: Uint8Array, expOff: number): boolean {
  const d = hash('sha256', start === 0 && end === data.length ? data : data.subarray(start, end), 'binary')
  for (let i = 0; i < 32; i++) if (d.charCodeAt(i) !== expected[expOff + i]) return false
  return true
}

/** sha256(data) written to out[outOff, outOff + 32). */
export const sha256Into: (data: Uint8Array, out: Uint8Array, outOff: number) => void =
  sha256Backend === 'addon' ? nativeInto! : nodeSha256Into

/**
 * sha256 of data[start, end) === expected[expOff, expOff + 32)? Callers pass ranges they have
 * bounds-checked: the addon throws a TypeError on an out-of-range one.
 */
export const sha256Matches: (data: Uint8Array, start: number, end: number, expected: Uint8Array, expOff: number) => boolean =
  sha256Backend === 'addon' ? nativeEquals! : nodeSha256Matches

/** both implementations, for tests that compare them */
export const sha256Implementations = {
  node: { into: nodeSha256Into, matches: nodeSha256Matches },
  addon: nativeInto && nativeEquals ? { into: nativeInto, matches: nativeEquals } : null,
}

export function sha256(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  sha256Into(data, out, 0)
  return out
}
