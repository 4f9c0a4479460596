// The validator encodes each outbound frame once, with `seq` written as the single byte 0x00 (the
// CBOR unsigned int 0); the sequencer splices the real seq in when it assigns one. DAG-CBOR needs
// the minimal encoding, so the frame grows by 0-8 bytes and nothing else in it changes (map
// lengths and key order are unaffected because the value stays one data item).

export const MAX_SEQ = Number.MAX_SAFE_INTEGER // 2^53 - 1: JS numbers, and @atproto/sync rejects more

/** Canonical (shortest) CBOR encoding of an unsigned integer, major type 0. */
export function encodeCborUint(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a CBOR-encodable unsigned safe integer: ${n}`)
  if (n < 24) return Buffer.from([n])
  if (n < 0x100) return Buffer.from([0x18, n])
  if (n < 0x10000) {
    const b = Buffer.allocUnsafe(3)
    b[0] = 0x19
    b.writeUInt16BE(n, 1)
    return b
  }
  if (n < 0x100000000) {
    const b = Buffer.allocUnsafe(5)
    b[0] = 0x1a
    b.writeUInt32BE(n, 1)
    return b
  }
  const b = Buffer.allocUnsafe(9)
  b[0] = 0x1b
  b.writeUInt32BE(Math.floor(n / 0x100000000), 1)
  b.writeUInt32BE(n >>> 0, 5)
  return b
}

/** Length of `encodeCborUint(n)` without allocating. */
export function cborUintLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9
}

/**
 * Returns a new Buffer: `frame` with the placeholder byte at `seqOffset` replaced by the minimal
 * CBOR encoding of `seq`. The input is not modified (it may be shared with a worker's pool).
 * With `headroom`, the allocation has that many spare bytes in front of the returned view, which
 * belong to it alone (the broadcaster writes the WebSocket header there instead of copying).
 */
export function spliceSeq(frame: Uint8Array, seqOffset: number, seq: number, headroom = 0): Buffer {
  if (!Number.isInteger(seqOffset) || seqOffset < 0 || seqOffset >= frame.length) {
    throw new RangeError(`seqOffset ${seqOffset} is outside the frame (${frame.length} bytes)`)
  }
  if (frame[seqOffset] !== 0x00) throw new RangeError(`no seq placeholder (0x00) at offset ${seqOffset}`)
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEQ) throw new RangeError(`seq out of range: ${seq}`)
  const n = cborUintLength(seq)
  // Its own allocation, never a slice of Node's shared Buffer pool (64 KiB slabs on Node 24): the
  // frame lives on in the ring, and a pooled one would pin a whole slab there (measured: 4,108
  // ring entries held 257 MiB of slabs for ~64 MiB of frames).
  const out = Buffer.allocUnsafeSlow(headroom + frame.length - 1 + n).subarray(headroom)
  out.set(frame.subarray(0, seqOffset), 0)
  const enc = n === 1 ? null : encodeCborUint(seq)
  if (enc) out.set(enc, seqOffset)
  else out[seqOffset] = seq
  out.set(frame.subarray(seqOffset + 1), seqOffset + n)
  return out
}
