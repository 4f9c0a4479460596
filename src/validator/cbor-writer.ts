// A minimal canonical DAG-CBOR (DRISL) writer. We need our own (rather than a library encoder) so
// the outbound encoder can know the byte offset of `seq`, and so MST nodes / unsigned commits can be
// encoded without building intermediate objects.
import { BytesWrapper } from '@atcute/cbor'
import { CidLinkWrapper } from '@atcute/cid'

export class CborWriter {
  buf: Uint8Array
  pos = 0

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial)
  }

  ensure(n: number): void {
    const need = this.pos + n
    if (need <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  u8(b: number): void {
    this.ensure(1)
    this.buf[this.pos++] = b
  }

  /** Major type + minimal-length argument. */
  head(major: number, n: number): void {
    const m = major << 5
    this.ensure(9)
    const buf = this.buf
    if (n < 24) {
      buf[this.pos++] = m | n
    } else if (n < 0x100) {
      buf[this.pos++] = m | 24
      buf[this.pos++] = n
    } else if (n < 0x10000) {
      buf[this.pos++] = m | 25
      buf[this.pos++] = n >>> 8
      buf[this.pos++] = n & 0xff
    } else if (n < 0x100000000) {
      buf[this.pos++] = m | 26
      buf[this.pos++] = n >>> 24
      buf[this.pos++] = (n >>> 16) & 0xff
      buf[this.pos++] = (n >>> 8) & 0xff
      buf[this.pos++] = n & 0xff
    } else {
      const hi = Math.floor(n / 0x100000000)
      const lo = n >>> 0
      buf[this.pos++] = m | 27
      buf[this.pos++] = hi >>> 24
      buf[this.pos++] = (hi >>> 16) & 0xff
      buf[this.pos++] = (hi >>> 8) & 0xff
      buf[this.pos++] = hi & 0xff
      buf[this.pos++] = lo >>> 24
      buf[this.pos++] = (lo >>> 16) & 0xff
      buf[this.pos++] = (lo >>> 8) & 0xff
      buf[this.pos++] = lo & 0xff
    }
  }

  int(n: number): void {
    if (n >= 0) this.head(0, n)
    else this.head(1, -1 - n)
  }

  float(n: number): void {
    this.ensure(9)
    this.buf[this.pos++] = 0xfb
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat64(this.pos, n)
    this.pos += 8
  }

  str(s: string): void {
    const len = s.length
    let ascii = true
    for (let i = 0; i < len; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false
        break
      }
    }
    if (ascii) {
      this.head(3, len)
      this.ensure(len)
      const buf = this.buf
      let p = this.pos
      for (let i = 0; i < len; i++) buf[p++] = s.charCodeAt(i)
      this.pos = p
    } else {
      const enc = Buffer.from(s, 'utf8')
      this.head(3, enc.length)
      this.raw(enc)
    }
  }

  bytes(b: Uint8Array): void {
    this.head(2, b.length)
    this.raw(b)
  }

  /** CID link: tag 42 over bytes with a leading 0x00. `cid` is the raw binary CID. */
  cid(cid: Uint8Array): void {
    this.ensure(3)
    this.buf[this.pos++] = 0xd8
    this.buf[this.pos++] = 42
    this.head(2, cid.length + 1)
    this.u8(0)
    this.raw(cid)
  }

  nil(): void {
    this.u8(0xf6)
  }

  bool(v: boolean): void {
    this.u8(v ? 0xf5 : 0xf4)
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /** Generic value as produced by @atcute/cbor's decoder (used for pass-through unknown fields). */
  value(v: unknown): void {
    if (v === null) return this.nil()
    switch (typeof v) {
      case 'boolean':
        return this.bool(v)
      case 'number':
        if (Number.isSafeInteger(v)) return this.int(v)
        if (!Number.isFinite(v)) throw new TypeError('non-finite number')
        return this.float(v)
      case 'string':
        return this.str(v)
      case 'object':
        break
      default:
        throw new TypeError(`cannot encode ${typeof v}`)
    }
    if (v instanceof CidLinkWrapper) return this.cid(v.bytes)
    if (v instanceof BytesWrapper) return this.bytes(v.buf)
    if (v instanceof Uint8Array) return this.bytes(v)
    if (Array.isArray(v)) {
      this.head(4, v.length)
      for (const item of v) this.value(item)
      return
    }
    const obj = v as Record<string, unknown>
    const keys = canonicalKeys(Object.keys(obj).filter((k) => obj[k] !== undefined))
    this.head(5, keys.length)
    for (const k of keys) {
      this.str(k)
      this.value(obj[k])
    }
  }

  /** View over the internal buffer (no copy); the writer must not be reused afterwards. */
  finishView(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos)
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false
  return true
}

/** DAG-CBOR map key order: shorter UTF-8 encoding first, then bytewise. */
export function compareKeys(a: string, b: string): number {
  if (isAscii(a) && isAscii(b)) {
    if (a.length !== b.length) return a.length - b.length
    return a < b ? -1 : a > b ? 1 : 0
  }
  const ab = Buffer.from(a, 'utf8')
  const bb = Buffer.from(b, 'utf8')
  if (ab.length !== bb.length) return ab.length - bb.length
  return Buffer.compare(ab, bb)
}

export function canonicalKeys(keys: string[]): string[] {
  return keys.sort(compareKeys)
}

export function encodeValue(v: unknown): Uint8Array {
  const w = new CborWriter()
  w.value(v)
  return w.finish()
}
