// MST inversion (sync v1.1 "inductive firehose", protocol.md §3.2): undo each op on the partial
// tree rooted at the new commit's `data` and require the result to be `prevData`.
import { bytesEqual, bytesKey } from './bytes.ts'
import { Mst, MissingBlockError, MstStructureError } from './mst.ts'
import { recordTooLarge } from './limits.ts'
import { CarBlocks, type Blocks } from './car.ts'
import type { RepoOp } from './schema.ts'

export type NormalizedOp =
  | { action: 'create'; path: string; cid: Uint8Array }
  | { action: 'update'; path: string; cid: Uint8Array; prev: Uint8Array }
  | { action: 'delete'; path: string; prev: Uint8Array }

export type InvertResult = { ok: true } | { ok: false; detail: string }

/** Shape rules per action and duplicate paths. Returns the ops or a failure detail. */
export function normalizeOps(ops: readonly RepoOp[]): NormalizedOp[] | string {
  const out: NormalizedOp[] = new Array(ops.length)
  const seen = new Set<string>()
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]
    if (seen.has(op.path)) return `duplicate path ${op.path}`
    seen.add(op.path)
    switch (op.action) {
      case 'create':
        if (op.cid === null || op.prev !== undefined) return `ops[${i}] create shape`
        out[i] = { action: 'create', path: op.path, cid: op.cid }
        break
      case 'update':
        if (op.cid === null || op.prev === undefined) return `ops[${i}] update shape`
        out[i] = { action: 'update', path: op.path, cid: op.cid, prev: op.prev }
        break
      case 'delete':
        if (op.cid !== null || op.prev === undefined) return `ops[${i}] delete shape`
        out[i] = { action: 'delete', path: op.path, prev: op.prev }
        break
      default:
        return `ops[${i}] action`
    }
  }
  return out
}

/** Every create/update record block is present and within the record size limit. */
export function checkRecordBlocks(blocks: Blocks, ops: readonly NormalizedOp[]): string | null {
  for (const op of ops) {
    if (op.action === 'delete') continue
    let length: number
    if (blocks instanceof CarBlocks) {
      const i = blocks.find(op.cid)
      if (i === -1) return `record block missing for ${op.path}`
      length = blocks.dataLength(i)
    } else {
      const b = blocks.get(bytesKey(op.cid))
      if (b === undefined) return `record block missing for ${op.path}`
      length = b.byteLength
    }
    if (recordTooLarge(length)) return `record too large for ${op.path}`
  }
  return null
}

/**
 * Invert `ops` on the tree rooted at `dataCid` (using only `blocks`) and compare to `prevData`.
 * Never throws.
 */
export function invertOps(blocks: Blocks, dataCid: Uint8Array, ops: readonly NormalizedOp[], prevData: Uint8Array): InvertResult {
  try {
    const mst = Mst.load(blocks, dataCid)
    for (const op of ops) {
      if (op.action === 'create') {
        if (!bytesEqual(mst.delete(op.path), op.cid)) return { ok: false, detail: `create ${op.path}: cid mismatch` }
      } else if (op.action === 'update') {
        if (!bytesEqual(mst.update(op.path, op.prev), op.cid)) return { ok: false, detail: `update ${op.path}: cid mismatch` }
      } else {
        mst.add(op.path, op.prev)
      }
    }
    if (!bytesEqual(mst.rootCid(), prevData)) return { ok: false, detail: 'inverted root != prevData' }
    return { ok: true }
  } catch (err) {
    if (err instanceof MissingBlockError) return { ok: false, detail: 'missing block needed for inversion' }
    if (err instanceof MstStructureError) return { ok: false, detail: err.message }
    return { ok: false, detail: `unexpected: ${(err as Error).message}` }
  }
}
