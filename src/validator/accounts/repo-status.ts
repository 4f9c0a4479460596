// Live re-check of an account its host reported inactive (com.atproto.sync.getRepoStatus), so an
// account whose `#account active` event we missed recovers. Per DID: single-flight, and after an
// answer that is still inactive (or an error) no new call before a backoff interval that doubles
// up to a cap. Events arriving meanwhile reuse the last answer: never one HTTP call per commit.
import type { SafeDialer } from '../../subscriber/ssrf.ts'
import { getJson } from '../http.ts'
import { Lru } from '../lru.ts'
import { upstreamFromAccountEvent } from './status.ts'

export interface RepoStatusHost {
  hostname: string
  noSsl: boolean
  adminAdded: boolean
}

/** 'status': the host's current status (normalised upstream vocabulary); 'not_found': RepoNotFound. */
export type RepoStatusAnswer = { kind: 'status'; upstream: string } | { kind: 'not_found' }
/** Throws on network errors and unexpected answers. */
export type RepoStatusFetcher = (host: RepoStatusHost, did: string) => Promise<RepoStatusAnswer>

export interface RepoStatusCheck {
  /** upstream status per the host; null when unknown (error, not found, or cached failure) */
  upstream: string | null
  /** whether this call asked the host (false: answered from the backoff cache) */
  fetched: boolean
}

export interface RepoStatusStats {
  checks: number
  cached: number
  errors: number
  recovered: number
  size: number
}

interface Entry {
  upstream: string | null
  nextAt: number
  intervalMs: number
}

export class RepoStatusChecker {
  private readonly fetch: RepoStatusFetcher
  private readonly minIntervalMs: number
  private readonly maxIntervalMs: number
  private readonly now: () => number
  private readonly entries: Lru<string, Entry>
  private readonly flights = new Map<string, Promise<RepoStatusCheck>>()
  private readonly counters = { checks: 0, cached: 0, errors: 0, recovered: 0 }

  constructor(opts: { fetch: RepoStatusFetcher; minIntervalMs: number; maxIntervalMs?: number; cacheSize?: number; now?: () => number }) {
    this.fetch = opts.fetch
    this.minIntervalMs = opts.minIntervalMs
    this.maxIntervalMs = Math.max(opts.maxIntervalMs ?? 3_600_000, opts.minIntervalMs)
    this.now = opts.now ?? Date.now
    this.entries = new Lru(opts.cacheSize ?? 50_000, this.now)
  }

  check(did: string, host: RepoStatusHost): Promise<RepoStatusCheck> {
    const e = this.entries.get(did)
    if (e && this.now() < e.nextAt) {
      this.counters.cached++
      return Promise.resolve({ upstream: e.upstream, fetched: false })
    }
    const inFlight = this.flights.get(did)
    if (inFlight) return inFlight
    const p = this.run(did, host, e).finally(() => this.flights.delete(did))
    this.flights.set(did, p)
    return p
  }

  /** The host told us something newer (#account): forget the backoff. */
  forget(did: string): void {
    this.entries.delete(did)
  }

  stats(): RepoStatusStats {
    return { ...this.counters, size: this.entries.size }
  }

  private async run(did: string, host: RepoStatusHost, prev: Entry | undefined): Promise<RepoStatusCheck> {
    this.counters.checks++
    let upstream: string | null = null
    try {
      const a = await this.fetch(host, did)
      if (a.kind === 'status') upstream = a.upstream
    } catch {
      this.counters.errors++
    }
    if (upstream === 'active') {
      this.counters.recovered++
      this.entries.delete(did)
    } else {
      const intervalMs = prev ? Math.min(prev.intervalMs * 2, this.maxIntervalMs) : this.minIntervalMs
      this.entries.set(did, { upstream, nextAt: this.now() + intervalMs, intervalMs }, this.maxIntervalMs * 2)
    }
    return { upstream, fetched: true }
  }
}

export function createHttpRepoStatusFetcher(opts: { dialer: SafeDialer; timeoutMs: number; userAgent?: string }): RepoStatusFetcher {
  return async (host, did) => {
    const scheme = host.noSsl ? 'http' : 'https'
    const url = `${scheme}://${host.hostname}/xrpc/com.atproto.sync.getRepoStatus?did=${encodeURIComponent(did)}`
    const dispatcher = opts.dialer.dispatcher({ adminLocalhost: host.adminAdded && host.hostname.startsWith('localhost:') })
    const res = await getJson(url, { dispatcher, timeoutMs: opts.timeoutMs, maxBytes: 16 * 1024, userAgent: opts.userAgent })
    const body = res.json as { active?: unknown; status?: unknown; error?: unknown } | undefined
    if (res.status === 200 && body && typeof body.active === 'boolean') {
      return { kind: 'status', upstream: upstreamFromAccountEvent(body.active, typeof body.status === 'string' ? body.status : null) }
    }
    if (res.status === 400 && body && body.error === 'RepoNotFound') return { kind: 'not_found' }
    throw new Error(`getRepoStatus answered HTTP ${res.status}`)
  }
}
