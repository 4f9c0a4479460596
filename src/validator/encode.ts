// Strict outbound encoding. Every lexicon-required field is written, `blocks` is passed through
// byte-for-byte and CIDs are re-emitted from their original bytes. `seq` is written as the one-byte
// integer 0 and its offset returned, so the sequencer thread can splice in the real seq later
// without re-encoding (spliceSeq).
import { CborWriter, canonicalKeys } from './cbor-writer.ts';
import type { AccountEvent, CommitEvent, ExtraFields, IdentityEvent, RepoOp, SyncEvent } from './schema.ts';

export interface EncodedFrame {
  frame: Uint8Array;
  /** offset of the 0x00 placeholder byte of `seq` */
  seqOffset: number;
}

type FieldWriter = (w: CborWriter) => void;

function messageHeader(t: string): Uint8Array {
  // {t, op: 1}: 't' sorts before 'op' (shorter key first).
  const w = new CborWriter(32);
  w.head(5, 2);
  w.str('t');
  w.str(t);
  w.str('op');
  w.int(1);
  return w.finish();
}

const HEADERS: Record<string, Uint8Array> = {
  '#commit': messageHeader('#commit'),
  '#sync': messageHeader('#sync'),
  '#identity': messageHeader('#identity'),
  '#account': messageHeader('#account'),
  '#info': messageHeader('#info'),
};

const SEQ = 'seq';

/**
 * Writes header + body map. Fields with undefined writers are omitted; `extra` (unknown upstream
 * fields) never overrides known ones.
 */
function encodeMessage(t: string, fields: Record<string, FieldWriter | undefined>, extra: ExtraFields, sizeHint: number): EncodedFrame {
  const header = HEADERS[t] ?? messageHeader(t);
  const all: Record<string, FieldWriter> = {};
  if (extra) {
    for (const k in extra) {
      const v = extra[k];
      if (v !== undefined) all[k] = (w) => w.value(v);
    }
  }
  for (const k in fields) {
    const f = fields[k];
    if (f) all[k] = f;
    else delete all[k];
  }
  const keys = canonicalKeys(Object.keys(all));
  const w = new CborWriter(header.length + sizeHint + 64);
  w.raw(header);
  w.head(5, keys.length);
  let seqOffset = -1;
  for (const k of keys) {
    w.str(k);
    if (k === SEQ && fields[SEQ]) {
      seqOffset = w.pos;
      w.u8(0x00);
    } else {
      all[k](w);
    }
  }
  return { frame: w.finish(), seqOffset };
}

const seqPlaceholder: FieldWriter = () => {
  throw new Error('unreachable');
};

function writeOp(w: CborWriter, op: RepoOp): void {
  // canonical order: cid, path, prev, action
  w.head(5, op.prev === undefined ? 3 : 4);
  w.str('cid');
  if (op.cid === null) w.nil();
  else w.cid(op.cid);
  w.str('path');
  w.str(op.path);
  if (op.prev !== undefined) {
    w.str('prev');
    w.cid(op.prev);
  }
  w.str('action');
  w.str(op.action);
}

export function encodeCommitFrame(evt: CommitEvent): EncodedFrame {
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
        w.head(4, evt.ops.length);
        for (const op of evt.ops) writeOp(w, op);
      },
      // deprecated; producers "should set it to an empty array"
      blobs: (w) => w.head(4, 0),
      time: (w) => w.str(evt.time),
      prevData: evt.prevData === null ? undefined : (w) => w.cid(evt.prevData as Uint8Array),
    },
    evt.extra,
    evt.blocks.length + evt.ops.length * 120 + 256,
  );
}

export function encodeSyncFrame(evt: SyncEvent): EncodedFrame {
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
  );
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
  );
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
  );
}

export function encodeInfoFrame(name: string, message?: string): Uint8Array {
  return encodeMessage(
    '#info',
    { name: (w) => w.str(name), message: message === undefined ? undefined : (w) => w.str(message) },
    null,
    64,
  ).frame;
}

export function encodeErrorFrame(error: string, message?: string): Uint8Array {
  const w = new CborWriter(64);
  w.head(5, 1);
  w.str('op');
  w.int(-1);
  w.head(5, message === undefined ? 1 : 2);
  w.str('error');
  w.str(error);
  if (message !== undefined) {
    w.str('message');
    w.str(message);
  }
  return w.finish();
}

function uintHeadLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

/** Replace the 0x00 seq placeholder at `seqOffset` with the minimal CBOR encoding of `seq`. */
export function spliceSeq(frame: Uint8Array, seqOffset: number, seq: number): Uint8Array {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError('seq must be a non-negative safe integer');
  if (frame[seqOffset] !== 0x00) throw new RangeError('seqOffset does not point at a seq placeholder');
  const n = uintHeadLength(seq);
  const out = new Uint8Array(frame.length - 1 + n);
  out.set(frame.subarray(0, seqOffset), 0);
  const w = new CborWriter(9);
  w.head(0, seq);
  out.set(w.buf.subarray(0, n), seqOffset);
  out.set(frame.subarray(seqOffset + 1), seqOffset + n);
  return out;
}
