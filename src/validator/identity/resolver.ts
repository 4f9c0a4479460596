// DID → atproto identity (signing key verifier, PDS host, handle), behind a bounded LRU with TTL,
// single-flight per DID, a short negative cache and a cap on fetches in flight (the rest queue).
// The verifier is built once per resolution and cached with the document, so a warm entry costs
// no key parsing. The fetcher is injected: HTTP in the worker (http.ts), in-memory in tests.
import { Lru } from '../lru.ts'
import { createVerifier, type Verifier } from '../keys.ts'
import { parseDidDocument, type AtprotoIdentity } from './did-doc.ts'

export type FetchOutcome = { kind: 'found'; doc: unknown } | { kind: 'not_found'; message: string }
/** Fetches a DID document; throws on network errors, timeouts and unexpected HTTP statuses. */
export type DocFetcher = (did: string) => Promise<FetchOutcome>

export interface ResolvedIdentity extends AtprotoIdentity {
  /** null when the document has no usable signing key */
  verifier: Verifier | null
  resolvedAt: number
}

export type ResolveFailureKind =
  | 'not_found' // 404/410: unknown or tombstoned DID
  | 'invalid' // a document that is not a valid DID document for this DID
  | 'error' // network error, timeout, 5xx, unsupported method

export type ResolveResult = { ok: true; identity: ResolvedIdentity } | { ok: false; kind: ResolveFailureKind; message: string }

export interface IdentityResolverOptions {
  fetch: DocFetcher
  cacheSize: number
  ttlMs: number
  /** how long a failure is remembered (all failure kinds) */
  negativeTtlMs: number
  /** fetches in flight at once */
  concurrency: number
  now?: () => number
}

export interface IdentityStats {
  hits: number
  misses: number
  negativeHits: number
  /** callers that joined a fetch already in flight for the same DID */
  coalesced: number
  fetches: number
  notFound: number
  invalid: number
  errors: number
  purges: number
  evictions: number
  size: number
  inFlight: number
  queued: number
}

interface Flight {
  promise: Promise<ResolveResult>
}

export class IdentityResolver {
  private readonly opts: IdentityResolverOptions
  private readonly cache: Lru<string, ResolveResult>
  private readonly flights = new Map<string, Flight>()
  private active = 0
  private readonly waiting: Array<() => void> = []
  private readonly now: () => number
  private readonly counters = {
    hits: 0,
    misses: 0,
    negativeHits: 0,
    coalesced: 0,
    fetches: 0,
    notFound: 0,
    invalid: 0,
    errors: 0,
    purges: 0,
  }

  constructor(opts: IdentityResolverOptions) {
    this.opts = opts
    this.now = opts.now ?? Date.now
    this.cache = new Lru(opts.cacheSize, this.now)
  }

  /** Cached or fetched identity. `force` skips the cache (a failure of the refresh is cached too). */
  resolve(did: string, opts: { force?: boolean } = {}): Promise<ResolveResult> {
    if (!opts.force) {
      const hit = this.cache.get(did)
      if (hit !== undefined) {
        if (hit.ok) this.counters.hits++
        else this.counters.negativeHits++
        return Promise.resolve(hit)
      }
    } else {
      this.cache.delete(did)
    }
    const flight = this.flights.get(did)
    if (flight) {
      // A fetch that is already running started no earlier than this call's refresh would have.
      this.counters.coalesced++
      return flight.promise
    }
    this.counters.misses++
    const f: Flight = { promise: null as unknown as Promise<ResolveResult> }
    f.promise = this.fetchAndCache(did, f)
    this.flights.set(did, f)
    return f.promise
  }

  /** The cached identity without fetching (undefined on a miss or a cached failure). */
  peek(did: string): ResolvedIdentity | undefined {
    const r = this.cache.peek(did)
    return r && r.ok ? r.identity : undefined
  }

  /** Seed the cache (benchmarks, tests, or a PLC export feed). */
  prime(did: string, doc: unknown): ResolveResult {
    const r = this.interpret(did, { kind: 'found', doc })
    this.cache.set(did, r, r.ok ? this.opts.ttlMs : this.opts.negativeTtlMs)
    return r
  }

  /** Forget the DID: the next resolve fetches, and a fetch in flight will not be cached. */
  purge(did: string): void {
    this.counters.purges++
    this.cache.delete(did)
    this.flights.delete(did)
  }

  stats(): IdentityStats {
    return { ...this.counters, evictions: this.cache.evictions, size: this.cache.size, inFlight: this.active, queued: this.waiting.length }
  }

  private async fetchAndCache(did: string, flight: Flight): Promise<ResolveResult> {
    await this.acquire()
    let result: ResolveResult
    try {
      this.counters.fetches++
      result = this.interpret(did, await this.opts.fetch(did))
    } catch (err) {
      result = { ok: false, kind: 'error', message: (err as Error)?.message ?? String(err) }
    } finally {
      this.release()
    }
    if (!result.ok) {
      if (result.kind === 'not_found') this.counters.notFound++
      else if (result.kind === 'invalid') this.counters.invalid++
      else this.counters.errors++
    }
    // Purged while in flight: the answer may predate the change that caused the purge.
    if (this.flights.get(did) === flight) {
      this.flights.delete(did)
      this.cache.set(did, result, result.ok ? this.opts.ttlMs : this.opts.negativeTtlMs)
    }
    return result
  }

  private interpret(did: string, outcome: FetchOutcome): ResolveResult {
    if (outcome.kind === 'not_found') return { ok: false, kind: 'not_found', message: outcome.message }
    const parsed = parseDidDocument(did, outcome.doc)
    if (!parsed.ok) return { ok: false, kind: 'invalid', message: parsed.message }
    let verifier: Verifier | null = null
    if (parsed.identity.signingKey) {
      try {
        verifier = createVerifier(parsed.identity.signingKey)
      } catch {
        verifier = null
      }
    }
    return { ok: true, identity: { ...parsed.identity, verifier, resolvedAt: this.now() } }
  }

  private acquire(): Promise<void> {
    if (this.active < this.opts.concurrency) {
      this.active++
      return Promise.resolve()
    }
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  private release(): void {
    const next = this.waiting.shift()
    // The slot passes straight to the next waiter, so `active` stays the number running.
    if (next) next()
    else this.active--
  }
}
