// Everything a validation worker does with a batch of frames: decode, then per DID (strictly in
// order within a DID, DIDs concurrently up to a bound) identity, host authority, account status and
// the sync 1.1 checks, producing one FrameResult per frame in the original order. The I/O it needs
// (DID resolution, account rows, getRepoStatus) is injected, so tests and benchmarks can run it
// in-process. No exception escapes a frame: anything unexpected becomes a counted drop.
//
// Policies (see also docs and the worker entry):
// - An account is created only by a #commit/#sync/#account from the host its DID document names;
//   an event for a known account from another host re-resolves the DID (at most once per refresh
//   interval) and migrates the account if the document now names that host.
// - Accounts created beyond their host's account limit are 'throttled': their #commit/#sync AND
//   their #account are dropped as 'throttled' (upstream status is still recorded), so a host at its
//   limit cannot fill the firehose; releasing an account later emits an #account for it.
// - #identity: purges the DID's identity entry and passes through unchanged (handle kept), with or
//   without an account row, from any host.
// - Signature failure: re-resolve once (unless the identity was fetched within the refresh interval)
//   and retry; an unresolvable DID is 'resolve_failed' — the signature is never skipped.
// - Chain breaks pass and are flagged (chainBreak: true); strict mode drops them and marks the
//   account desynchronized until an accepted #sync.
import type { AcceptedEvent, DropReason, FrameMeta, FrameResult } from '../pool/types.ts'
import { cidFromString, cidToString } from './cid.ts'
import { encodeAccountFrame, encodeIdentityFrame } from './encode.ts'
import { Lru } from './lru.ts'
import type { StoredRepoState } from './rules.ts'
import type { AccountEvent, CommitEvent, IdentityEvent, RepoEvent, SyncEvent } from './schema.ts'
import { completeSignature, decodeEvent, validateCommit, validateSync, type Accepted, type ValidationResult } from './validate.ts'
import type { IdentityResolver, IdentityStats, ResolveResult } from './identity/resolver.ts'
import type { AccountRow, AccountStore } from './accounts/store.ts'
import type { RepoStatusChecker, RepoStatusStats } from './accounts/repo-status.ts'
import { combinedStatus, gateRepoEvent, upstreamFromAccountEvent } from './accounts/status.ts'

export interface ProcessorOptions {
  identity: IdentityResolver
  store: AccountStore
  repoStatus: RepoStatusChecker
  accountCacheSize: number
  strictChain: boolean
  /** minimum age of a cached identity before a signature failure / host mismatch re-fetches it */
  refreshIntervalMs: number
  /** DIDs processed concurrently within a batch */
  didConcurrency: number
  now?: () => number
  onError?: (err: unknown, context: { did: string; type: string }) => void
}

interface CachedAccount extends AccountRow {
  /** binary data CID of the stored state (for the chain check) */
  dataCidBytes: Uint8Array | null
  /** an admin change happened: reload status fields from the database on next use */
  stale: boolean
}

export interface AccountCacheStats {
  hits: number
  misses: number
  created: number
  createdThrottled: number
  migrated: number
  upstreamUpdates: number
  errors: number
  size: number
  evictions: number
}

export interface ValidatorStats {
  identity: IdentityStats
  accounts: AccountCacheStats
  repoStatus: RepoStatusStats
  /** forced re-resolutions after a signature failure */
  signatureRefreshes: number
  /** forced re-resolutions after an event from an unexpected host */
  hostRefreshes: number
  chainBreaks: number
  legacyNoPrevData: number
  /** frames whose handling threw (mapped to a drop) */
  internalErrors: number
}

type Step<T> = { ok: true; value: T } | { ok: false; result: FrameResult }

function drop(reason: DropReason, detail?: string): { ok: false; result: FrameResult } {
  return { ok: false, result: { kind: 'drop', reason, detail } }
}

function eventDid(ev: RepoEvent): string | null {
  switch (ev.type) {
    case '#commit':
      return ev.repo
    case '#sync':
    case '#identity':
    case '#account':
      return ev.did
    default:
      return null
  }
}

/** +1 per created record, -1 per deleted one, 0 for updates, summed per collection. */
export function collectionDeltas(ev: CommitEvent): Array<{ collection: string; delta: number }> {
  const sums = new Map<string, number>()
  for (const op of ev.ops) {
    const slash = op.path.indexOf('/')
    const collection = slash === -1 ? op.path : op.path.slice(0, slash)
    const d = op.action === 'create' ? 1 : op.action === 'delete' ? -1 : 0
    sums.set(collection, (sums.get(collection) ?? 0) + d)
  }
  return [...sums].map(([collection, delta]) => ({ collection, delta }))
}

export class FrameProcessor {
  private readonly opts: ProcessorOptions
  private readonly accounts: Lru<string, CachedAccount>
  private readonly now: () => number
  private readonly acctCounters = { hits: 0, misses: 0, created: 0, createdThrottled: 0, migrated: 0, upstreamUpdates: 0, errors: 0 }
  private readonly counters = { signatureRefreshes: 0, hostRefreshes: 0, chainBreaks: 0, legacyNoPrevData: 0, internalErrors: 0 }

  constructor(opts: ProcessorOptions) {
    this.opts = opts
    this.now = opts.now ?? Date.now
    this.accounts = new Lru(opts.accountCacheSize)
  }

  /** One result per frame, in order. */
  async processBatch(frames: readonly Uint8Array[], metas: readonly FrameMeta[]): Promise<FrameResult[]> {
    const results: FrameResult[] = new Array(frames.length)
    const groups = new Map<string, Array<{ i: number; ev: RepoEvent }>>()
    for (let i = 0; i < frames.length; i++) {
      const d = decodeEvent(frames[i]!)
      if (d.kind === 'drop') results[i] = { kind: 'drop', reason: d.reason, detail: d.detail }
      else if (d.kind === 'unknown') results[i] = { kind: 'ignore', reason: `unknown message type ${d.t ?? `op ${d.op}`}` }
      else if (d.kind === 'error') results[i] = { kind: 'ignore', reason: `error frame ${d.error}` }
      else {
        const did = eventDid(d.event)
        if (did === null) {
          results[i] = { kind: 'ignore', reason: d.event.type }
          continue
        }
        let g = groups.get(did)
        if (!g) groups.set(did, (g = []))
        g.push({ i, ev: d.event })
      }
    }
    const queue = [...groups.entries()]
    let next = 0
    const runner = async (): Promise<void> => {
      while (next < queue.length) {
        const [did, items] = queue[next++]!
        for (const { i, ev } of items) results[i] = await this.processEvent(did, ev, metas[i]!)
      }
    }
    const n = Math.min(this.opts.didConcurrency, queue.length)
    await Promise.all(Array.from({ length: n }, runner))
    return results
  }

  /** One decoded event; never throws. */
  async processEvent(did: string, ev: RepoEvent, meta: FrameMeta): Promise<FrameResult> {
    try {
      switch (ev.type) {
        case '#identity':
          return this.onIdentity(ev, meta)
        case '#account':
          return await this.onAccount(did, ev, meta)
        case '#commit':
        case '#sync':
          return await this.onRepoEvent(did, ev, meta)
        default:
          return { kind: 'ignore', reason: ev.type }
      }
    } catch (err) {
      this.counters.internalErrors++
      this.opts.onError?.(err, { did, type: ev.type })
      // Database trouble (after retries) or a bug: the account state could not be established.
      return { kind: 'drop', reason: 'resolve_failed', detail: `internal: ${(err as Error)?.message ?? String(err)}` }
    }
  }

  /** Forget everything about the DID: identity, and account status (reloaded on next use). */
  purge(did: string): void {
    this.opts.identity.purge(did)
    this.invalidateAccount(did)
  }

  /** Reload the account's status from the database on next use (admin takedown, limit change). */
  invalidateAccount(did: string): void {
    const a = this.accounts.peek(did)
    if (a) a.stale = true
  }

  stats(): ValidatorStats {
    return {
      identity: this.opts.identity.stats(),
      accounts: { ...this.acctCounters, size: this.accounts.size, evictions: this.accounts.evictions },
      repoStatus: this.opts.repoStatus.stats(),
      ...this.counters,
    }
  }

  // ---------------------------------------------------------------------------------------------

  private onIdentity(ev: IdentityEvent, meta: FrameMeta): FrameResult {
    this.opts.identity.purge(ev.did)
    const { frame, seqOffset } = encodeIdentityFrame({ did: ev.did, time: ev.time, handle: ev.handle, extra: ev.extra })
    return {
      kind: 'accept',
      event: { did: ev.did, kind: 'identity', frame, seqOffset, hostId: meta.hostId, upstreamSeq: meta.upstreamSeq },
    }
  }

  private async onAccount(did: string, ev: AccountEvent, meta: FrameMeta): Promise<FrameResult> {
    const a = await this.authoritativeAccount(did, meta)
    if (!a.ok) return a.result
    const acct = a.value
    const upstream = upstreamFromAccountEvent(ev.active, ev.status)
    if (upstream !== acct.upstreamStatus) {
      await this.opts.store.setUpstreamStatus(did, upstream)
      acct.upstreamStatus = upstream
      this.acctCounters.upstreamUpdates++
    }
    this.opts.repoStatus.forget(did)
    if (acct.status === 'throttled') return { kind: 'drop', reason: 'throttled', detail: 'account throttled by host limit' }
    const c = combinedStatus(acct.status, acct.upstreamStatus)
    const { frame, seqOffset } = encodeAccountFrame({ did, time: ev.time, active: c.active, status: c.status })
    return { kind: 'accept', event: { did, kind: 'account', frame, seqOffset, hostId: meta.hostId, upstreamSeq: meta.upstreamSeq } }
  }

  private async onRepoEvent(did: string, ev: CommitEvent | SyncEvent, meta: FrameMeta): Promise<FrameResult> {
    const a = await this.authoritativeAccount(did, meta)
    if (!a.ok) return a.result
    const acct = a.value

    const gate = gateRepoEvent(acct.status, acct.upstreamStatus)
    if (gate === 'throttled') return { kind: 'drop', reason: 'throttled', detail: 'account throttled by host limit' }
    if (gate === 'inactive') return { kind: 'drop', reason: 'inactive', detail: `local status ${acct.status}` }
    if (gate === 'recheck') {
      const c = await this.opts.repoStatus.check(did, { hostname: acct.hostname, noSsl: acct.hostNoSsl, adminAdded: acct.hostAdminAdded })
      if (c.upstream !== null && c.upstream !== acct.upstreamStatus) {
        await this.opts.store.setUpstreamStatus(did, c.upstream)
        acct.upstreamStatus = c.upstream
        this.acctCounters.upstreamUpdates++
      }
      if (acct.upstreamStatus !== 'active') return { kind: 'drop', reason: 'inactive', detail: `upstream status ${acct.upstreamStatus}` }
    }
    const strict = this.opts.strictChain
    if (strict && acct.desynchronized && ev.type === '#commit') {
      return { kind: 'drop', reason: 'desynchronized', detail: 'waiting for a #sync' }
    }

    const id = await this.opts.identity.resolve(did)
    if (!id.ok) return { kind: 'drop', reason: 'resolve_failed', detail: `${id.kind}: ${id.message}` }

    const stored: StoredRepoState | null =
      acct.rev !== null && acct.dataCidBytes !== null ? { rev: acct.rev, dataCid: acct.dataCidBytes } : null
    const vopts = { nowMs: this.now(), strict }
    let res: ValidationResult =
      ev.type === '#commit'
        ? validateCommit(ev, stored, id.identity.verifier, vopts)
        : validateSync(ev, stored, id.identity.verifier, vopts)
    if (!res.ok && res.reason === 'signature') {
      if (this.now() - id.identity.resolvedAt < this.opts.refreshIntervalMs) {
        return { kind: 'drop', reason: 'signature', detail: res.detail }
      }
      this.counters.signatureRefreshes++
      const fresh = await this.opts.identity.resolve(did, { force: true })
      if (!fresh.ok) return { kind: 'drop', reason: 'resolve_failed', detail: `${fresh.kind}: ${fresh.message}` }
      res = completeSignature(res.pending, fresh.identity.verifier)
      if (!res.ok) return { kind: 'drop', reason: 'signature', detail: res.detail }
    }
    if (!res.ok) {
      if (res.reason === 'chain_break' && !acct.desynchronized) {
        await this.opts.store.setDesynchronized(did, true)
        acct.desynchronized = true
      }
      return { kind: 'drop', reason: res.reason, detail: res.detail }
    }
    return this.accepted(did, ev, meta, acct, res)
  }

  private async accepted(
    did: string,
    ev: CommitEvent | SyncEvent,
    meta: FrameMeta,
    acct: CachedAccount,
    res: Accepted,
  ): Promise<FrameResult> {
    const isSync = ev.type === '#sync'
    const repoState: NonNullable<AcceptedEvent['repoState']> & { desynchronized?: boolean } = {
      rev: res.state.rev,
      commitCid: cidToString(res.state.commitCid),
      dataCid: cidToString(res.state.dataCid),
    }
    if (isSync) {
      repoState.allowEqual = true
      if (acct.desynchronized) {
        // Re-anchored. Written here (the flag is ours) and carried in repoState for the sequencer.
        await this.opts.store.setDesynchronized(did, false)
        acct.desynchronized = false
        repoState.desynchronized = false
      }
    }
    // Optimistic: the sequencer persists this state with the event; later events chain on it now.
    acct.rev = repoState.rev
    acct.commitCid = repoState.commitCid
    acct.dataCid = repoState.dataCid
    acct.dataCidBytes = res.state.dataCid
    if (res.chainBreak) this.counters.chainBreaks++
    if (res.legacyNoPrevData) this.counters.legacyNoPrevData++
    const event: AcceptedEvent = {
      did,
      kind: isSync ? 'sync' : 'commit',
      frame: res.frame,
      seqOffset: res.seqOffset,
      repoState,
      hostId: meta.hostId,
      upstreamSeq: meta.upstreamSeq,
    }
    if (!isSync) event.collectionDeltas = collectionDeltas(ev as CommitEvent)
    return res.chainBreak ? { kind: 'accept', event, chainBreak: true } : { kind: 'accept', event }
  }

  // ---------------------------------------------------------------------------------------------
  // Accounts and host authority

  private toCached(row: AccountRow, prev: CachedAccount | undefined): CachedAccount {
    const out: CachedAccount = { ...row, dataCidBytes: row.dataCid ? cidFromString(row.dataCid) : null, stale: false }
    // The database may lag our optimistic state (the sequencer persists asynchronously): never let
    // a reload move the chain backwards.
    if (prev && prev.rev !== null && (out.rev === null || prev.rev > out.rev)) {
      out.rev = prev.rev
      out.commitCid = prev.commitCid
      out.dataCid = prev.dataCid
      out.dataCidBytes = prev.dataCidBytes
    }
    return out
  }

  private async loadAccount(did: string): Promise<CachedAccount | null> {
    const cached = this.accounts.get(did)
    if (cached && !cached.stale) {
      this.acctCounters.hits++
      return cached
    }
    this.acctCounters.misses++
    let row: AccountRow | null
    try {
      row = await this.opts.store.load(did)
    } catch (err) {
      this.acctCounters.errors++
      throw err
    }
    if (row === null) {
      this.accounts.delete(did)
      return null
    }
    const acct = this.toCached(row, cached)
    this.accounts.set(did, acct)
    return acct
  }

  /** Resolve; when the document doesn't name `hostname` and is not fresh, re-fetch it once. */
  private async resolveForHost(did: string, hostname: string): Promise<ResolveResult> {
    const r = await this.opts.identity.resolve(did)
    // A cached failure stands until its negative TTL runs out.
    if (!r.ok || r.identity.pdsHost === hostname) return r
    if (this.now() - r.identity.resolvedAt < this.opts.refreshIntervalMs) return r
    this.counters.hostRefreshes++
    return this.opts.identity.resolve(did, { force: true })
  }

  /** The account, after checking that `meta.hostname` is its authoritative host (create/migrate). */
  private async authoritativeAccount(did: string, meta: FrameMeta): Promise<Step<CachedAccount>> {
    const acct = await this.loadAccount(did)
    if (acct !== null && acct.hostId === meta.hostId) return { ok: true, value: acct }

    const r = await this.resolveForHost(did, meta.hostname)
    if (!r.ok) return drop('resolve_failed', `${r.kind}: ${r.message}`)
    if (r.identity.pdsHost !== meta.hostname) {
      const named = r.identity.pdsHost ?? (r.identity.pdsEndpoint === null ? 'no PDS' : `unusable endpoint ${r.identity.pdsEndpoint}`)
      return drop('host_authority', `DID document names ${named}, event from ${meta.hostname}`)
    }
    if (acct === null) {
      const row = await this.opts.store.create(did, meta.hostId)
      const created = this.toCached(row, undefined)
      this.accounts.set(did, created)
      this.acctCounters.created++
      if (created.status === 'throttled') this.acctCounters.createdThrottled++
      if (created.hostId !== meta.hostId) return drop('host_authority', 'account was created concurrently on another host')
      return { ok: true, value: created }
    }
    const row = await this.opts.store.migrate(did, acct.hostId, meta.hostId)
    if (row === null) {
      this.accounts.delete(did)
      return drop('resolve_failed', 'account disappeared during migration')
    }
    const moved = this.toCached(row, acct)
    this.accounts.set(did, moved)
    if (moved.hostId !== meta.hostId) return drop('host_authority', 'account moved concurrently')
    this.acctCounters.migrated++
    return { ok: true, value: moved }
  }
}
