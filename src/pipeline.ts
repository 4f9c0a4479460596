// The ingest → validate → persist → broadcast pipeline, assembled from the stage modules:
// subscriber (src/subscriber) → pool (src/pool) → validator (src/validator, in workers/) →
// store (src/store) → broadcaster (src/broadcaster), plus the XRPC/admin API (src/api).
//
// Start order: event log, broadcaster, sequencer, pool, subscriber. Components stop in reverse,
// which is exactly the shutdown the relay promises: stop reading upstream sockets and wait for the
// frames already handed off to be validated and persisted, drain the pool, flush the sequencer
// (events and host cursors), then close consumers (1012, so they reconnect), then stop pruning.

import os from 'node:os'
import { Counter, Histogram, type Registry } from 'prom-client'
import { registerApi } from './api/index.ts'
import type { RelayControl } from './api/control.ts'
import { accountView } from './api/account-status.ts'
import { Broadcaster, SUBSCRIBE_REPOS_PATH } from './broadcaster/broadcaster.ts'
import { WS_MAX_HEADER_BYTES } from './broadcaster/frames.ts'
import { ShardedPool } from './pool/sharded-pool.ts'
import type { FrameMeta, FrameResult } from './pool/types.ts'
import type { Component, RelayContext } from './relay.ts'
import { EventLog } from './store/event-log.ts'
import { Sequencer, type PersistedEvent } from './store/sequencer.ts'
import { createSubscriberComponent, type SubscriberComponent } from './subscriber/component.ts'
import { CursorRegistry, type IngestSink } from './subscriber/ingest.ts'
import { encodeAccountFrame } from './validator/encode.ts'
import { ValidatorStatsCollector } from './validator/stats.ts'
import { validatorWorkerConfig } from './validator/worker-config.ts'

/** Accepted events waiting this long for a commit make the relay not ready. */
const INGEST_STALL_MS = 30_000

export const WORKER_FILE = new URL('../workers/validate.worker.ts', import.meta.url).href

/**
 * Auto: one worker per core. The main thread only moves bytes (a quarter of a core at
 * saturation in the load benchmark), so reserving a whole core for it leaves CPU idle while
 * validation is the bottleneck.
 */
export function workerCount(configured: number): number {
  if (configured > 0) return configured
  return Math.max(1, os.availableParallelism())
}

interface Outcomes {
  accepted: Counter<'kind'>
  dropped: Counter<'reason'>
  ignored: Counter<'reason'>
  chainBreaks: Counter
  latency: Histogram<'stage'>
}

function outcomeMetrics(registry: Registry): Outcomes {
  return {
    accepted: new Counter({
      name: 'relay_events_accepted_total',
      help: 'Events that passed validation and were persisted, by kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    dropped: new Counter({
      name: 'relay_events_dropped_total',
      help: 'Events rejected by validation, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    ignored: new Counter({
      name: 'relay_events_ignored_total',
      help: 'Frames with nothing to persist (#info, unknown message types)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    chainBreaks: new Counter({
      name: 'relay_chain_breaks_total',
      help: 'Accepted commits whose since/prevData did not continue the stored repo state (a gap, not an invalid commit)',
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'relay_ingest_latency_seconds',
      help: 'Time since the subscriber read an accepted frame: validated = its worker result is back, broadcast = persisted and handed to consumers',
      labelNames: ['stage'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    }),
  }
}

export async function pipelineComponents(ctx: RelayContext): Promise<Component[]> {
  const { config, registry, db, api } = ctx
  const log = ctx.log
  const outcomes = outcomeMetrics(registry)

  const eventLog = new EventLog({
    db,
    log: log.child({ stage: 'store' }),
    registry,
    retentionMs: config.replayWindow,
    pruneIntervalMs: config.pruneInterval,
  })

  // The broadcaster is created at start, once the log's head is known.
  let broadcaster!: Broadcaster
  const cursors = new CursorRegistry()
  const sequencer = new Sequencer({
    db,
    log: log.child({ stage: 'store' }),
    registry,
    initialSeq: config.initialSeq,
    maxBatchEvents: config.persistBatchEvents,
    maxBatchDelayMs: config.persistBatchDelay,
    maxPendingBytes: config.persistMaxPendingBytes,
    frameHeadroom: WS_MAX_HEADER_BYTES,
    cursorProvider: (seqs, pinned) => cursors.cursorsFor(seqs, pinned),
    onPersisted: (events: PersistedEvent[]) => broadcaster.broadcastMany(events),
    onCommitted: (batch) => {
      lastCommitAt = Date.now()
      cursors.committed(batch.seqsByHost, batch.pinnedByHost)
    },
  })
  // Ingest health for /_readyz: accepted events that cannot be persisted (Postgres refusing
  // writes, a stuck transaction) mean the relay is not serving a current firehose.
  let lastCommitAt = Date.now()
  ctx.readiness.add('ingest', () => {
    const stalledMs = Date.now() - lastCommitAt
    if (sequencer.pendingEvents > 0 && stalledMs > INGEST_STALL_MS) {
      return { ok: false, reason: `${sequencer.pendingEvents} accepted events not persisted for ${Math.round(stalledMs / 1000)} s` }
    }
    return { ok: true }
  })

  const stats = new ValidatorStatsCollector()
  stats.register(registry)
  const pool = new ShardedPool<FrameMeta, FrameResult>({
    filename: WORKER_FILE,
    shards: workerCount(config.workers),
    maxQueueBytes: config.workerQueueBytes,
    maxBatchFrames: config.workerBatchFrames,
    maxBatchBytes: config.workerBatchBytes,
    workerData: validatorWorkerConfig(config, ctx.dbConnection),
    registry,
    log: log.child({ stage: 'pool' }),
    crashResult: (_meta, err) => ({ kind: 'drop', reason: 'worker_crash', detail: err.message }),
  })

  const sink: IngestSink = {
    hasRoom: (did, bytes) => pool.hasRoom(did, bytes) && sequencer.hasRoom(),
    async waitForRoom(did, bytes) {
      await pool.waitForRoom(did, bytes)
      await sequencer.waitForRoom()
    },
    async submit(did, frame, meta) {
      const result = await pool.submit(did, frame, meta)
      switch (result.kind) {
        case 'accept':
          outcomes.latency.observe({ stage: 'validated' }, (Date.now() - meta.receivedAt) / 1000)
          // Called in pool result order (per-DID order); submit enqueues synchronously.
          await sequencer.submit(result.event)
          outcomes.latency.observe({ stage: 'broadcast' }, (Date.now() - meta.receivedAt) / 1000)
          outcomes.accepted.inc({ kind: result.event.kind })
          if (result.chainBreak) outcomes.chainBreaks.inc()
          break
        case 'drop':
          outcomes.dropped.inc({ reason: result.reason })
          break
        case 'ignore':
          outcomes.ignored.inc({ reason: result.reason })
          break
      }
      return result
    },
  }

  let subscriber!: SubscriberComponent
  const control: RelayControl = {
    connectedHosts: () => subscriber.connectedHosts(),
    disconnectHost: (hostname) => subscriber.disconnectHost(hostname),
    connectHost: (hostname) => subscriber.connectHost(hostname),
    requestCrawl: async (hostname, opts) => {
      await subscriber.requestCrawl(hostname, opts)
    },
    setHostLimits: (hostname, limit) => subscriber.setHostLimits(hostname, limit),
    async emitAccountStatus(did) {
      const { rows } = await db.query('SELECT status, upstream_status, desynchronized FROM account WHERE did = $1', [did])
      if (!rows[0]) return
      const view = accountView(rows[0])
      const { frame, seqOffset } = encodeAccountFrame({
        did,
        time: new Date().toISOString(),
        active: view.active,
        status: view.status ?? null,
      })
      await sequencer.submit({ did, kind: 'account', frame, seqOffset })
      outcomes.accepted.inc({ kind: 'account' })
    },
    async hideAccountEvents(did) {
      // Everything accepted so far must be in the log before it is pruned of this account.
      await sequencer.flush()
      broadcaster.hideDid(did)
      await eventLog.hideAccount(did)
    },
    async invalidateAccount(did) {
      const answers = await pool.broadcast({ type: 'invalidateAccount', did })
      const failed = answers.find((a) => (a as { ok?: boolean } | undefined)?.ok === false)
      if (failed) throw new Error(`a validation worker refused the account invalidation: ${JSON.stringify(failed)}`)
    },
    consumers: () =>
      broadcaster.consumers().map((c) => ({
        id: c.id,
        remote_addr: c.ip,
        user_agent: c.userAgent,
        events_consumed: c.framesSent,
        connected_at: new Date(c.connectedAt).toISOString(),
      })),
    hostStats: (hostname) => {
      const info = subscriber.hostInfo(hostname)
      if (!info) return undefined
      return info as ReturnType<NonNullable<RelayControl['hostStats']>>
    },
  }
  const { settings } = registerApi(api, { db, config, control, log: log.child({ stage: 'api' }), registry })
  subscriber = createSubscriberComponent(ctx, sink, { cursors, settings })

  return [
    { name: 'event-log', start: () => eventLog.start(), stop: () => eventLog.stop() },
    {
      name: 'broadcaster',
      async start() {
        broadcaster = new Broadcaster({
          registry,
          store: eventLog,
          headSeq: await eventLog.headSeq(),
          ringMaxFrames: config.ringMaxFrames,
          ringMaxBytes: config.ringMaxBytes,
          softLimitBytes: config.consumerSoftLimit,
          hardLimitBytes: config.consumerHardLimit,
          tooSlowMs: config.consumerTooSlowAfter,
          pingIntervalMs: config.consumerPingInterval,
          maxConnectionsPerIp: config.maxConsumersPerIp,
          storePageSize: config.replayPageSize,
          replayCacheBytes: config.replayCacheBytes,
          logger: log.child({ stage: 'broadcaster' }),
        })
        api.upgrade(SUBSCRIBE_REPOS_PATH, (req, socket, head) => broadcaster.handleUpgrade(req, socket, head))
      },
      stop: () => broadcaster.closeAll(),
    },
    { name: 'sequencer', start: () => sequencer.start(), stop: () => sequencer.close() },
    {
      name: 'pool',
      // Start every worker now rather than on its first frame: a worker that cannot start fails
      // the relay at boot, and the K-256 backend in use is visible in /metrics immediately.
      start: async () => {
        await pool.broadcast({ type: 'stats' })
      },
      stop: () => pool.close(),
    },
    subscriber,
  ]
}
