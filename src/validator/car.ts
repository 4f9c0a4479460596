// CAR v1 parsing for firehose `blocks` with per-block CID verification. Only blessed CIDs (36 bytes)
// are accepted, so the block loop is a plain varint + fixed-size CID walk.
//
// Blocks are indexed without building a string (or any object) per CID: the key is 30 bits of the
// CID's sha256 digest (already uniformly distributed) and a lookup confirms the full 36 bytes, so
// colliding keys chain and cannot alias. Block bodies are views into the CAR bytes, never copies.
import { decode } from '@atcute/cbor'
import { bytesKey } from './bytes.ts'
import { sha256Matches } from './sha256.ts'
import { asCid, isPlainMap } from './values.ts'
import { CID_LENGTH, CODEC_DAG_CBOR, CODEC_RAW } from './cid.ts'

/** A plain map keyed by bytesKey(cid); accepted wherever CarBlocks is (tests build these). */
export type BlockMap = Map<string, Uint8Array>

/** Digest bits used as the index key: a small integer (Smi) so the Map never boxes it. */
function keyAt(b: Uint8Array, off: number): number {
  return ((b[off + 4] << 22) | (b[off + 5] << 14) | (b[off + 6] << 6) | (b[off + 7] >>> 2)) & 0x3fffffff
}

/** The blocks of one CAR: a read-only index into its bytes. */
export class CarBlocks {
  private bytes: Uint8Array
  /** per block: offset of its CID, start and end of its data */
  private cidAt: number[] = []
  private dataStart: number[] = []
  private dataEnd: number[] = []
  /** per block: next block with the same key, or -1 */
  private next: number[] = []
  private index = new Map<number, number>()

  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }

  private equalAt(i: number, cid: Uint8Array, off: number): boolean {
    const b = this.bytes
    const p = this.cidAt[i]
    for (let j = 0; j < CID_LENGTH; j++) if (b[p + j] !== cid[off + j]) return false
    return true
  }

  /** Adds the block whose CID starts at `cidAt`; a repeated CID replaces the earlier entry. */
  add(cidAt: number, start: number, end: number): void {
    const key = keyAt(this.bytes, cidAt)
    const first = this.index.get(key)
    for (let i = first ?? -1; i !== -1; i = this.next[i]) {
      if (this.equalAt(i, this.bytes, cidAt)) {
        this.cidAt[i] = cidAt
        this.dataStart[i] = start
        this.dataEnd[i] = end
        return
      }
    }
    const n = this.cidAt.length
    this.cidAt.push(cidAt)
    this.dataStart.push(start)
    this.dataEnd.push(end)
    this.next.push(first ?? -1)
    this.index.set(key, n)
  }

  /** Block index of the 36-byte CID at cid[off, off + 36), or -1. */
  find(cid: Uint8Array, off = 0): number {
    const first = this.index.get(keyAt(cid, off))
    for (let i = first ?? -1; i !== -1; i = this.next[i]) if (this.equalAt(i, cid, off)) return i
    return -1
  }

  /** Data of block `i` (a view into the CAR bytes). */
  data(i: number): Uint8Array {
    return this.bytes.subarray(this.dataStart[i], this.dataEnd[i])
  }

  dataLength(i: number): number {
    return this.dataEnd[i] - this.dataStart[i]
  }

  get(cid: Uint8Array, off = 0): Uint8Array | undefined {
    const i = this.find(cid, off)
    return i === -1 ? undefined : this.data(i)
  }
}

export type Blocks = CarBlocks | BlockMap

export interface ParsedCar {
  /** first header root */
  root: Uint8Array
  roots: Uint8Array[]
  blocks: CarBlocks
}

export type CarResult = { ok: true; car: ParsedCar } | { ok: false; reason: 'decode' | 'structure'; detail: string }

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] | null {
  let value = 0
  let mul = 1
  for (let i = 0; i < 8; i++) {
    if (pos >= buf.length) return null
    const b = buf[pos++]
    value += (b & 0x7f) * mul
    if ((b & 0x80) === 0) return [value, pos]
    mul *= 128
  }
  return null
}

// The header every atproto producer writes: {roots: [<one blessed cid>], version: 1}, canonical.
// 'roots' (5 bytes) sorts before 'version' (7 bytes).
const HEADER_HEAD = [0xa2, 0x65, 0x72, 0x6f, 0x6f, 0x74, 0x73, 0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01]
const HEADER_TAIL = [0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01]
const HEADER_LENGTH = HEADER_HEAD.length + 35 + HEADER_TAIL.length

/** Root of a header in exactly the canonical single-root shape, else null (use the generic path). */
function fastHeaderRoot(bytes: Uint8Array, start: number, len: number): Uint8Array | null {
  if (len !== HEADER_LENGTH) return null
  for (let i = 0; i < HEADER_HEAD.length; i++) if (bytes[start + i] !== HEADER_HEAD[i]) return null
  const c = start + HEADER_HEAD.length - 1 // CID starts at its 0x01 version byte
  const codec = bytes[c + 1]
  if ((codec !== CODEC_DAG_CBOR && codec !== CODEC_RAW) || bytes[c + 2] !== 0x12 || bytes[c + 3] !== 0x20) return null
  const t = c + CID_LENGTH
  for (let i = 0; i < HEADER_TAIL.length; i++) if (bytes[t + i] !== HEADER_TAIL[i]) return null
  return bytes.subarray(c, c + CID_LENGTH)
}

/** Never throws. `verify: false` skips hashing (tests/bench only). */
export function parseCar(bytes: Uint8Array, verify = true): CarResult {
  const h = readVarint(bytes, 0)
  if (h === null) return { ok: false, reason: 'decode', detail: 'car header length' }
  const [headerLen, headerStart] = h
  if (headerLen === 0 || headerStart + headerLen > bytes.length) return { ok: false, reason: 'decode', detail: 'car header truncated' }
  let roots: Uint8Array[]
  const fast = fastHeaderRoot(bytes, headerStart, headerLen)
  if (fast !== null) {
    roots = [fast]
  } else {
    let header: unknown
    try {
      header = decode(bytes.subarray(headerStart, headerStart + headerLen))
    } catch (err) {
      return { ok: false, reason: 'decode', detail: `car header: ${(err as Error).message}` }
    }
    if (!isPlainMap(header) || header.version !== 1 || !Array.isArray(header.roots) || header.roots.length === 0) {
      return { ok: false, reason: 'structure', detail: 'car header invalid' }
    }
    roots = []
    for (const r of header.roots) {
      const c = asCid(r)
      if (c === null) return { ok: false, reason: 'structure', detail: 'car root not a blessed cid' }
      roots.push(c)
    }
  }
  const blocks = new CarBlocks(bytes)
  let pos = headerStart + headerLen
  const total = bytes.length
  while (pos < total) {
    // block length varint, inlined: this loop runs once per block
    let len = 0
    let mul = 1
    let i = 0
    for (; i < 8; i++) {
      if (pos >= total) return { ok: false, reason: 'decode', detail: 'block length' }
      const b = bytes[pos++]
      len += (b & 0x7f) * mul
      if ((b & 0x80) === 0) break
      mul *= 128
    }
    if (i === 8) return { ok: false, reason: 'decode', detail: 'block length' }
    const start = pos
    const end = start + len
    if (len < CID_LENGTH || end > total) return { ok: false, reason: 'decode', detail: 'block truncated' }
    const codec = bytes[start + 1]
    if (
      bytes[start] !== 0x01 ||
      (codec !== CODEC_DAG_CBOR && codec !== CODEC_RAW) ||
      bytes[start + 2] !== 0x12 ||
      bytes[start + 3] !== 0x20
    ) {
      return { ok: false, reason: 'decode', detail: 'block cid not blessed' }
    }
    const dataStart = start + CID_LENGTH
    if (verify && !sha256Matches(bytes, dataStart, end, bytes, start + 4)) {
      return { ok: false, reason: 'decode', detail: 'block cid does not match bytes' }
    }
    blocks.add(start, dataStart, end)
    pos = end
  }
  return { ok: true, car: { root: roots[0], roots, blocks } }
}

/** Block data for a CID, from CAR blocks or a plain BlockMap. */
export function getBlock(blocks: Blocks, cid: Uint8Array): Uint8Array | undefined {
  return blocks instanceof CarBlocks ? blocks.get(cid) : blocks.get(bytesKey(cid))
}
