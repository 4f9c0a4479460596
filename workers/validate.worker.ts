// Validation worker (one per shard of the ShardedPool). All frames of a DID reach the same worker in
// order, so this thread owns the in-memory state of its DIDs: identity cache, account cache, repo
// status backoff. Its default export takes a ShardTask<FrameMeta> and returns one FrameResult per
// frame, in order, or a control message `{control: ValidatorControl}`.
//
// workerData = { shard, shards, data: ValidatorWorkerConfig } (validatorWorkerConfig() builds `data`).
// Tests and benchmarks may import this module in-process and call initValidatorWorker() first.
import { getHeapStatistics } from 'node:v8'
import { BroadcastChannel, workerData } from 'node:worker_threads'
import { createPool, type Pool } from '../src/core/db.ts'
import { createLogger, type Logger } from '../src/core/log.ts'
import type { ShardTask } from '../src/pool/sharded-pool.ts'
import type { FrameMeta, FrameResult } from '../src/pool/types.ts'
import { SafeDialer, policyFromConfig } from '../src/subscriber/ssrf.ts'
import { PgAccountStore } from '../src/validator/accounts/store.ts'
import { RepoStatusChecker, createHttpRepoStatusFetcher } from '../src/validator/accounts/repo-status.ts'
import { createHttpDocFetcher } from '../src/validator/identity/http.ts'
import { IdentityResolver } from '../src/validator/identity/resolver.ts'
import { k256Backend, k256BackendError } from '../src/validator/keys.ts'
import { FrameProcessor } from '../src/validator/processor.ts'
import {
  STATS_CHANNEL,
  type ValidatorControl,
  type ValidatorStatsSnapshot,
  type ValidatorWorkerConfig,
} from '../src/validator/worker-config.ts'

export interface ValidatorWorkerData {
  shard: number
  shards: number
  data: ValidatorWorkerConfig
}

export interface ValidatorWorkerState {
  shard: number
  processor: FrameProcessor
  identity: IdentityResolver
  db: Pool
  dialer: SafeDialer
  log: Logger
  channel: BroadcastChannel
  timer: NodeJS.Timeout | null
}

let state: ValidatorWorkerState | null = null

export function initValidatorWorker(init: ValidatorWorkerData): ValidatorWorkerState {
  if (state) return state
  const cfg = init.data
  const log = createLogger(cfg.logLevel, { pretty: false }).child({ worker: 'validate', shard: init.shard })
  const db = createPool(cfg.database, { max: cfg.dbPoolSize, log, name: `relay-validator-${init.shard}` })
  const dialer = new SafeDialer({
    policy: policyFromConfig(cfg.allowInsecureHosts),
    connectTimeoutMs: cfg.resolveTimeoutMs,
    headersTimeoutMs: cfg.resolveTimeoutMs,
    bodyTimeoutMs: cfg.resolveTimeoutMs,
    userAgent: cfg.userAgent,
  })
  const identity = new IdentityResolver({
    fetch: createHttpDocFetcher({
      plcUrl: cfg.plcUrl,
      allowInsecureHosts: cfg.allowInsecureHosts,
      dispatcher: dialer.dispatcher(),
      timeoutMs: cfg.resolveTimeoutMs,
      userAgent: cfg.userAgent,
    }),
    cacheSize: cfg.identityCacheSize,
    ttlMs: cfg.identityCacheTtlMs,
    negativeTtlMs: cfg.identityNegativeTtlMs,
    concurrency: cfg.resolveConcurrency,
  })
  const repoStatus = new RepoStatusChecker({
    fetch: createHttpRepoStatusFetcher({ dialer, timeoutMs: cfg.resolveTimeoutMs, userAgent: cfg.userAgent }),
    minIntervalMs: cfg.repoStatusRecheckMs,
    maxIntervalMs: cfg.repoStatusMaxIntervalMs,
  })
  // Errors are rare and each is a dropped frame: log every one, they are worth reading.
  const processor = new FrameProcessor({
    identity,
    store: new PgAccountStore(db),
    repoStatus,
    accountCacheSize: cfg.accountCacheSize,
    strictChain: cfg.strictChain,
    refreshIntervalMs: cfg.identityRefreshIntervalMs,
    didConcurrency: cfg.didConcurrency,
    onError: (err, ctx) => log.warn({ err, ...ctx }, 'validation failed unexpectedly'),
  })
  const channel = new BroadcastChannel(STATS_CHANNEL)
  channel.unref()
  const s: ValidatorWorkerState = { shard: init.shard, processor, identity, db, dialer, log, channel, timer: null }
  if (cfg.statsIntervalMs > 0) {
    s.timer = setInterval(() => postStats(s), cfg.statsIntervalMs)
    s.timer.unref()
  }
  log.debug({ k256Backend }, 'validation worker ready')
  if (k256Backend !== 'libsecp256k1' && init.shard === 0) {
    // once per pool, not per worker; `node native/k256/build.mjs` builds the addon and says why not
    log.warn(
      { k256Backend, reason: k256BackendError },
      'K-256 signatures use a slower fallback backend: the libsecp256k1 addon did not load',
    )
  }
  state = s
  return s
}

/** In-process users (tests, benchmarks): release the pool, sockets and channel. */
export async function closeValidatorWorker(): Promise<void> {
  const s = state
  state = null
  if (!s) return
  if (s.timer) clearInterval(s.timer)
  s.channel.close()
  await Promise.all([s.db.end(), s.dialer.close()])
}

function snapshot(s: ValidatorWorkerState): ValidatorStatsSnapshot {
  const heap = getHeapStatistics()
  return {
    shard: s.shard,
    at: Date.now(),
    k256Backend,
    heapUsedBytes: heap.used_heap_size,
    heapTotalBytes: heap.total_heap_size,
    ...s.processor.stats(),
  }
}

function postStats(s: ValidatorWorkerState): ValidatorStatsSnapshot {
  const snap = snapshot(s)
  s.channel.postMessage(snap)
  return snap
}

function control(s: ValidatorWorkerState, msg: ValidatorControl): unknown {
  switch (msg?.type) {
    case 'purge':
      s.processor.purge(msg.did)
      return { ok: true }
    case 'invalidateAccount':
      s.processor.invalidateAccount(msg.did)
      return { ok: true }
    case 'stats':
      return postStats(s)
    default:
      return { ok: false, error: 'unknown control message' }
  }
}

function current(): ValidatorWorkerState {
  if (state) return state
  if (!workerData || typeof workerData !== 'object' || !('data' in workerData)) {
    throw new Error('validation worker started without workerData; call initValidatorWorker() first')
  }
  return initValidatorWorker(workerData as ValidatorWorkerData)
}

export default async function validate(task: ShardTask<FrameMeta> | { control: ValidatorControl }): Promise<FrameResult[] | unknown> {
  const s = current()
  if ('control' in task) return control(s, task.control)
  const n = task.metas.length
  const frames: Uint8Array[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const start = task.offsets[2 * i]!
    frames[i] = new Uint8Array(task.buffer, start, task.offsets[2 * i + 1]! - start)
  }
  return s.processor.processBatch(frames, task.metas)
}
