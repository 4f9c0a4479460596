// The relay's own native addon (native/k256: libsecp256k1 verification, OpenSSL SHA-256), built at
// install by native/k256/build.mjs. Optional: every user has a pure-Node fallback.
import { createRequire } from 'node:module'

export interface NativeAddon {
  /** upstream version of the vendored libsecp256k1 */
  libsecp256k1: string
  verify(sig: Uint8Array, msg32: Uint8Array, parsedKey: Uint8Array): boolean
  parsePubkey(point: Uint8Array): Uint8Array | null
  /** absent when the Node binary does not export OpenSSL's SHA-256 functions */
  sha256Into?(data: Uint8Array, out: Uint8Array, outOffset: number): void
  sha256Equals?(data: Uint8Array, start: number, end: number, expected: Uint8Array, expOffset: number): boolean
}

let addon: NativeAddon | null = null
let error: string | null = null
try {
  addon = createRequire(import.meta.url)('../../native/k256/build/k256.node') as NativeAddon
} catch (err) {
  error = (err as Error).message.split('\n')[0]!
}

export const nativeAddon: NativeAddon | null = addon
/** why the addon did not load (null when it did) */
export const nativeAddonError: string | null = error
