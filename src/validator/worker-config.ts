// What the main thread hands each validation worker (`workerData.data`), the control messages the
// worker understands, and the stats snapshot it reports. Structured-clone friendly throughout.
import type { Config } from '../core/config.ts'
import type { ConnectionSettings } from '../core/db.ts'
import type { ValidatorStats } from './processor.ts'

export interface ValidatorWorkerConfig {
  /** Postgres: a connection URL or a pg ClientConfig (the embedded cluster's socket settings) */
  database: ConnectionSettings
  /** connections in this worker's own pool (2-4 is plenty: lookups are by primary key) */
  dbPoolSize: number
  plcUrl: string
  /** loopback/private addresses and any port for outbound calls; http did:web for localhost */
  allowInsecureHosts: boolean
  strictChain: boolean
  identityCacheSize: number
  identityCacheTtlMs: number
  identityNegativeTtlMs: number
  /** minimum age of an identity before a signature failure / host mismatch forces a re-fetch */
  identityRefreshIntervalMs: number
  resolveTimeoutMs: number
  resolveConcurrency: number
  accountCacheSize: number
  /** first getRepoStatus backoff interval; doubles up to repoStatusMaxIntervalMs */
  repoStatusRecheckMs: number
  repoStatusMaxIntervalMs: number
  didConcurrency: number
  logLevel: string
  /** period of the stats snapshot the worker posts on STATS_CHANNEL; 0 = only on request */
  statsIntervalMs: number
  userAgent?: string
}

/** Control messages, sent with ShardedPool.broadcast(message) (runs after the work queued before it). */
export type ValidatorControl =
  /** forget the DID's identity and reload its account from the database on next use */
  | { type: 'purge'; did: string }
  /** reload the account's status from the database on next use (admin takedown, host limit change) */
  | { type: 'invalidateAccount'; did: string }
  /** post (and return) a stats snapshot now */
  | { type: 'stats' }

export interface ValidatorStatsSnapshot extends ValidatorStats {
  shard: number
  /** ms since epoch */
  at: number
  k256Backend: string
  /** the worker isolate's V8 heap (process metrics only see the main thread's) */
  heapUsedBytes: number
  heapTotalBytes: number
}

/** BroadcastChannel name on which workers post ValidatorStatsSnapshot messages. */
export const STATS_CHANNEL = 'relay-validator-stats'

export function validatorWorkerConfig(
  config: Config,
  database: ConnectionSettings,
  extra: Partial<ValidatorWorkerConfig> = {},
): ValidatorWorkerConfig {
  return {
    database,
    dbPoolSize: config.validatorDbPoolSize,
    plcUrl: config.plcUrl,
    allowInsecureHosts: config.allowInsecureHosts,
    strictChain: config.strictChain,
    identityCacheSize: config.identityCacheSize,
    identityCacheTtlMs: config.identityCacheTtl,
    identityNegativeTtlMs: config.identityNegativeTtl,
    identityRefreshIntervalMs: config.identityRefreshInterval,
    resolveTimeoutMs: config.resolveTimeout,
    resolveConcurrency: config.resolveConcurrency,
    accountCacheSize: config.accountCacheSize,
    repoStatusRecheckMs: config.repoStatusRecheck,
    repoStatusMaxIntervalMs: 3_600_000,
    didConcurrency: config.validatorDidConcurrency,
    logLevel: config.logLevel,
    statsIntervalMs: 10_000,
    ...extra,
  }
}
