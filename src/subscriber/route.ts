// Cheap routing decode of one upstream subscribeRepos frame, on the main thread.
//
// A frame is two concatenated DRISL-CBOR values: header {op, t?} and body map. To route a frame
// to its DID's worker and track cursors we need only op, t, seq and the repo/did string; the full
// decode (blocks, ops, CIDs, canonical-form checks) happens in the worker. So we walk the CBOR
// structure and *skip* every other value: a byte string (the up-to-2 MB `blocks` CAR) is skipped
// by advancing an offset, never copied or decoded. Cost is proportional to the number of CBOR
// items outside byte strings (a commit has a few hundred at most), not to the frame size.
//
// Hostile input: nothing here throws, recurses, or allocates in proportion to a declared length.
// Nesting is handled with a single "items still to skip" counter instead of a stack, and that
// counter is bounded by the remaining bytes (every item needs at least one byte), so a header
// claiming 2^64 elements fails immediately as truncated.
//
// What this does NOT check (the worker's strict decoder does): canonical integer/length encoding,
// key order, UTF-8 validity of skipped strings, CID bytes. It does reject what would make the
// worker and the router disagree about which DID a frame belongs to: duplicate routing keys.

export type EventType = '#commit' | '#sync' | '#identity' | '#account'

export interface RoutedEvent {
  kind: 'event'
  t: EventType
  seq: number
  /** `repo` for #commit, `did` for the others */
  did: string
  /**
   * The event's `time` string as sent (not parsed or validated; null when absent or not a short
   * string). Used only for lag metrics, so it is kept as text and parsed lazily.
   */
  time: string | null
}

/** `#info` message (e.g. OutdatedCursor); upstream seq is not part of it. */
export interface RoutedInfo {
  kind: 'info'
  name: string
  message: string | null
}

/** op -1 error frame (e.g. FutureCursor, ConsumerTooSlow); the upstream closes afterwards. */
export interface RoutedError {
  kind: 'error'
  error: string
  message: string | null
}

/** Unknown op or `t`: the spec says ignore the frame (it was still well-formed). */
export interface RoutedUnknown {
  kind: 'unknown'
  op: number
  t: string | null
  seq: number | null
}

export type RouteFailureReason =
  // fatal: invalid framing / CBOR → the spec says drop the connection
  | 'truncated'
  | 'trailing-bytes'
  | 'header-not-map'
  | 'body-not-map'
  | 'indefinite-length'
  | 'reserved-encoding'
  | 'unsupported-tag'
  | 'unsupported-simple'
  | 'non-string-key'
  | 'duplicate-key'
  | 'missing-op'
  | 'bad-op'
  | 'bad-t'
  // non-fatal: well-formed CBOR but the payload lacks what routing needs → drop and count
  | 'missing-seq'
  | 'bad-seq'
  | 'missing-did'
  | 'bad-did'
  | 'missing-error'
  | 'missing-name'

export interface RouteFailure {
  kind: 'invalid'
  /** true: framing/encoding error, close the connection; false: drop this frame only */
  fatal: boolean
  reason: RouteFailureReason
  message: string
}

export type RouteResult = RoutedEvent | RoutedInfo | RoutedError | RoutedUnknown | RouteFailure

// Longest strings we materialise. DIDs are ≤ 2 KB by spec; `t` is a short fragment; messages are
// informational and are truncated rather than rejected.
const MAX_DID_BYTES = 2048
const MAX_T_BYTES = 64
const MAX_TEXT_BYTES = 1024
const MAX_SAFE = Number.MAX_SAFE_INTEGER

const utf8 = new TextDecoder('utf-8', { fatal: true })
const utf8Lenient = new TextDecoder('utf-8', { fatal: false })

function failure(reason: RouteFailureReason, fatal: boolean, message: string): RouteFailure {
  return { kind: 'invalid', fatal, reason, message }
}

// Key byte patterns compared in place (no string allocation for keys we don't care about).
const K_OP = [0x6f, 0x70]
const K_T = [0x74]
const K_SEQ = [0x73, 0x65, 0x71]
const K_REPO = [0x72, 0x65, 0x70, 0x6f]
const K_DID = [0x64, 0x69, 0x64]
const K_NAME = [0x6e, 0x61, 0x6d, 0x65]
const K_MESSAGE = [0x6d, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65]
const K_ERROR = [0x65, 0x72, 0x72, 0x6f, 0x72]
const K_TIME = [0x74, 0x69, 0x6d, 0x65]
const MAX_TIME_BYTES = 64

/** Minimal forward-only CBOR reader. On error it records a reason and every method returns false. */
class Reader {
  readonly b: Uint8Array
  p = 0
  major = 0
  /** argument of the last head; may be > 2^53 (then `big` is set) */
  arg = 0
  big = false
  err: RouteFailureReason | null = null

  constructor(b: Uint8Array) {
    this.b = b
  }

  fail(reason: RouteFailureReason): false {
    if (this.err === null) this.err = reason
    return false
  }

  remaining(): number {
    return this.b.length - this.p
  }

  /** Read one item head (major type + argument). Simple values/floats leave arg = 0. */
  head(): boolean {
    const b = this.b
    if (this.p >= b.length) return this.fail('truncated')
    const ib = b[this.p++]!
    const major = ib >> 5
    const info = ib & 0x1f
    this.major = major
    this.big = false
    if (major === 7) {
      this.arg = 0
      // false/true/null, or a float64 (DAG-CBOR's only float width) which we just skip.
      if (info === 20 || info === 21 || info === 22) return true
      if (info === 27) {
        if (this.remaining() < 8) return this.fail('truncated')
        this.p += 8
        return true
      }
      if (info === 31) return this.fail('indefinite-length')
      return this.fail('unsupported-simple')
    }
    if (info < 24) {
      this.arg = info
      return true
    }
    switch (info) {
      case 24:
        if (this.remaining() < 1) return this.fail('truncated')
        this.arg = b[this.p]!
        this.p += 1
        return true
      case 25:
        if (this.remaining() < 2) return this.fail('truncated')
        this.arg = (b[this.p]! << 8) | b[this.p + 1]!
        this.p += 2
        return true
      case 26:
        if (this.remaining() < 4) return this.fail('truncated')
        this.arg = ((b[this.p]! << 24) >>> 0) + ((b[this.p + 1]! << 16) | (b[this.p + 2]! << 8) | b[this.p + 3]!)
        this.p += 4
        return true
      case 27: {
        if (this.remaining() < 8) return this.fail('truncated')
        const p = this.p
        const hi = ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!)
        const lo = ((b[p + 4]! << 24) >>> 0) + ((b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!)
        this.p += 8
        this.big = hi > 0x1fffff
        this.arg = hi * 0x1_0000_0000 + lo
        return true
      }
      case 31:
        return this.fail('indefinite-length')
      default:
        return this.fail('reserved-encoding')
    }
  }

  /**
   * Skip `count` complete data items. Iterative: nesting only adds to a counter. Hot loop (a
   * 200-op commit has ~2,000 items), so it works on locals and inlines the common heads; rare or
   * erroneous heads fall back to `head()` for the exact reason.
   */
  skip(count: number): boolean {
    const b = this.b
    const len = b.length
    let p = this.p
    let pending = count
    while (pending > 0) {
      // Every pending item needs at least one byte: this bounds work and rejects absurd counts.
      if (pending > len - p) {
        this.p = p
        return this.fail('truncated')
      }
      pending--
      const ib = b[p]!
      const major = ib >> 5
      const info = ib & 0x1f
      let arg: number
      if (info < 24 && major !== 7) {
        arg = info
        p += 1
      } else if (info === 24 && major !== 7) {
        if (p + 2 > len) {
          this.p = p + 1
          return this.fail('truncated')
        }
        arg = b[p + 1]!
        p += 2
      } else {
        this.p = p
        if (!this.head()) return false
        p = this.p
        // simple values, floats and integers are fully consumed by head()
        if (major === 7 || major === 0 || major === 1) continue
        // a length ≥ 2^53 can never fit in the frame; a tag that large is not 42
        if (this.big) return this.fail(major === 6 ? 'unsupported-tag' : 'truncated')
        arg = this.arg
      }
      switch (major) {
        case 2:
        case 3:
          if (arg > len - p) {
            this.p = p
            return this.fail('truncated')
          }
          p += arg
          break
        case 4:
          pending += arg
          break
        case 5:
          pending += arg * 2
          break
        case 6:
          // DAG-CBOR allows exactly one tag: 42 (CID link).
          if (arg !== 42) {
            this.p = p
            return this.fail('unsupported-tag')
          }
          pending += 1
          break
      }
    }
    this.p = p
    return true
  }

  /** Read a map head; returns the entry count or -1. */
  mapHead(notMap: RouteFailureReason): number {
    if (!this.head()) return -1
    if (this.major !== 5) {
      this.fail(notMap)
      return -1
    }
    if (this.big || this.arg * 2 > this.remaining()) {
      this.fail('truncated')
      return -1
    }
    return this.arg
  }

  /** Read a text-string key; leaves its bytes at [keyStart, keyStart+keyLen). */
  keyStart = 0
  keyLen = 0
  key(): boolean {
    if (!this.head()) return false
    if (this.major !== 3) return this.fail('non-string-key')
    if (this.big || this.arg > this.remaining()) return this.fail('truncated')
    this.keyStart = this.p
    this.keyLen = this.arg
    this.p += this.arg
    return true
  }

  keyIs(k: readonly number[]): boolean {
    if (this.keyLen !== k.length) return false
    const b = this.b
    const s = this.keyStart
    for (let i = 0; i < k.length; i++) if (b[s + i] !== k[i]) return false
    return true
  }
}

/** Decode a text value if it is one; `null` when the value is some other type (it is then skipped). */
function readTextValue(r: Reader, maxBytes: number, truncate: boolean): string | null | false {
  const start = r.p
  if (!r.head()) return false
  if (r.major !== 3) {
    r.p = start
    return r.skip(1) ? null : false
  }
  if (r.big || r.arg > r.remaining()) return r.fail('truncated')
  const len = r.arg
  const s = r.p
  r.p += len
  if (len > maxBytes && !truncate) return null
  const n = Math.min(len, maxBytes)
  // TextDecoder measured faster than String.fromCharCode tricks even for 30-byte DIDs.
  if (truncate) return utf8Lenient.decode(r.b.subarray(s, s + n))
  try {
    return utf8.decode(r.b.subarray(s, s + n))
  } catch {
    return null
  }
}

// Known header types are matched in place and returned as constants: no per-frame string.
const KNOWN_T: ReadonlyArray<readonly [string, Uint8Array]> = ['#commit', '#sync', '#identity', '#account', '#info'].map(
  (t) => [t, new TextEncoder().encode(t)] as const,
)

function readTypeValue(r: Reader): string | null | false {
  const start = r.p
  if (!r.head()) return false
  if (r.major === 3 && !r.big && r.arg <= r.remaining()) {
    const len = r.arg
    const p = r.p
    for (const [name, bytes] of KNOWN_T) {
      if (bytes.length !== len) continue
      let eq = true
      for (let i = 0; i < len; i++) {
        if (r.b[p + i] !== bytes[i]) {
          eq = false
          break
        }
      }
      if (eq) {
        r.p = p + len
        return name
      }
    }
  }
  r.p = start
  return readTextValue(r, MAX_T_BYTES, false)
}

/** Read an unsigned integer value; `null` for any other type (skipped), false on framing error. */
function readUintValue(r: Reader): number | null | false {
  const start = r.p
  if (!r.head()) return false
  if (r.major === 0 && !r.big && r.arg <= MAX_SAFE) return r.arg
  r.p = start
  return r.skip(1) ? null : false
}

function fatalFrom(r: Reader): RouteFailure {
  const reason = r.err ?? 'truncated'
  return failure(reason, true, `invalid frame: ${reason} at byte ${r.p}`)
}

const EVENT_TYPES: ReadonlySet<string> = new Set(['#commit', '#sync', '#identity', '#account'])

/**
 * Route one binary WebSocket message. Never throws. `kind: 'invalid'` with `fatal: true` means the
 * connection must be dropped (spec: invalid framing is a hard error).
 */
export function routeFrame(frame: Uint8Array): RouteResult {
  const r = new Reader(frame)

  // ---- header
  const hn = r.mapHead('header-not-map')
  if (hn < 0) return fatalFrom(r)
  let op: number | null = null
  let t: string | null = null
  let tSeen = false
  for (let i = 0; i < hn; i++) {
    if (!r.key()) return fatalFrom(r)
    if (r.keyIs(K_OP)) {
      if (op !== null) return failure('duplicate-key', true, 'header has duplicate "op"')
      if (!r.head()) return fatalFrom(r)
      if ((r.major !== 0 && r.major !== 1) || r.big) return failure('bad-op', true, 'header "op" is not an integer')
      op = r.major === 0 ? r.arg : -1 - r.arg
    } else if (r.keyIs(K_T)) {
      if (tSeen) return failure('duplicate-key', true, 'header has duplicate "t"')
      tSeen = true
      const v = readTypeValue(r)
      if (v === false) return fatalFrom(r)
      if (v === null) return failure('bad-t', true, 'header "t" is not a short string')
      t = v
    } else if (!r.skip(1)) {
      return fatalFrom(r)
    }
  }
  if (op === null) return failure('missing-op', true, 'header has no "op"')

  // ---- body: which fields matter depends on the header
  const isEvent = op === 1 && t !== null && EVENT_TYPES.has(t)
  const isInfo = op === 1 && t === '#info'
  const isError = op === -1
  const didKey = t === '#commit' ? K_REPO : K_DID

  const bn = r.mapHead('body-not-map')
  if (bn < 0) return fatalFrom(r)
  let seq: number | null = null
  let seqBad = false
  let seqSeen = false
  let did: string | null = null
  let didBad = false
  let didSeen = false
  let s1: string | null = null // info name / error error
  let s1Seen = false
  let s2: string | null = null // message
  let s2Seen = false
  let time: string | null = null
  let timeSeen = false
  const k1 = isInfo ? K_NAME : K_ERROR

  for (let i = 0; i < bn; i++) {
    if (!r.key()) return fatalFrom(r)
    if (r.keyIs(K_SEQ) && (isEvent || op === 1)) {
      if (seqSeen) return failure('duplicate-key', true, 'body has duplicate "seq"')
      seqSeen = true
      const v = readUintValue(r)
      if (v === false) return fatalFrom(r)
      if (v === null || v < 1) seqBad = true
      else seq = v
    } else if (isEvent && r.keyIs(didKey)) {
      if (didSeen) return failure('duplicate-key', true, `body has duplicate "${t === '#commit' ? 'repo' : 'did'}"`)
      didSeen = true
      const v = readTextValue(r, MAX_DID_BYTES, false)
      if (v === false) return fatalFrom(r)
      if (v === null || !v.startsWith('did:')) didBad = true
      else did = v
    } else if (isEvent && !timeSeen && r.keyIs(K_TIME)) {
      // A duplicate `time` is left for the worker's strict decoder; routing ignores it.
      timeSeen = true
      const v = readTextValue(r, MAX_TIME_BYTES, false)
      if (v === false) return fatalFrom(r)
      time = v
    } else if ((isInfo || isError) && r.keyIs(k1)) {
      if (s1Seen) return failure('duplicate-key', true, 'body has a duplicate key')
      s1Seen = true
      const v = readTextValue(r, MAX_TEXT_BYTES, true)
      if (v === false) return fatalFrom(r)
      s1 = v
    } else if ((isInfo || isError) && r.keyIs(K_MESSAGE)) {
      if (s2Seen) return failure('duplicate-key', true, 'body has duplicate "message"')
      s2Seen = true
      const v = readTextValue(r, MAX_TEXT_BYTES, true)
      if (v === false) return fatalFrom(r)
      s2 = v
    } else if (!r.skip(1)) {
      return fatalFrom(r)
    }
  }
  if (r.p !== frame.length) return failure('trailing-bytes', true, `invalid frame: ${frame.length - r.p} bytes after the body`)

  if (isEvent) {
    if (seqBad) return failure('bad-seq', false, `${t} "seq" is not a positive safe integer`)
    if (seq === null) return failure('missing-seq', false, `${t} has no "seq"`)
    const field = t === '#commit' ? 'repo' : 'did'
    if (didBad) return failure('bad-did', false, `${t} "${field}" is not a DID string`)
    if (did === null) return failure('missing-did', false, `${t} has no "${field}"`)
    return { kind: 'event', t: t as EventType, seq, did, time }
  }
  if (isInfo) {
    if (s1 === null) return failure('missing-name', false, '#info has no "name"')
    return { kind: 'info', name: s1, message: s2 }
  }
  if (isError) {
    if (s1 === null) return failure('missing-error', false, 'error frame has no "error"')
    return { kind: 'error', error: s1, message: s2 }
  }
  return { kind: 'unknown', op, t, seq }
}
