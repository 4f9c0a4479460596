// Test helpers: real repos and signed commit frames produced with @atproto/repo, encoded with the
// independent @ipld/dag-cbor encoder.
import { Repo, MemoryBlockstore, BlockMap, blocksToCarFile, cidForRecord, WriteOpAction } from '@atproto/repo'
import type { RecordWriteOp, RecordCreateOp } from '@atproto/repo'
import { Secp256k1Keypair, P256Keypair, type Keypair } from '@atproto/crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'

export type Curve = 'k256' | 'p256'

export async function makeKeypair(curve: Curve): Promise<Keypair & { did(): string }> {
  return curve === 'k256' ? Secp256k1Keypair.create({ exportable: true }) : P256Keypair.create({ exportable: true })
}

export const toCID = (c: { bytes: Uint8Array }) => CID.decode(c.bytes)

let rkeyCounter = 0
export function nextRkey(): string {
  rkeyCounter++
  return `3k${rkeyCounter.toString(36).padStart(11, '0')}`
}

export function record(text: string): RecordCreateOp['record'] {
  return { $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() }
}

export interface BuiltCommit {
  body: Record<string, unknown>
  frame: Uint8Array
  /** repo after the commit */
  repo: Repo
  /** repo before */
  prevRepo: Repo
  blocks: BlockMap
}

export function encodeFrame(t: string, body: Record<string, unknown>): Uint8Array {
  const h = dagCbor.encode({ t, op: 1 })
  const b = dagCbor.encode(body)
  const out = new Uint8Array(h.length + b.length)
  out.set(h, 0)
  out.set(b, h.length)
  return out
}

export async function createRepo(keypair: Keypair, did: string, initial = 0): Promise<Repo> {
  const writes: RecordCreateOp[] = []
  for (let i = 0; i < initial; i++) {
    writes.push({ action: WriteOpAction.Create, collection: 'app.bsky.feed.post', rkey: nextRkey(), record: record(`init ${i}`) })
  }
  return Repo.create(new MemoryBlockstore(), did, keypair, writes)
}

/** Build a #commit like a PDS: commit + new MST blocks + covering proofs + record blocks. */
export async function buildCommit(
  repo: Repo,
  keypair: Keypair,
  writes: RecordWriteOp[],
  opts: { seq?: number; includePrevData?: boolean } = {},
): Promise<BuiltCommit> {
  const ops = []
  for (const w of writes) {
    const path = `${w.collection}/${w.rkey}`
    if (w.action === WriteOpAction.Create) {
      ops.push({ action: 'create', path, cid: toCID(await cidForRecord(w.record)) })
    } else if (w.action === WriteOpAction.Update) {
      const prev = await repo.data.get(path)
      ops.push({ action: 'update', path, cid: toCID(await cidForRecord(w.record)), prev: toCID(prev!) })
    } else {
      const prev = await repo.data.get(path)
      ops.push({ action: 'delete', path, cid: null, prev: toCID(prev!) })
    }
  }
  const commit = await repo.formatCommit(writes, keypair)
  const blocks = new BlockMap()
  blocks.addMap(commit.newBlocks)
  blocks.addMap(commit.relevantBlocks)
  const car = await blocksToCarFile(commit.cid, blocks)
  const body: Record<string, unknown> = {
    seq: opts.seq ?? 1,
    rebase: false,
    tooBig: false,
    repo: repo.did,
    commit: toCID(commit.cid),
    rev: commit.rev,
    since: commit.since,
    blocks: car,
    ops,
    blobs: [],
    time: new Date().toISOString(),
  }
  if (opts.includePrevData !== false) body.prevData = toCID(await repo.data.getPointer())
  const next = await repo.applyCommit(commit)
  return { body, frame: encodeFrame('#commit', body), repo: next, prevRepo: repo, blocks }
}

export const create = (rkey = nextRkey(), text = 'hello'): RecordWriteOp => ({
  action: WriteOpAction.Create,
  collection: 'app.bsky.feed.post',
  rkey,
  record: record(text),
})
export const update = (rkey: string, text = 'edited'): RecordWriteOp => ({
  action: WriteOpAction.Update,
  collection: 'app.bsky.feed.post',
  rkey,
  record: record(text),
})
export const del = (rkey: string): RecordWriteOp => ({ action: WriteOpAction.Delete, collection: 'app.bsky.feed.post', rkey })

function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

/** Minimal CAR v1 writer for tampering tests. */
export function writeCar(roots: CID[], blocks: { cid: CID; bytes: Uint8Array }[]): Uint8Array {
  const parts: number[][] | Uint8Array[] = []
  const header = dagCbor.encode({ version: 1, roots })
  const chunks: Uint8Array[] = [Uint8Array.from(varint(header.length)), header]
  for (const b of blocks) {
    chunks.push(Uint8Array.from(varint(b.cid.bytes.length + b.bytes.length)), b.cid.bytes, b.bytes)
  }
  void parts
  const len = chunks.reduce((a, c) => a + c.length, 0)
  const out = new Uint8Array(len)
  let o = 0
  for (const c of chunks) {
    out.set(c, o)
    o += c.length
  }
  return out
}

/** Blocks of a BlockMap as CID/bytes pairs. */
export function blockList(blocks: BlockMap): { cid: CID; bytes: Uint8Array }[] {
  const out: { cid: CID; bytes: Uint8Array }[] = []
  for (const [cid, bytes] of blocks) out.push({ cid: toCID(cid), bytes })
  return out
}
