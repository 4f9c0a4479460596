/**
 * Prometheus metrics of the broadcaster. No per-consumer labels: every label has a fixed, small
 * value set. Hot-path counts are kept in plain numbers (`BroadcasterStats`) and copied into the
 * registry at scrape time, so delivering a frame to a consumer costs an addition, not a
 * label-hash lookup.
 */
import client from 'prom-client'
import type { Registry } from 'prom-client'
import type { ReplayCacheStats } from './replay-cache.ts'

export type SendSource = 'live' | 'ring' | 'store'
export type KickReason = 'too_slow' | 'dead' | 'store_error' | 'shutdown'
export type RejectReason = 'bad_cursor' | 'ip_limit' | 'method' | 'future_cursor'
export type ConnectOutcome = 'live' | 'replay_ring' | 'replay_store' | 'outdated'

export class BroadcasterStats {
  framesSent = { live: 0, ring: 0, store: 0 }
  bytesSent = { live: 0, ring: 0, store: 0 }
  storeReads = 0
  storeReadErrors = 0
  broadcasts = 0
  switchedToCatchup = 0
  rejoinedLive = 0
}

export interface BroadcasterGaugeSource {
  consumerCounts(): { live: number; catchup: number }
  /** bytes queued in consumer sockets' userland write buffers: total and the largest one */
  socketBacklog(): { total: number; max: number }
  ringFrames(): number
  ringBytes(): number
  ringEvicted(): number
  headSeq(): number
  /** undefined when there is no event log or the cache is off */
  replayCache(): ReplayCacheStats | undefined
}

export interface BroadcasterMetrics {
  kicks: client.Counter<'reason'>
  rejects: client.Counter<'reason'>
  connects: client.Counter<'outcome'>
  lag: client.Histogram<'mode'>
}

/** Registers the broadcaster's metrics on `registry`. Call once per registry. */
export function createBroadcasterMetrics(registry: Registry, stats: BroadcasterStats, src: BroadcasterGaugeSource): BroadcasterMetrics {
  const registers = [registry]

  new client.Gauge({
    name: 'relay_firehose_consumers_connected',
    help: 'Firehose consumers connected',
    registers,
    collect() {
      const c = src.consumerCounts()
      this.set(c.live + c.catchup)
    },
  })
  new client.Gauge({
    name: 'relay_firehose_consumers',
    help: 'Firehose consumers by delivery mode (live pushes vs catch-up from ring/log)',
    labelNames: ['mode'],
    registers,
    collect() {
      const c = src.consumerCounts()
      this.set({ mode: 'live' }, c.live)
      this.set({ mode: 'catchup' }, c.catchup)
    },
  })

  // Frames waiting in a socket's userland buffer are the one consumer-side buffer not counted by
  // the ring or the replay cache: each is capped per consumer (soft/hard limits), so the total is
  // bounded by consumers × those limits, and this shows how close to that a relay runs.
  new client.Gauge({
    name: 'relay_firehose_socket_backlog_bytes',
    help: 'Bytes queued in consumer sockets not yet accepted by the kernel: total over consumers, and the largest single one',
    labelNames: ['stat'],
    registers,
    collect() {
      const b = src.socketBacklog()
      this.set({ stat: 'total' }, b.total)
      this.set({ stat: 'max' }, b.max)
    },
  })

  counterFromStats(
    registers,
    'relay_firehose_frames_sent_total',
    'Frames written to consumer sockets, by where they were read from',
    () => stats.framesSent,
  )
  counterFromStats(
    registers,
    'relay_firehose_bytes_sent_total',
    'Bytes (incl. WebSocket framing) written to consumer sockets, by where they were read from',
    () => stats.bytesSent,
  )
  counterFromStats(
    registers,
    'relay_firehose_store_reads_total',
    'Event-log pages read for catch-up/replay',
    () => ({ ok: stats.storeReads, error: stats.storeReadErrors }),
    'result',
  )
  counterFromStats(
    registers,
    'relay_firehose_replay_cache_requests_total',
    'Catch-up page requests by outcome: served from a page another consumer read (hit), after joining its query (joined, also a hit or miss after), or read from Postgres (miss)',
    () => {
      const s = src.replayCache()
      return { hit: s?.hits ?? 0, joined: s?.joined ?? 0, miss: s?.misses ?? 0 }
    },
    'result',
  )
  new client.Gauge({
    name: 'relay_firehose_replay_cache_bytes',
    help: 'Frame bytes of event-log pages kept for catch-up consumers (capped by RELAY_REPLAY_CACHE_BYTES)',
    registers,
    collect() {
      this.set(src.replayCache()?.bytes ?? 0)
    },
  })
  counterFromStats(
    registers,
    'relay_firehose_mode_switches_total',
    'Consumers moved between live and catch-up',
    () => ({ to_catchup: stats.switchedToCatchup, to_live: stats.rejoinedLive }),
    'direction',
  )
  counterFromStats(
    registers,
    'relay_firehose_broadcast_frames_total',
    'Frames passed to broadcast()',
    () => ({ all: stats.broadcasts }),
    null,
  )

  new client.Gauge({
    name: 'relay_firehose_ring_frames',
    help: 'Frames held in the broadcast ring buffer',
    registers,
    collect() {
      this.set(src.ringFrames())
    },
  })
  new client.Gauge({
    name: 'relay_firehose_ring_bytes',
    help: 'Bytes held in the broadcast ring buffer',
    registers,
    collect() {
      this.set(src.ringBytes())
    },
  })
  new client.Gauge({
    name: 'relay_firehose_ring_evicted_frames',
    help: 'Frames evicted from the ring buffer since start',
    registers,
    collect() {
      this.set(src.ringEvicted())
    },
  })
  new client.Gauge({
    name: 'relay_firehose_head_seq',
    help: 'Newest seq broadcast',
    registers,
    collect() {
      this.set(src.headSeq())
    },
  })

  return {
    kicks: new client.Counter({
      name: 'relay_firehose_consumer_kicks_total',
      help: 'Consumers disconnected by the relay, by reason',
      labelNames: ['reason'],
      registers,
    }),
    rejects: new client.Counter({
      name: 'relay_firehose_connection_rejects_total',
      help: 'Subscription attempts refused, by reason',
      labelNames: ['reason'],
      registers,
    }),
    connects: new client.Counter({
      name: 'relay_firehose_connections_total',
      help: 'Accepted subscriptions, by how they start',
      labelNames: ['outcome'],
      registers,
    }),
    lag: new client.Histogram({
      name: 'relay_firehose_consumer_lag_events',
      help: 'Consumer lag in events (head seq minus last seq sent), sampled once per check interval per consumer',
      labelNames: ['mode'],
      buckets: [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000],
      registers,
    }),
  }
}

function counterFromStats(
  registers: Registry[],
  name: string,
  help: string,
  read: () => Record<string, number>,
  label: string | null = 'source',
): void {
  const reported: Record<string, number> = {}
  new client.Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers,
    collect() {
      const now = read()
      for (const k of Object.keys(now)) {
        const delta = now[k]! - (reported[k] ?? 0)
        if (delta > 0) {
          if (label) this.inc({ [label]: k }, delta)
          else this.inc(delta)
        } else if (reported[k] === undefined) {
          if (label) this.inc({ [label]: k }, 0)
          else this.inc(0)
        }
        reported[k] = now[k]!
      }
    },
  })
}
