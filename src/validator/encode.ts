// Strict outbound encoding. Every lexicon-required field is written, `blocks` is passed through
// byte-for-byte and CIDs are re-emitted from their original bytes. `seq` is written as the one-byte
// integer 0 and its offset returned, so the sequencer thread can splice in the real seq later
// without re-encoding (spliceSeq in src/store/seq-splice.ts).
import { CborWriter, canonicalKeys } from './cbor-writer.ts'
import type { AccountEvent, CommitEvent, CommitSource, ExtraFields, IdentityEvent, RepoOp, SyncEvent } from './schema.ts'

export interface EncodedFrame {
  frame: Uint8Array
  /** offset of the 0x00 placeholder byte of `seq` */
  seqOffset: number
}

type FieldWriter = (w: CborWriter) => void

function messageHeader(t: string): Uint8Array {
  // {t, op: 1}: 't' sorts before 'op' (shorter key first).
  const w = new CborWriter(32)
  w.head(5, 2)
  w.str('t')
  w.str(t)
  w.str('op')
  w.int(1)
  return w.finish()
}

const HEADERS: Record<string, Uint8Array> = {
  '#commit': messageHeader('#commit'),
  '#sync': messageHeader('#sync'),
  '#identity': messageHeader('#identity'),
  '#account': messageHeader('#account'),
  '#info': messageHeader('#info'),
}

const SEQ = 'seq'

/**
 * Writes header + body map. Fields with undefined writers are omitted; `extra` (unknown upstream
 * fields) never overrides known ones.
 */
function encodeMessage(t: string, fields: Record<string, FieldWriter | undefined>, extra: ExtraFields, sizeHint: number): EncodedFrame {
  const header = HEADERS[t] ?? messageHeader(t)
  const all: Record<string, FieldWriter> = {}
  if (extra) {
    for (const k in extra) {
      const v = extra[k]
      if (v !== undefined) all[k] = (w) => w.value(v)
    }
  }
  for (const k in fields) {
    const f = fields[k]
    if (f) all[k] = f
    else delete all[k]
  }
  const keys = canonicalKeys(Object.keys(all))
  const w = new CborWriter(header.length + sizeHint + 64)
  w.raw(header)
  w.head(5, keys.length)
  let seqOffset = -1
  for (const k of keys) {
    w.str(k)
    if (k === SEQ && fields[SEQ]) {
      seqOffset = w.pos
      w.u8(0x00)
    } else {
      all[k](w)
    }
  }
  return { frame: w.finish(), seqOffset }
}

const seqPlaceholder: FieldWriter = () => {
  throw new Error('unreachable')
}

function writeOp(w: CborWriter, op: RepoOp): void {
  // canonical order: cid, path, prev, action
  w.head(5, op.prev === undefined ? 3 : 4)
  w.str('cid')
  if (op.cid === null) w.nil()
  else w.cid(op.cid)
  w.str('path')
  w.str(op.path)
  if (op.prev !== undefined) {
    w.str('prev')
    w.cid(op.prev)
  }
  w.str('action')
  w.str(op.action)
}

// #commit and #sync (nearly every frame) are written field by field in canonical key order into one
// reused buffer, without building closures or sorting keys per frame; the frame is then one exact
// copy out of it. Events carrying unknown upstream fields take the generic path above (their keys
// must be merged into the order). Frames too large for the scratch get a writer of their own, so
// one huge frame does not pin a huge buffer for the life of the worker.
const SCRATCH_BYTES = 64 * 1024
const scratch = new CborWriter(SCRATCH_BYTES)

function writerFor(estimate: number): CborWriter {
  if (estimate > SCRATCH_BYTES) return new CborWriter(estimate)
  // an underestimate (multi-byte UTF-8) may have grown it: keep the cap
  if (scratch.buf.length > 2 * SCRATCH_BYTES) scratch.buf = new Uint8Array(SCRATCH_BYTES)
  scratch.pos = 0
  return scratch
}

function encodeCommitDirect(evt: CommitEvent): EncodedFrame {
  const header = HEADERS['#commit']
  let estimate = header.length + evt.blocks.length + evt.repo.length + evt.time.length + 256
  for (const op of evt.ops) estimate += op.path.length + 120
  const w = writerFor(estimate)
  w.raw(header)
  // canonical order: ops rev seq | repo time | blobs since | blocks commit rebase tooBig | prevData
  w.head(5, evt.prevData === null ? 11 : 12)
  w.str('ops')
  w.head(4, evt.ops.length)
  for (const op of evt.ops) writeOp(w, op)
  w.str('rev')
  w.str(evt.rev)
  w.str('seq')
  const seqOffset = w.pos
  w.u8(0x00)
  w.str('repo')
  w.str(evt.repo)
  w.str('time')
  w.str(evt.time)
  w.str('blobs')
  w.head(4, 0) // deprecated; producers "should set it to an empty array"
  w.str('since')
  if (evt.since === null) w.nil()
  else w.str(evt.since)
  w.str('blocks')
  w.bytes(evt.blocks)
  w.str('commit')
  w.cid(evt.commit)
  w.str('rebase')
  w.bool(false)
  w.str('tooBig')
  w.bool(false)
  if (evt.prevData !== null) {
    w.str('prevData')
    w.cid(evt.prevData)
  }
  return { frame: w.buf.slice(0, w.pos), seqOffset }
}

function encodeSyncDirect(evt: SyncEvent): EncodedFrame {
  const header = HEADERS['#sync']
  const w = writerFor(header.length + evt.blocks.length + evt.did.length + evt.time.length + 128)
  w.raw(header)
  // canonical order: did rev seq | time | blocks
  w.head(5, 5)
  w.str('did')
  w.str(evt.did)
  w.str('rev')
  w.str(evt.rev)
  w.str('seq')
  const seqOffset = w.pos
  w.u8(0x00)
  w.str('time')
  w.str(evt.time)
  w.str('blocks')
  w.bytes(evt.blocks)
  return { frame: w.buf.slice(0, w.pos), seqOffset }
}

/** The source frame with its seq value replaced by the one-byte placeholder. */
function encodeCommitVerbatim(src: CommitSource): EncodedFrame {
  const { frame, seqStart, seqEnd } = src
  const out = new Uint8Array(frame.length - (seqEnd - seqStart) + 1)
  out.set(frame.subarray(0, seqStart), 0)
  out[seqStart] = 0x00
  out.set(frame.subarray(seqEnd), seqStart + 1)
  return { frame: out, seqOffset: seqStart }
}

export function encodeCommitFrame(evt: CommitEvent): EncodedFrame {
  if (evt.source !== undefined) return encodeCommitVerbatim(evt.source)
  if (evt.extra === null) return encodeCommitDirect(evt)
  return encodeMessage(
    '#commit',
    {
      seq: seqPlaceholder,
      rebase: (w) => w.bool(false),
      tooBig: (w) => w.bool(false),
      repo: (w) => w.str(evt.repo),
      commit: (w) => w.cid(evt.commit),
      rev: (w) => w.str(evt.rev),
      since: (w) => (evt.since === null ? w.nil() : w.str(evt.since)),
      blocks: (w) => w.bytes(evt.blocks),
      ops: (w) => {
        w.head(4, evt.ops.length)
        for (const op of evt.ops) writeOp(w, op)
      },
      // deprecated; producers "should set it to an empty array"
      blobs: (w) => w.head(4, 0),
      time: (w) => w.str(evt.time),
      prevData: evt.prevData === null ? undefined : (w) => w.cid(evt.prevData as Uint8Array),
    },
    evt.extra,
    evt.blocks.length + evt.ops.length * 120 + 256,
  )
}

export function encodeSyncFrame(evt: SyncEvent): EncodedFrame {
  if (evt.extra === null) return encodeSyncDirect(evt)
  return encodeMessage(
    '#sync',
    {
      seq: seqPlaceholder,
      did: (w) => w.str(evt.did),
      rev: (w) => w.str(evt.rev),
      blocks: (w) => w.bytes(evt.blocks),
      time: (w) => w.str(evt.time),
    },
    evt.extra,
    evt.blocks.length + 128,
  )
}

/** `handle: null` omits the field (relays may strip unverified handles). */
export function encodeIdentityFrame(evt: Pick<IdentityEvent, 'did' | 'time' | 'handle'> & { extra?: ExtraFields }): EncodedFrame {
  return encodeMessage(
    '#identity',
    {
      seq: seqPlaceholder,
      did: (w) => w.str(evt.did),
      time: (w) => w.str(evt.time),
      handle: evt.handle === null ? undefined : (w) => w.str(evt.handle as string),
    },
    evt.extra ?? null,
    128,
  )
}

/** The relay re-emits #account with its own combined status; `status: null` omits the field. */
export function encodeAccountFrame(evt: Pick<AccountEvent, 'did' | 'time' | 'active' | 'status'>): EncodedFrame {
  return encodeMessage(
    '#account',
    {
      seq: seqPlaceholder,
      did: (w) => w.str(evt.did),
      time: (w) => w.str(evt.time),
      active: (w) => w.bool(evt.active),
      status: evt.status === null ? undefined : (w) => w.str(evt.status as string),
    },
    null,
    128,
  )
}

export function encodeInfoFrame(name: string, message?: string): Uint8Array {
  return encodeMessage('#info', { name: (w) => w.str(name), message: message === undefined ? undefined : (w) => w.str(message) }, null, 64)
    .frame
}

export function encodeErrorFrame(error: string, message?: string): Uint8Array {
  const w = new CborWriter(64)
  w.head(5, 1)
  w.str('op')
  w.int(-1)
  w.head(5, message === undefined ? 1 : 2)
  w.str('error')
  w.str(error)
  if (message !== undefined) {
    w.str('message')
    w.str(message)
  }
  return w.finish()
}
