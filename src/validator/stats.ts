// Main-thread side of the workers' internal metrics. Workers have no prom-client registry of their
// own: each posts a cumulative ValidatorStatsSnapshot on a BroadcastChannel (periodically and on
// `{type: 'stats'}`), and this collector keeps the latest per shard and exports the sums at scrape
// time. Outcome counters (accepted / dropped by reason, chain breaks) are not here: the main thread
// counts those from the FrameResults it receives.
import { BroadcastChannel } from 'node:worker_threads'
import { Counter, Gauge, type Registry } from 'prom-client'
import { STATS_CHANNEL, type ValidatorStatsSnapshot } from './worker-config.ts'

export class ValidatorStatsCollector {
  private readonly latest = new Map<number, ValidatorStatsSnapshot>()
  private readonly channel: BroadcastChannel
  private readonly listeners = new Set<() => void>()

  constructor() {
    this.channel = new BroadcastChannel(STATS_CHANNEL)
    this.channel.onmessage = (ev: unknown) => {
      const s = (ev as { data?: unknown }).data as ValidatorStatsSnapshot | undefined
      if (s && typeof s.shard === 'number') {
        this.latest.set(s.shard, s)
        for (const l of this.listeners) l()
      }
    }
    // Never keep the process alive for metrics.
    this.channel.unref()
  }

  snapshots(): ValidatorStatsSnapshot[] {
    return [...this.latest.values()].sort((a, b) => a.shard - b.shard)
  }

  /** Resolves at the next snapshot received (or after timeoutMs). */
  nextSnapshot(timeoutMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t)
        this.listeners.delete(done)
        resolve()
      }
      const t = setTimeout(done, timeoutMs)
      this.listeners.add(done)
    })
  }

  sum(pick: (s: ValidatorStatsSnapshot) => number): number {
    let n = 0
    for (const s of this.latest.values()) n += pick(s)
    return n
  }

  close(): void {
    this.channel.close()
  }

  /** Registers the worker metrics on `registry`, read from the latest snapshots at scrape time. */
  register(registry: Registry): void {
    const self = this
    const counter = (name: string, help: string, labelNames: string[], values: () => Array<[Record<string, string>, number]>) =>
      new Counter({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset()
          for (const [labels, v] of values()) this.inc(labels, v)
        },
      })
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(value())
        },
      })

    counter(
      'relay_identity_cache_requests_total',
      'Identity lookups by cache outcome (coalesced = joined a fetch in flight)',
      ['result'],
      () => [
        [{ result: 'hit' }, self.sum((s) => s.identity.hits)],
        [{ result: 'miss' }, self.sum((s) => s.identity.misses)],
        [{ result: 'negative_hit' }, self.sum((s) => s.identity.negativeHits)],
        [{ result: 'coalesced' }, self.sum((s) => s.identity.coalesced)],
      ],
    )
    counter('relay_identity_resolutions_total', 'DID document fetches by outcome', ['outcome'], () => {
      const fails = self.sum((s) => s.identity.notFound + s.identity.invalid + s.identity.errors)
      return [
        [{ outcome: 'ok' }, Math.max(self.sum((s) => s.identity.fetches) - fails, 0)],
        [{ outcome: 'not_found' }, self.sum((s) => s.identity.notFound)],
        [{ outcome: 'invalid' }, self.sum((s) => s.identity.invalid)],
        [{ outcome: 'error' }, self.sum((s) => s.identity.errors)],
      ]
    })
    counter('relay_identity_refreshes_total', 'Forced DID re-resolutions by cause', ['cause'], () => [
      [{ cause: 'signature' }, self.sum((s) => s.signatureRefreshes)],
      [{ cause: 'host' }, self.sum((s) => s.hostRefreshes)],
    ])
    gauge('relay_identity_cache_entries', 'Identity cache entries over all validation workers', () => self.sum((s) => s.identity.size))
    gauge('relay_identity_resolutions_in_flight', 'DID document fetches in flight', () => self.sum((s) => s.identity.inFlight))
    gauge('relay_identity_resolutions_queued', 'DID document fetches waiting for a slot', () => self.sum((s) => s.identity.queued))
    counter('relay_account_cache_requests_total', 'Account lookups in the workers by cache outcome', ['result'], () => [
      [{ result: 'hit' }, self.sum((s) => s.accounts.hits)],
      [{ result: 'miss' }, self.sum((s) => s.accounts.misses)],
    ])
    gauge('relay_account_cache_entries', 'Account cache entries over all validation workers', () => self.sum((s) => s.accounts.size))
    counter('relay_accounts_created_total', 'Accounts created on first sight from their host', ['throttled'], () => [
      [{ throttled: 'false' }, self.sum((s) => s.accounts.created - s.accounts.createdThrottled)],
      [{ throttled: 'true' }, self.sum((s) => s.accounts.createdThrottled)],
    ])
    counter('relay_account_migrations_total', 'Accounts moved to a new host after re-resolving their DID', [], () => [
      [{}, self.sum((s) => s.accounts.migrated)],
    ])
    counter('relay_account_upstream_status_updates_total', 'Upstream account status changes recorded', [], () => [
      [{}, self.sum((s) => s.accounts.upstreamUpdates)],
    ])
    counter(
      'relay_repo_status_checks_total',
      'getRepoStatus re-checks of inactive accounts (cached = answered from the backoff cache)',
      ['result'],
      () => [
        [{ result: 'fetched' }, self.sum((s) => s.repoStatus.checks)],
        [{ result: 'cached' }, self.sum((s) => s.repoStatus.cached)],
        [{ result: 'error' }, self.sum((s) => s.repoStatus.errors)],
        [{ result: 'recovered' }, self.sum((s) => s.repoStatus.recovered)],
      ],
    )
    gauge('relay_repo_status_cache_entries', 'getRepoStatus results cached with their backoff, over all validation workers', () =>
      self.sum((s) => s.repoStatus.size),
    )
    gauge('relay_validator_heap_used_bytes', 'V8 heap in use by the validation worker isolates (summed)', () =>
      self.sum((s) => s.heapUsedBytes ?? 0),
    )
    gauge('relay_validator_heap_total_bytes', 'V8 heap reserved by the validation worker isolates (summed)', () =>
      self.sum((s) => s.heapTotalBytes ?? 0),
    )
    counter(
      'relay_validator_legacy_no_prevdata_total',
      'Commits accepted without prevData although state existed (inversion impossible)',
      [],
      () => [[{}, self.sum((s) => s.legacyNoPrevData)]],
    )
    counter(
      'relay_validator_internal_errors_total',
      'Frames whose handling failed unexpectedly (database errors after retries, bugs); dropped as resolve_failed',
      [],
      () => [[{}, self.sum((s) => s.internalErrors)]],
    )
    new Gauge({
      name: 'relay_validator_k256_backend',
      help: 'K-256 signature backend in the validation workers (1 = in use)',
      labelNames: ['backend'],
      registers: [registry],
      collect() {
        this.reset()
        for (const s of self.latest.values()) this.set({ backend: s.k256Backend }, 1)
      },
    })
  }
}
