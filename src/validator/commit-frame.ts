// Hand decoder for the overwhelmingly common frame: a #commit whose header and body are canonical
// DAG-CBOR, with only known body fields, ASCII strings and values of the expected types. It builds
// the CommitEvent directly from the bytes (CIDs and `blocks` stay views into the frame) instead of
// a generic object tree that schema.ts then re-checks. It only ever accepts frames that the generic
// path (frame.ts + schema.ts) accepts, with an identical result; anything else — unknown fields,
// non-canonical encodings, any value the schema would reject — returns null and the caller runs the
// generic path, which produces the drop reason and detail. (The one addition is `source`: when the
// frame is what the outbound encoder would write anyway, encode.ts copies it instead.)
import { asciiText, cidLinkEnd, cursor, readArg } from './cbor-fast.ts'
import { CID_LENGTH } from './cid.ts'
import { isDatetime, isDid, isRepoPath, isTid } from './syntax.ts'
import type { CommitEvent, RepoOp } from './schema.ts'

// {t: '#commit', op: 1}: 't' (1 byte) sorts before 'op' (2 bytes).
const HEADER = [0xa2, 0x61, 0x74, 0x67, 0x23, 0x63, 0x6f, 0x6d, 0x6d, 0x69, 0x74, 0x62, 0x6f, 0x70, 0x01]

// Known body keys in canonical order (length, then bytes); a key's index is its rank.
const KEYS = ['ops', 'rev', 'seq', 'repo', 'time', 'blobs', 'since', 'blocks', 'commit', 'rebase', 'tooBig', 'prevData']
const OPS = 0
const REV = 1
const SEQ = 2
const REPO = 3
const TIME = 4
const BLOBS = 5
const SINCE = 6
const BLOCKS = 7
const COMMIT = 8
const REBASE = 9
const TOOBIG = 10
const PREVDATA = 11
const ALL_BUT_PREVDATA = (1 << PREVDATA) - 1

/** Rank of the known key whose text item starts at b[pos], or -1; cursor.next = after it. */
function keyRank(b: Uint8Array, pos: number, end: number): number {
  if (pos >= end) return -1
  const n = b[pos] - 0x60
  if (n < 3 || n > 8 || pos + 1 + n > end) return -1
  outer: for (let k = 0; k < KEYS.length; k++) {
    const key = KEYS[k]
    if (key.length !== n) continue
    for (let i = 0; i < n; i++) if (b[pos + 1 + i] !== key.charCodeAt(i)) continue outer
    cursor.next = pos + 1 + n
    return k
  }
  return -1
}

/** Optional blessed CID link or null at b[pos]: [cid | null], or undefined when neither. */
function nullableCid(b: Uint8Array, pos: number, end: number): Uint8Array | null | undefined {
  if (pos < end && b[pos] === 0xf6) {
    cursor.next = pos + 1
    return null
  }
  const e = cidLinkEnd(b, pos, end)
  if (e < 0) return undefined
  cursor.next = e
  return b.subarray(e - CID_LENGTH, e)
}

const ACTIONS = ['create', 'update', 'delete'] as const

/** The action text item at b[pos] when it is one of ACTIONS (the interned constant), else null. */
function opAction(b: Uint8Array, pos: number, end: number): RepoOp['action'] | null {
  if (pos + 7 > end || b[pos] !== 0x66) return null
  outer: for (const a of ACTIONS) {
    for (let i = 0; i < 6; i++) if (b[pos + 1 + i] !== a.charCodeAt(i)) continue outer
    cursor.next = pos + 7
    return a
  }
  return null
}

/** Set by decodeOp when the op carried an explicit `prev: null` (the encoder omits it). */
let prevNull = false

function decodeOp(b: Uint8Array, pos: number, end: number, view: Buffer): RepoOp | null {
  // {cid, path, prev?, action}: the same four keys parseOp reads; nothing else
  if (pos >= end) return null
  const fields = b[pos]
  if (fields !== 0xa3 && fields !== 0xa4) return null
  pos++
  if (pos + 4 > end || b[pos] !== 0x63 || b[pos + 1] !== 0x63 || b[pos + 2] !== 0x69 || b[pos + 3] !== 0x64) return null
  const cid = nullableCid(b, pos + 4, end)
  if (cid === undefined) return null
  pos = cursor.next
  if (pos + 5 > end || b[pos] !== 0x64 || b[pos + 1] !== 0x70 || b[pos + 2] !== 0x61 || b[pos + 3] !== 0x74 || b[pos + 4] !== 0x68)
    return null
  const path = asciiText(b, pos + 5, end, view)
  if (path === null || !isRepoPath(path)) return null
  pos = cursor.next
  let prev: Uint8Array | undefined
  if (fields === 0xa4) {
    if (pos + 5 > end || b[pos] !== 0x64 || b[pos + 1] !== 0x70 || b[pos + 2] !== 0x72 || b[pos + 3] !== 0x65 || b[pos + 4] !== 0x76)
      return null
    const p = nullableCid(b, pos + 5, end)
    if (p === undefined) return null
    if (p === null) prevNull = true
    prev = p ?? undefined
    pos = cursor.next
  }
  if (pos + 7 > end || b[pos] !== 0x66 || b[pos + 1] !== 0x61 || b[pos + 2] !== 0x63 || b[pos + 3] !== 0x74) return null
  if (b[pos + 4] !== 0x69 || b[pos + 5] !== 0x6f || b[pos + 6] !== 0x6e) return null
  const action = opAction(b, pos + 7, end)
  if (action === null) return null
  return { action, path, cid, prev }
}

/** The #commit event of a frame in the common canonical shape, or null (use the generic path). */
export function decodeCommitFrameFast(b: Uint8Array): CommitEvent | null {
  const end = b.length
  if (end < HEADER.length + 1) return null
  for (let i = 0; i < HEADER.length; i++) if (b[i] !== HEADER[i]) return null
  const count = readArg(b, HEADER.length, end, 5)
  if (count < 7 || count > KEYS.length) return null
  let pos = cursor.next
  const view = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  let seq = -1
  let repo: string | null = null
  let commit: Uint8Array | null = null
  let rev: string | null = null
  let since: string | null = null
  let blocks: Uint8Array | null = null
  let ops: RepoOp[] | null = null
  let time: string | null = null
  let prevData: Uint8Array | null = null
  let seqStart = -1
  let seqEnd = -1
  let last = -1
  let present = 0
  prevNull = false
  for (let f = 0; f < count; f++) {
    const k = keyRank(b, pos, end)
    if (k <= last) return null // unknown key, duplicate or out of canonical order
    last = k
    present |= 1 << k
    pos = cursor.next
    switch (k) {
      case OPS: {
        const n = readArg(b, pos, end, 4)
        if (n < 0 || n > end - pos) return null
        pos = cursor.next
        ops = new Array(n)
        for (let i = 0; i < n; i++) {
          const op = decodeOp(b, pos, end, view)
          if (op === null) return null
          ops[i] = op
          pos = cursor.next
        }
        break
      }
      case REV:
        rev = asciiText(b, pos, end, view)
        if (rev === null || !isTid(rev)) return null
        pos = cursor.next
        break
      case SEQ:
        seqStart = pos
        seq = readArg(b, pos, end, 0)
        if (seq < 0) return null
        pos = cursor.next
        seqEnd = pos
        break
      case REPO:
        repo = asciiText(b, pos, end, view)
        if (repo === null || !isDid(repo)) return null
        pos = cursor.next
        break
      case TIME:
        time = asciiText(b, pos, end, view)
        if (time === null || !isDatetime(time)) return null
        pos = cursor.next
        break
      case BLOBS:
        if (pos >= end || b[pos] !== 0x80) return null
        pos++
        break
      case SINCE:
        if (pos < end && b[pos] === 0xf6) pos++
        else {
          since = asciiText(b, pos, end, view)
          if (since === null || !isTid(since)) return null
          pos = cursor.next
        }
        break
      case BLOCKS: {
        const n = readArg(b, pos, end, 2)
        if (n < 0 || cursor.next + n > end) return null
        blocks = b.subarray(cursor.next, cursor.next + n)
        pos = cursor.next + n
        break
      }
      case COMMIT: {
        const e = cidLinkEnd(b, pos, end)
        if (e < 0) return null
        commit = b.subarray(e - CID_LENGTH, e)
        pos = e
        break
      }
      case REBASE:
      case TOOBIG:
        if (pos >= end || b[pos] !== 0xf4) return null
        pos++
        break
      case PREVDATA: {
        const c = nullableCid(b, pos, end)
        if (c === undefined) return null
        prevData = c
        pos = cursor.next
        break
      }
      default:
        return null
    }
  }
  if (pos !== end || seq < 0 || repo === null || commit === null || rev === null || blocks === null || ops === null || time === null)
    return null
  // encodeCommitFrame writes every known key but prevData, which it writes only when non-null, and
  // an op's prev only when non-null; with the same set of keys, canonical encodings of the same
  // values are the same bytes.
  const verbatim =
    (present & ALL_BUT_PREVDATA) === ALL_BUT_PREVDATA && (prevData !== null || (present & (1 << PREVDATA)) === 0) && !prevNull
  return {
    type: '#commit',
    seq,
    repo,
    commit,
    rev,
    since,
    blocks,
    ops,
    time,
    prevData,
    tooBig: false,
    rebase: false,
    extra: null,
    source: verbatim ? { frame: b, seqStart, seqEnd } : undefined,
  }
}
