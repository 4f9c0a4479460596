// CAR v1 parsing for firehose `blocks` with per-block CID verification. Only blessed CIDs (36 bytes)
// are accepted, so the block loop is a plain varint + fixed-size CID walk.
import { decode } from '@atcute/cbor';
import { bytesEqual, bytesKey, sha256 } from './bytes.ts';
import { asCid, isPlainMap } from './values.ts';
import { CID_LENGTH, CODEC_DAG_CBOR, CODEC_RAW } from './cid.ts';

export type BlockMap = Map<string, Uint8Array>;

export interface ParsedCar {
  /** first header root */
  root: Uint8Array;
  roots: Uint8Array[];
  /** key: bytesKey(cid) */
  blocks: BlockMap;
}

export type CarResult = { ok: true; car: ParsedCar } | { ok: false; reason: 'decode' | 'structure'; detail: string };

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] | null {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (pos >= buf.length) return null;
    const b = buf[pos++];
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [value, pos];
    mul *= 128;
  }
  return null;
}

/** Never throws. `verify: false` skips hashing (tests/bench only). */
export function parseCar(bytes: Uint8Array, verify = true): CarResult {
  const h = readVarint(bytes, 0);
  if (h === null) return { ok: false, reason: 'decode', detail: 'car header length' };
  const [headerLen, headerStart] = h;
  if (headerLen === 0 || headerStart + headerLen > bytes.length) return { ok: false, reason: 'decode', detail: 'car header truncated' };
  let header: unknown;
  try {
    header = decode(bytes.subarray(headerStart, headerStart + headerLen));
  } catch (err) {
    return { ok: false, reason: 'decode', detail: `car header: ${(err as Error).message}` };
  }
  if (!isPlainMap(header) || header.version !== 1 || !Array.isArray(header.roots) || header.roots.length === 0) {
    return { ok: false, reason: 'structure', detail: 'car header invalid' };
  }
  const roots: Uint8Array[] = [];
  for (const r of header.roots) {
    const c = asCid(r);
    if (c === null) return { ok: false, reason: 'structure', detail: 'car root not a blessed cid' };
    roots.push(c);
  }
  const blocks: BlockMap = new Map();
  let pos = headerStart + headerLen;
  while (pos < bytes.length) {
    const v = readVarint(bytes, pos);
    if (v === null) return { ok: false, reason: 'decode', detail: 'block length' };
    const [len, start] = v;
    const end = start + len;
    if (len < CID_LENGTH || end > bytes.length) return { ok: false, reason: 'decode', detail: 'block truncated' };
    const codec = bytes[start + 1];
    if (bytes[start] !== 0x01 || (codec !== CODEC_DAG_CBOR && codec !== CODEC_RAW) || bytes[start + 2] !== 0x12 || bytes[start + 3] !== 0x20) {
      return { ok: false, reason: 'decode', detail: 'block cid not blessed' };
    }
    const cid = bytes.subarray(start, start + CID_LENGTH);
    const data = bytes.subarray(start + CID_LENGTH, end);
    if (verify && !bytesEqual(sha256(data), cid.subarray(4))) {
      return { ok: false, reason: 'decode', detail: 'block cid does not match bytes' };
    }
    blocks.set(bytesKey(cid), data);
    pos = end;
  }
  return { ok: true, car: { root: roots[0], roots, blocks } };
}

export function getBlock(blocks: BlockMap, cid: Uint8Array): Uint8Array | undefined {
  return blocks.get(bytesKey(cid));
}
