// Pure protocol rules over revs (TIDs) and the per-account chain state.
import { bytesEqual } from './bytes.ts'
import { isTid } from './syntax.ts'

const B32 = '234567abcdefghijklmnopqrstuvwxyz'
const B32_INDEX = new Int8Array(128).fill(-1)
for (let i = 0; i < B32.length; i++) B32_INDEX[B32.charCodeAt(i)] = i

export const FUTURE_REV_TOLERANCE_US = 5 * 60 * 1_000_000

/** Microseconds since the epoch encoded in a TID, or null if not a TID. */
export function tidTimestampUs(tid: string): number | null {
  if (!isTid(tid)) return null
  // The first 11 chars (55 bits, top bit always 0) hold the timestamp; the last 2 the clock id.
  let us = 0
  for (let i = 0; i < 11; i++) us = us * 32 + B32_INDEX[tid.charCodeAt(i)]
  return us
}

/** TIDs sort lexicographically in numeric order. */
export function revIsNewer(rev: string, storedRev: string): boolean {
  return rev > storedRev
}

/** Rev timestamp more than 5 minutes past `nowMs`. Unparseable revs count as future. */
export function revIsFuture(rev: string, nowMs: number): boolean {
  const us = tidTimestampUs(rev)
  if (us === null) return true
  return us > nowMs * 1000 + FUTURE_REV_TOLERANCE_US
}

export interface StoredRepoState {
  rev: string
  /** MST root (`data`) of the last accepted commit */
  dataCid: Uint8Array
  /** CID of the last accepted commit */
  commitCid?: Uint8Array
}

export type ChainCheck = 'ok' | 'chain_break'

/**
 * Continuity of a #commit against the stored state: `since` must be the stored rev and `prevData`
 * the stored data CID. No state → ok (first sight). A mismatch is a discontinuity, not invalidity.
 */
export function checkChain(since: string | null, prevData: Uint8Array | null, stored: StoredRepoState | null): ChainCheck {
  if (stored === null) return 'ok'
  if (since !== stored.rev) return 'chain_break'
  if (prevData === null || !bytesEqual(prevData, stored.dataCid)) return 'chain_break'
  return 'ok'
}

/** #sync: a rev older than the stored one is a rollback → drop; equal or newer passes. */
export function syncRevAcceptable(rev: string, stored: StoredRepoState | null): boolean {
  return stored === null || rev >= stored.rev
}
