// Small byte helpers shared by the validator modules. Everything here is allocation-light because
// it sits on the per-frame hot path.
import { hash } from 'node:crypto'

export function sha256(data: Uint8Array): Buffer {
  // A 'latin1' result plus a pooled Buffer.from is cheaper than hash(…, 'buffer'), which allocates a
  // backing store per call (see sha256.ts, which the hot paths use directly).
  return Buffer.from(hash('sha256', data, 'binary'), 'latin1')
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Map key for raw bytes (CID bytes): latin1 maps bytes 1:1 to UTF-16 code units. */
export function bytesKey(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')
}

const HEX = '0123456789abcdef'
export function toHex(b: Uint8Array): string {
  let s = ''
  for (let i = 0; i < b.length; i++) s += HEX[b[i] >> 4] + HEX[b[i] & 15]
  return s
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
