// Orchestration of the pure validation steps for one event. Cheap checks run first; the signature
// runs last because it dominates cost. A signature failure (or a missing key) returns a `pending`
// value that can be completed with another verifier after the caller re-resolves the DID, without
// redoing the CAR / MST work.
import { decodeFrame } from './frame.ts'
import { decodeCommitFrameFast } from './commit-frame.ts'
import { frameTooLarge } from './limits.ts'
import { parseBody, type CommitEvent, type RepoEvent, type SyncEvent } from './schema.ts'
import { commitLimitViolation, syncLimitViolation } from './limits.ts'
import { parseCar, getBlock } from './car.ts'
import { decodeCommit, unsignedCommitBytes } from './commit.ts'
import { checkRecordBlocks, invertOps, normalizeOps } from './invert.ts'
import { checkChain, revIsFuture, syncRevAcceptable, type StoredRepoState } from './rules.ts'
import { verifySignature } from './signature.ts'
import { encodeCommitFrame, encodeSyncFrame } from './encode.ts'
import { bytesEqual } from './bytes.ts'
import type { Verifier } from './keys.ts'

export type InvalidReason =
  | 'decode'
  | 'size'
  | 'structure'
  | 'too_big'
  | 'mismatch'
  | 'rev_stale'
  | 'rev_future'
  | 'chain_break'
  | 'inversion'
  | 'record'
  | 'signature'

export interface ValidateOptions {
  /** wall clock in ms (injected for testability) */
  nowMs: number
  /** reject discontinuities (since/prevData vs stored state, missing prevData) instead of flagging */
  strict?: boolean
}

export interface NewRepoState {
  rev: string
  commitCid: Uint8Array
  dataCid: Uint8Array
}

export interface Accepted {
  ok: true
  state: NewRepoState
  /** since/prevData did not continue the stored state (pass through, count, maybe flag account) */
  chainBreak: boolean
  /** prior state exists but the commit has no prevData, so inversion was impossible */
  legacyNoPrevData: boolean
  /** outbound frame with seq placeholder; see encode.ts spliceSeq */
  frame: Uint8Array
  seqOffset: number
}

export interface Rejected {
  ok: false
  reason: Exclude<InvalidReason, 'signature'>
  detail: string
}

/** Everything but the signature was valid; complete with completeSignature(pending, verifier). */
export interface PendingSignature {
  event: CommitEvent | SyncEvent
  did: string
  unsigned: Uint8Array
  sig: Uint8Array
  state: NewRepoState
  chainBreak: boolean
  legacyNoPrevData: boolean
}

export interface SignatureRejected {
  ok: false
  reason: 'signature'
  detail: string
  pending: PendingSignature
}

export type ValidationResult = Accepted | Rejected | SignatureRejected

function reject(reason: Rejected['reason'], detail: string): Rejected {
  return { ok: false, reason, detail }
}

/** Verify the pending signature with `verifier` (e.g. after a forced DID re-resolution). */
export function completeSignature(pending: PendingSignature, verifier: Verifier | null): Accepted | SignatureRejected {
  if (verifier === null) return { ok: false, reason: 'signature', detail: 'no signing key', pending }
  if (!verifySignature(verifier, pending.unsigned, pending.sig)) {
    return { ok: false, reason: 'signature', detail: 'bad signature', pending }
  }
  const ev = pending.event
  const { frame, seqOffset } = ev.type === '#commit' ? encodeCommitFrame(ev) : encodeSyncFrame(ev)
  return { ok: true, state: pending.state, chainBreak: pending.chainBreak, legacyNoPrevData: pending.legacyNoPrevData, frame, seqOffset }
}

/** Full #commit validation. Never throws. */
export function validateCommit(
  evt: CommitEvent,
  stored: StoredRepoState | null,
  verifier: Verifier | null,
  opts: ValidateOptions,
): ValidationResult {
  try {
    return validateCommitInner(evt, stored, verifier, opts)
  } catch (err) {
    return reject('structure', `unexpected: ${(err as Error).message}`)
  }
}

function validateCommitInner(
  evt: CommitEvent,
  stored: StoredRepoState | null,
  verifier: Verifier | null,
  opts: ValidateOptions,
): ValidationResult {
  const limit = commitLimitViolation(evt.blocks.length, evt.ops.length)
  if (limit) return reject('size', limit)
  if (evt.tooBig) return reject('too_big', 'tooBig set')
  if (stored !== null && !(evt.rev > stored.rev)) return reject('rev_stale', `rev ${evt.rev} <= stored ${stored.rev}`)
  if (revIsFuture(evt.rev, opts.nowMs)) return reject('rev_future', `rev ${evt.rev} in the future`)

  let ops = null
  if (evt.prevData !== null) {
    const n = normalizeOps(evt.ops)
    if (typeof n === 'string') return reject('structure', n)
    ops = n
  }

  const parsed = parseCar(evt.blocks)
  if (!parsed.ok) return reject(parsed.reason, parsed.detail)
  const car = parsed.car
  if (!bytesEqual(car.root, evt.commit)) return reject('mismatch', 'commit != car root')
  const commitBlock = getBlock(car.blocks, car.root)
  if (commitBlock === undefined) return reject('structure', 'commit block missing')
  const dc = decodeCommit(commitBlock)
  if (!dc.ok) return reject('structure', dc.detail)
  const commit = dc.commit
  if (commit.did !== evt.repo) return reject('mismatch', 'repo != commit.did')
  if (commit.rev !== evt.rev) return reject('mismatch', 'rev != commit.rev')

  let chainBreak = false
  let legacyNoPrevData = false
  if (stored !== null) {
    chainBreak = evt.prevData === null ? evt.since !== stored.rev : checkChain(evt.since, evt.prevData, stored) === 'chain_break'
    if (chainBreak && opts.strict) return reject('chain_break', 'since/prevData do not match stored state')
  }

  if (ops !== null) {
    const inv = invertOps(car.blocks, commit.data, ops, evt.prevData as Uint8Array)
    if (!inv.ok) return reject('inversion', inv.detail)
    const rec = checkRecordBlocks(car.blocks, ops)
    if (rec) return reject('record', rec)
  } else {
    // No prevData: an account's first commit (accepted without inversion) or a legacy producer.
    if (stored !== null) {
      if (opts.strict) return reject('inversion', 'missing prevData')
      legacyNoPrevData = true
    }
    for (const op of evt.ops) {
      if (op.action !== 'delete' && op.cid !== null) {
        const rec = checkRecordBlocks(car.blocks, [{ action: 'create', path: op.path, cid: op.cid }])
        if (rec) return reject('record', rec)
      }
    }
  }

  const pending: PendingSignature = {
    event: evt,
    did: evt.repo,
    unsigned: dc.unsigned ?? unsignedCommitBytes(commit),
    sig: commit.sig,
    state: { rev: evt.rev, commitCid: car.root, dataCid: commit.data },
    chainBreak,
    legacyNoPrevData,
  }
  return completeSignature(pending, verifier)
}

/** Full #sync validation. Never throws. */
export function validateSync(
  evt: SyncEvent,
  stored: StoredRepoState | null,
  verifier: Verifier | null,
  opts: ValidateOptions,
): ValidationResult {
  try {
    const limit = syncLimitViolation(evt.blocks.length)
    if (limit) return reject('size', limit)
    if (!syncRevAcceptable(evt.rev, stored)) return reject('rev_stale', `sync rev ${evt.rev} < stored`)
    if (revIsFuture(evt.rev, opts.nowMs)) return reject('rev_future', `rev ${evt.rev} in the future`)
    const parsed = parseCar(evt.blocks)
    if (!parsed.ok) return reject(parsed.reason, parsed.detail)
    const car = parsed.car
    const commitBlock = getBlock(car.blocks, car.root)
    if (commitBlock === undefined) return reject('structure', 'commit block missing')
    const dc = decodeCommit(commitBlock)
    if (!dc.ok) return reject('structure', dc.detail)
    const commit = dc.commit
    if (commit.did !== evt.did) return reject('mismatch', 'did != commit.did')
    if (commit.rev !== evt.rev) return reject('mismatch', 'rev != commit.rev')
    return completeSignature(
      {
        event: evt,
        did: evt.did,
        unsigned: dc.unsigned ?? unsignedCommitBytes(commit),
        sig: commit.sig,
        state: { rev: evt.rev, commitCid: car.root, dataCid: commit.data },
        chainBreak: false,
        legacyNoPrevData: false,
      },
      verifier,
    )
  } catch (err) {
    return reject('structure', `unexpected: ${(err as Error).message}`)
  }
}

export type DecodedEvent =
  | { kind: 'event'; event: RepoEvent }
  | { kind: 'drop'; reason: 'decode' | 'size' | 'structure' | 'too_big'; detail: string }
  | { kind: 'unknown'; op: number; t: string | null }
  | { kind: 'error'; error: string; message: string | null }

/** Frame bytes → typed event (or a drop / ignore outcome). Never throws. */
export function decodeEvent(bytes: Uint8Array): DecodedEvent {
  // Common case first: a canonical #commit straight to its event (identical result, see commit-frame.ts).
  if (!frameTooLarge(bytes.byteLength)) {
    const commit = decodeCommitFrameFast(bytes)
    if (commit !== null) return { kind: 'event', event: commit }
  }
  const f = decodeFrame(bytes)
  switch (f.kind) {
    case 'invalid':
      return { kind: 'drop', reason: f.reason, detail: f.detail }
    case 'unknown':
      return f
    case 'error':
      return f
    case 'message': {
      const p = parseBody(f.type, f.body)
      if (!p.ok) return { kind: 'drop', reason: p.reason, detail: p.detail }
      return { kind: 'event', event: p.event }
    }
  }
}
