// Hard limits enforced before any heavy work (protocol.md §1.4).
export const MAX_FRAME_BYTES = 5_000_000
export const MAX_COMMIT_BLOCKS_BYTES = 2_000_000
export const MAX_COMMIT_OPS = 200
export const MAX_SYNC_BLOCKS_BYTES = 10_000
export const MAX_RECORD_BYTES = 1_000_000

export function frameTooLarge(byteLength: number): boolean {
  return byteLength > MAX_FRAME_BYTES
}

/** Returns a human-readable violation, or null when within limits. */
export function commitLimitViolation(blocksLength: number, opsCount: number): string | null {
  if (blocksLength > MAX_COMMIT_BLOCKS_BYTES) return `blocks ${blocksLength} > ${MAX_COMMIT_BLOCKS_BYTES}`
  if (opsCount > MAX_COMMIT_OPS) return `ops ${opsCount} > ${MAX_COMMIT_OPS}`
  return null
}

export function syncLimitViolation(blocksLength: number): string | null {
  if (blocksLength > MAX_SYNC_BLOCKS_BYTES) return `blocks ${blocksLength} > ${MAX_SYNC_BLOCKS_BYTES}`
  return null
}

export function recordTooLarge(byteLength: number): boolean {
  return byteLength > MAX_RECORD_BYTES
}
