/**
 * Cursor semantics of com.atproto.sync.subscribeRepos, as pure functions.
 *
 * Replay sends events with seq > cursor, as the reference PDS and indigo do (the spec text says
 * "greater-or-equal", both implementations send strictly greater), so cursor=0 replays the whole
 * retained window.
 */

export const MAX_CURSOR = Number.MAX_SAFE_INTEGER // 2^53 - 1

export type ParsedCursor = { ok: true; cursor: number | undefined } | { ok: false; error: 'InvalidRequest'; message: string }

const DIGITS = /^[0-9]+$/

/**
 * Parses the `cursor` query parameter. `values` is every occurrence (URLSearchParams.getAll).
 * Absent or empty = live (@atproto/sync 0.1.x sends `?cursor=` when it has none).
 */
export function parseCursor(values: string | readonly string[] | null | undefined): ParsedCursor {
  const list = values == null ? [] : typeof values === 'string' ? [values] : values
  if (list.length > 1) {
    return { ok: false, error: 'InvalidRequest', message: 'cursor must be given at most once' }
  }
  const raw = list[0]
  if (raw === undefined || raw === '') return { ok: true, cursor: undefined }
  if (!DIGITS.test(raw)) {
    return { ok: false, error: 'InvalidRequest', message: 'cursor must be a non-negative integer' }
  }
  const n = Number(raw)
  if (!Number.isSafeInteger(n)) {
    return { ok: false, error: 'InvalidRequest', message: `cursor must be at most ${MAX_CURSOR}` }
  }
  return { ok: true, cursor: n }
}

/** Where the relay stands when a consumer connects. */
export interface CursorContext {
  /** Newest seq broadcast (or persisted before startup); 0 when the log is empty. */
  headSeq: number
  /** The ring holds every frame with seq > ringFloor. */
  ringFloor: number
  /** Retention low-water mark of the event log (events <= it may be gone); 0 = nothing pruned. */
  prunedThrough: number
  /** Whether an event log is available for cursors older than the ring. */
  hasStore: boolean
}

export type CursorDecision =
  | { action: 'live' }
  | { action: 'future' }
  | {
      action: 'replay'
      /** Where the first frame comes from; the consumer moves on to the ring, then live. */
      source: 'ring' | 'store'
      /** Send events with seq > afterSeq. */
      afterSeq: number
      /** Send #info OutdatedCursor first: events after the cursor may have been pruned. */
      outdated: boolean
    }

export function decideCursor(cursor: number | undefined, ctx: CursorContext): CursorDecision {
  if (cursor === undefined) return { action: 'live' }
  // The PDS also answers FutureCursor for any cursor > 0 on an empty log (cursor > (curr ?? 0)).
  if (cursor > ctx.headSeq) return { action: 'future' }
  // Without an event log, what fell out of the ring is gone: the ring floor is the window.
  const windowFloor = ctx.hasStore ? ctx.prunedThrough : ctx.ringFloor
  const outdated = cursor < windowFloor
  const afterSeq = outdated ? windowFloor : cursor
  const source = afterSeq >= ctx.ringFloor || !ctx.hasStore ? 'ring' : 'store'
  return { action: 'replay', source, afterSeq, outdated }
}

export const OUTDATED_CURSOR_MESSAGE = 'Requested cursor exceeded limit. Possibly missing events'
export const FUTURE_CURSOR_MESSAGE = 'Cursor in the future.'
