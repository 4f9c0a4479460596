// Typed, defensive extraction of firehose message bodies. Never throws: returns an event or a drop
// reason. CIDs are kept as raw binary CID bytes so they can be compared and re-emitted verbatim.
import { asBytes, asCid, isInt, isPlainMap } from './values.ts'
import { isDatetime, isDid, isHandle, isRepoPath, isTid } from './syntax.ts'

export type OpAction = 'create' | 'update' | 'delete'

export interface RepoOp {
  action: OpAction
  path: string
  /** null for deletes */
  cid: Uint8Array | null
  /** undefined when the field is absent (creates; legacy producers) */
  prev: Uint8Array | undefined
}

/** Unknown upstream fields, kept for pass-through. null when there were none. */
export type ExtraFields = Record<string, unknown> | null

export interface CommitEvent {
  type: '#commit'
  seq: number
  repo: string
  commit: Uint8Array
  rev: string
  since: string | null
  blocks: Uint8Array
  ops: RepoOp[]
  time: string
  /** null when absent (first commit / legacy producer) */
  prevData: Uint8Array | null
  tooBig: boolean
  rebase: boolean
  extra: ExtraFields
  /**
   * Set when the frame these fields were decoded from is byte for byte what encodeCommitFrame
   * writes for them, apart from the seq value at [seqStart, seqEnd): the outbound frame is then
   * copied from it (see commit-frame.ts). The event must not be modified while this is set.
   */
  source?: CommitSource
}

export interface CommitSource {
  frame: Uint8Array
  seqStart: number
  seqEnd: number
}

export interface SyncEvent {
  type: '#sync'
  seq: number
  did: string
  rev: string
  blocks: Uint8Array
  time: string
  extra: ExtraFields
}

export interface IdentityEvent {
  type: '#identity'
  seq: number
  did: string
  time: string
  handle: string | null
  extra: ExtraFields
}

export interface AccountEvent {
  type: '#account'
  seq: number
  did: string
  time: string
  active: boolean
  status: string | null
  extra: ExtraFields
}

export interface InfoEvent {
  type: '#info'
  name: string
  message: string | null
  extra: ExtraFields
}

export type RepoEvent = CommitEvent | SyncEvent | IdentityEvent | AccountEvent | InfoEvent

export type SchemaDropReason = 'structure' | 'too_big'
export type ParseResult<T> = { ok: true; event: T } | { ok: false; reason: SchemaDropReason; detail: string }

function fail(detail: string): { ok: false; reason: 'structure'; detail: string } {
  return { ok: false, reason: 'structure', detail }
}

function collectExtra(body: Record<string, unknown>, known: ReadonlySet<string>): ExtraFields {
  let extra: Record<string, unknown> | null = null
  for (const k in body) {
    if (!known.has(k)) (extra ??= {})[k] = body[k]
  }
  return extra
}

const COMMIT_KEYS = new Set(['seq', 'rebase', 'tooBig', 'repo', 'commit', 'rev', 'since', 'blocks', 'ops', 'blobs', 'time', 'prevData'])
const SYNC_KEYS = new Set(['seq', 'did', 'blocks', 'rev', 'time'])
const IDENTITY_KEYS = new Set(['seq', 'did', 'time', 'handle'])
const ACCOUNT_KEYS = new Set(['seq', 'did', 'time', 'active', 'status'])
const INFO_KEYS = new Set(['name', 'message'])

function parseOp(v: unknown, i: number): RepoOp | string {
  if (!isPlainMap(v)) return `ops[${i}] not a map`
  const { action, path } = v
  if (action !== 'create' && action !== 'update' && action !== 'delete') return `ops[${i}].action invalid`
  if (!isRepoPath(path)) return `ops[${i}].path invalid`
  let cid: Uint8Array | null = null
  if (v.cid !== null) {
    cid = asCid(v.cid)
    if (cid === null) return `ops[${i}].cid invalid`
  }
  let prev: Uint8Array | undefined
  if (v.prev !== undefined && v.prev !== null) {
    const p = asCid(v.prev)
    if (p === null) return `ops[${i}].prev invalid`
    prev = p
  }
  return { action, path, cid, prev }
}

export function parseCommitBody(body: Record<string, unknown>): ParseResult<CommitEvent> {
  const { seq, repo, rev, time } = body
  if (!isInt(seq) || seq < 0) return fail('seq')
  if (!isDid(repo)) return fail('repo')
  const commit = asCid(body.commit)
  if (commit === null) return fail('commit')
  if (!isTid(rev)) return fail('rev')
  let since: string | null = null
  if (body.since !== undefined && body.since !== null) {
    if (!isTid(body.since)) return fail('since')
    since = body.since
  }
  const blocks = asBytes(body.blocks)
  if (blocks === null) return fail('blocks')
  if (!Array.isArray(body.ops)) return fail('ops')
  const ops: RepoOp[] = new Array(body.ops.length)
  for (let i = 0; i < body.ops.length; i++) {
    const op = parseOp(body.ops[i], i)
    if (typeof op === 'string') return fail(op)
    ops[i] = op
  }
  if (body.blobs !== undefined && !Array.isArray(body.blobs)) return fail('blobs')
  if (!isDatetime(time)) return fail('time')
  let prevData: Uint8Array | null = null
  if (body.prevData !== undefined && body.prevData !== null) {
    prevData = asCid(body.prevData)
    if (prevData === null) return fail('prevData')
  }
  // Deprecated flags: absent means false.
  const tooBig = body.tooBig ?? false
  const rebase = body.rebase ?? false
  if (typeof tooBig !== 'boolean') return fail('tooBig')
  if (typeof rebase !== 'boolean') return fail('rebase')
  if (tooBig) return { ok: false, reason: 'too_big', detail: 'tooBig set' }
  if (rebase) return fail('rebase set')
  return {
    ok: true,
    event: {
      type: '#commit',
      seq,
      repo,
      commit,
      rev,
      since,
      blocks,
      ops,
      time,
      prevData,
      tooBig,
      rebase,
      extra: collectExtra(body, COMMIT_KEYS),
    },
  }
}

export function parseSyncBody(body: Record<string, unknown>): ParseResult<SyncEvent> {
  const { seq, did, rev, time } = body
  if (!isInt(seq) || seq < 0) return fail('seq')
  if (!isDid(did)) return fail('did')
  if (!isTid(rev)) return fail('rev')
  const blocks = asBytes(body.blocks)
  if (blocks === null) return fail('blocks')
  if (!isDatetime(time)) return fail('time')
  return { ok: true, event: { type: '#sync', seq, did, rev, blocks, time, extra: collectExtra(body, SYNC_KEYS) } }
}

export function parseIdentityBody(body: Record<string, unknown>): ParseResult<IdentityEvent> {
  const { seq, did, time } = body
  if (!isInt(seq) || seq < 0) return fail('seq')
  if (!isDid(did)) return fail('did')
  if (!isDatetime(time)) return fail('time')
  let handle: string | null = null
  if (body.handle !== undefined && body.handle !== null) {
    if (!isHandle(body.handle)) return fail('handle')
    handle = body.handle
  }
  return { ok: true, event: { type: '#identity', seq, did, time, handle, extra: collectExtra(body, IDENTITY_KEYS) } }
}

export function parseAccountBody(body: Record<string, unknown>): ParseResult<AccountEvent> {
  const { seq, did, time, active } = body
  if (!isInt(seq) || seq < 0) return fail('seq')
  if (!isDid(did)) return fail('did')
  if (!isDatetime(time)) return fail('time')
  if (typeof active !== 'boolean') return fail('active')
  let status: string | null = null
  if (body.status !== undefined && body.status !== null) {
    if (typeof body.status !== 'string' || body.status.length > 128) return fail('status')
    status = body.status
  }
  return { ok: true, event: { type: '#account', seq, did, time, active, status, extra: collectExtra(body, ACCOUNT_KEYS) } }
}

export function parseInfoBody(body: Record<string, unknown>): ParseResult<InfoEvent> {
  if (typeof body.name !== 'string') return fail('name')
  const message = typeof body.message === 'string' ? body.message : null
  return { ok: true, event: { type: '#info', name: body.name, message, extra: collectExtra(body, INFO_KEYS) } }
}

/** Dispatch on the header type from frame.ts. */
export function parseBody(type: RepoEvent['type'], body: Record<string, unknown>): ParseResult<RepoEvent> {
  try {
    switch (type) {
      case '#commit':
        return parseCommitBody(body)
      case '#sync':
        return parseSyncBody(body)
      case '#identity':
        return parseIdentityBody(body)
      case '#account':
        return parseAccountBody(body)
      case '#info':
        return parseInfoBody(body)
    }
  } catch (err) {
    return fail(`unexpected: ${(err as Error).message}`)
  }
}
