// The signed repo commit object {did, version: 3, data, rev, prev, sig}.
import { decode } from '@atcute/cbor';
import { CborWriter } from './cbor-writer.ts';
import { asBytes, asCid, isPlainMap } from './values.ts';
import { isDid, isTid } from './syntax.ts';

export interface CommitObject {
  did: string;
  version: 3;
  data: Uint8Array;
  rev: string;
  prev: Uint8Array | null;
  sig: Uint8Array;
}

export type CommitResult = { ok: true; commit: CommitObject } | { ok: false; detail: string };

/** Never throws. */
export function decodeCommit(block: Uint8Array): CommitResult {
  let v: unknown;
  try {
    v = decode(block);
  } catch (err) {
    return { ok: false, detail: `commit cbor: ${(err as Error).message}` };
  }
  if (!isPlainMap(v)) return { ok: false, detail: 'commit not a map' };
  if (v.version !== 3) return { ok: false, detail: 'commit version' };
  if (!isDid(v.did)) return { ok: false, detail: 'commit did' };
  if (!isTid(v.rev)) return { ok: false, detail: 'commit rev' };
  const data = asCid(v.data);
  if (data === null) return { ok: false, detail: 'commit data' };
  // `prev` must be present (virtually always null).
  if (!('prev' in v)) return { ok: false, detail: 'commit prev missing' };
  let prev: Uint8Array | null = null;
  if (v.prev !== null) {
    prev = asCid(v.prev);
    if (prev === null) return { ok: false, detail: 'commit prev' };
  }
  const sig = asBytes(v.sig);
  if (sig === null || sig.length === 0) return { ok: false, detail: 'commit sig' };
  return { ok: true, commit: { did: v.did, version: 3, data, rev: v.rev, prev, sig } };
}

/**
 * Bytes that were signed: canonical DAG-CBOR of the commit without `sig`. Like @atproto/repo (schema
 * parse) and indigo (typed struct), only the five known fields are covered; unknown fields are not.
 * Canonical key order: did, rev, data, prev, version.
 */
export function unsignedCommitBytes(c: CommitObject): Uint8Array {
  const w = new CborWriter(160);
  w.head(5, 5);
  w.str('did');
  w.str(c.did);
  w.str('rev');
  w.str(c.rev);
  w.str('data');
  w.cid(c.data);
  w.str('prev');
  if (c.prev === null) w.nil();
  else w.cid(c.prev);
  w.str('version');
  w.int(c.version);
  return w.finish();
}
