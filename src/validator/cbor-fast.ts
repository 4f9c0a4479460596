// Primitives for the hand-written decoders of fixed-layout DAG-CBOR objects (MST nodes, the commit
// object, the CAR header). They only recognise the canonical forms (minimal argument encodings,
// blessed CID links); a caller that meets anything else returns null and falls back to the generic
// @atcute/cbor decoder, so acceptance and error details never depend on which path ran.
import { CID_LENGTH, CODEC_DAG_CBOR, CODEC_RAW } from './cid.ts'

/** Offset just past the value read by the last readArg() call. */
export const cursor = { next: 0 }

/** Minimal-encoded argument (a safe integer) of major type `major` at b[pos] (end in cursor.next), or -1. */
export function readArg(b: Uint8Array, pos: number, end: number, major: number): number {
  if (pos >= end) return -1
  const ib = b[pos]
  if (ib >> 5 !== major) return -1
  const info = ib & 0x1f
  if (info < 24) {
    cursor.next = pos + 1
    return info
  }
  if (info === 24) {
    if (pos + 1 >= end || b[pos + 1] < 24) return -1
    cursor.next = pos + 2
    return b[pos + 1]
  }
  if (info === 25) {
    if (pos + 2 >= end) return -1
    const v = (b[pos + 1] << 8) | b[pos + 2]
    if (v < 0x100) return -1
    cursor.next = pos + 3
    return v
  }
  if (info === 26) {
    if (pos + 4 >= end) return -1
    const v = ((b[pos + 1] << 24) | (b[pos + 2] << 16) | (b[pos + 3] << 8) | b[pos + 4]) >>> 0
    if (v < 0x10000) return -1
    cursor.next = pos + 5
    return v
  }
  if (info === 27) {
    if (pos + 8 >= end) return -1
    const hi = ((b[pos + 1] << 24) | (b[pos + 2] << 16) | (b[pos + 3] << 8) | b[pos + 4]) >>> 0
    const lo = ((b[pos + 5] << 24) | (b[pos + 6] << 16) | (b[pos + 7] << 8) | b[pos + 8]) >>> 0
    if (hi === 0 || hi > 0x1fffff) return -1
    cursor.next = pos + 9
    return hi * 0x100000000 + lo
  }
  return -1
}

/** Offset just past a blessed CID link (d8 2a 58 25 00 <36-byte cid>) at b[pos], or -1. */
export function cidLinkEnd(b: Uint8Array, pos: number, end: number): number {
  const e = pos + 5 + CID_LENGTH
  if (e > end) return -1
  if (b[pos] !== 0xd8 || b[pos + 1] !== 0x2a || b[pos + 2] !== 0x58 || b[pos + 3] !== 0x25 || b[pos + 4] !== 0x00) return -1
  const codec = b[pos + 6]
  if (b[pos + 5] !== 0x01 || (codec !== CODEC_DAG_CBOR && codec !== CODEC_RAW) || b[pos + 7] !== 0x12 || b[pos + 8] !== 0x20) return -1
  return e
}

/** Does b[pos, pos + key.length) hold the ASCII map key `key` preceded by its (short) text head? */
export function keyAt(b: Uint8Array, pos: number, end: number, key: string): boolean {
  const n = key.length
  if (pos + 1 + n > end || b[pos] !== (0x60 | n)) return false
  for (let i = 0; i < n; i++) if (b[pos + 1 + i] !== key.charCodeAt(i)) return false
  return true
}

/**
 * Text string at b[pos] if it is pure ASCII (then bytes == UTF-16 units), else null; end in
 * cursor.next. `view` (a Buffer over the same bytes as b) saves creating one per string.
 */
export function asciiText(b: Uint8Array, pos: number, end: number, view?: Buffer): string | null {
  const n = readArg(b, pos, end, 3)
  if (n < 0) return null
  const start = cursor.next
  const stop = start + n
  if (stop > end) return null
  for (let i = start; i < stop; i++) if (b[i] > 0x7f) return null
  cursor.next = stop
  if (view !== undefined) return view.toString('latin1', start, stop)
  return Buffer.from(b.buffer, b.byteOffset + start, n).toString('latin1')
}
