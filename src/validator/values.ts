// Type guards over values produced by @atcute/cbor's decoder.
import { BytesWrapper } from '@atcute/cbor'
import { CidLinkWrapper } from '@atcute/cid'
import { isBlessedCid } from './cid.ts'

export function isPlainMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof CidLinkWrapper) && !(v instanceof BytesWrapper)
}

/** Raw CID bytes of a blessed cid-link value, or null. */
export function asCid(v: unknown): Uint8Array | null {
  if (v instanceof CidLinkWrapper && isBlessedCid(v.bytes)) return v.bytes
  return null
}

export function asBytes(v: unknown): Uint8Array | null {
  return v instanceof BytesWrapper ? v.buf : null
}

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v)
}
