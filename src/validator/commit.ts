// The signed repo commit object {did, version: 3, data, rev, prev, sig}.
import { decode } from '@atcute/cbor'
import { CborWriter } from './cbor-writer.ts'
import { asBytes, asCid, isPlainMap } from './values.ts'
import { isDid, isTid } from './syntax.ts'
import { asciiText, cidLinkEnd, cursor, keyAt, readArg } from './cbor-fast.ts'
import { CID_LENGTH } from './cid.ts'

export interface CommitObject {
  did: string
  version: 3
  data: Uint8Array
  rev: string
  prev: Uint8Array | null
  sig: Uint8Array
}

export type CommitResult =
  | {
      ok: true
      commit: CommitObject
      /** unsignedCommitBytes(commit), when the decoder could cut it out of the block (else absent) */
      unsigned?: Uint8Array
    }
  | { ok: false; detail: string }

/**
 * The canonical layout {did, rev, sig, data, prev, version: 3} (keys in DAG-CBOR order, ASCII did
 * and rev, non-empty sig) read by hand. Then the unsigned bytes are the block minus its `sig` entry,
 * with the map head one smaller: exactly what unsignedCommitBytes writes. Returns null for any other
 * shape (the generic path decides).
 */
function decodeCommitFast(b: Uint8Array): CommitResult | null {
  const end = b.length
  if (end < 1 || b[0] !== 0xa6 || !keyAt(b, 1, end, 'did')) return null
  const did = asciiText(b, 5, end)
  if (did === null) return null
  let pos = cursor.next
  if (!keyAt(b, pos, end, 'rev')) return null
  const rev = asciiText(b, pos + 4, end)
  if (rev === null) return null
  const sigKey = cursor.next
  if (!keyAt(b, sigKey, end, 'sig')) return null
  const sigLen = readArg(b, sigKey + 4, end, 2)
  if (sigLen <= 0) return null
  const sigStart = cursor.next
  const sigEnd = sigStart + sigLen
  if (!keyAt(b, sigEnd, end, 'data')) return null
  const dataEnd = cidLinkEnd(b, sigEnd + 5, end)
  if (dataEnd < 0 || !keyAt(b, dataEnd, end, 'prev')) return null
  pos = dataEnd + 5
  let prev: Uint8Array | null = null
  if (b[pos] === 0xf6) pos++
  else {
    const prevEnd = cidLinkEnd(b, pos, end)
    if (prevEnd < 0) return null
    prev = b.subarray(prevEnd - CID_LENGTH, prevEnd)
    pos = prevEnd
  }
  if (!keyAt(b, pos, end, 'version') || pos + 9 !== end || b[pos + 8] !== 0x03) return null
  // same checks, same order and details as the generic path below
  if (!isDid(did)) return { ok: false, detail: 'commit did' }
  if (!isTid(rev)) return { ok: false, detail: 'commit rev' }
  const unsigned = new Uint8Array(end - (sigEnd - sigKey))
  unsigned.set(b.subarray(0, sigKey), 0)
  unsigned[0] = 0xa5
  unsigned.set(b.subarray(sigEnd), sigKey)
  return {
    ok: true,
    commit: { did, version: 3, data: b.subarray(dataEnd - CID_LENGTH, dataEnd), rev, prev, sig: b.subarray(sigStart, sigEnd) },
    unsigned,
  }
}

/** Never throws. */
export function decodeCommit(block: Uint8Array): CommitResult {
  const fast = decodeCommitFast(block)
  if (fast !== null) return fast
  let v: unknown
  try {
    v = decode(block)
  } catch (err) {
    return { ok: false, detail: `commit cbor: ${(err as Error).message}` }
  }
  if (!isPlainMap(v)) return { ok: false, detail: 'commit not a map' }
  if (v.version !== 3) return { ok: false, detail: 'commit version' }
  if (!isDid(v.did)) return { ok: false, detail: 'commit did' }
  if (!isTid(v.rev)) return { ok: false, detail: 'commit rev' }
  const data = asCid(v.data)
  if (data === null) return { ok: false, detail: 'commit data' }
  // `prev` must be present (virtually always null).
  if (!('prev' in v)) return { ok: false, detail: 'commit prev missing' }
  let prev: Uint8Array | null = null
  if (v.prev !== null) {
    prev = asCid(v.prev)
    if (prev === null) return { ok: false, detail: 'commit prev' }
  }
  const sig = asBytes(v.sig)
  if (sig === null || sig.length === 0) return { ok: false, detail: 'commit sig' }
  return { ok: true, commit: { did: v.did, version: 3, data, rev: v.rev, prev, sig } }
}

/**
 * Bytes that were signed: canonical DAG-CBOR of the commit without `sig`. Like @atproto/repo (schema
 * parse) and indigo (typed struct), only the five known fields are covered; unknown fields are not.
 * Canonical key order: did, rev, data, prev, version.
 */
export function unsignedCommitBytes(c: CommitObject): Uint8Array {
  const w = new CborWriter(160)
  w.head(5, 5)
  w.str('did')
  w.str(c.did)
  w.str('rev')
  w.str(c.rev)
  w.str('data')
  w.cid(c.data)
  w.str('prev')
  if (c.prev === null) w.nil()
  else w.cid(c.prev)
  w.str('version')
  w.int(c.version)
  return w.finish()
}
