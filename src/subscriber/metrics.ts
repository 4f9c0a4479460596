// Subscriber metrics. Counters are labelled by small fixed vocabularies; per-host figures (lag,
// time since the last event, events/s) are exported only for the TOP_N worst/busiest hosts at
// each scrape: the gauge is reset in collect(), so a host that leaves the top N loses its series
// instead of leaving thousands of stale series behind.

import { Counter, Gauge, type Registry } from 'prom-client'
import type { HostStatus } from './host-registry.ts'
import type { RateTier } from './rate-limit.ts'

export const TOP_N = 20

/** Live per-host figures the metrics read at scrape time. */
export interface HostStatsSource {
  hostname: string
  status: HostStatus
  connected: boolean
  paused: boolean
  /** events accepted from the socket since start */
  events: number
  /** ms epoch when the last event was read, or null */
  lastEventAt: number | null
  /** the last event's own `time` field (ISO string as sent), or null */
  lastEventTime: string | null
  /** bytes received but not yet processed (frames queued while paused) */
  bufferedBytes: number
}

export type UpstreamDropReason = 'duplicate_seq' | 'decreasing_seq' | 'oversize' | 'undecodable' | 'text_frame' | 'cursor_tracker_full'

export type ReconnectCause =
  | 'dial_failed'
  | 'dropped'
  | 'framing'
  | 'ping_timeout'
  | 'frame_too_large'
  | 'error_frame'
  | 'consumer_too_slow'
  | 'future_cursor'
  | 'revived'

function topN<T>(items: T[], score: (t: T) => number, n: number): Array<[T, number]> {
  const scored: Array<[T, number]> = []
  for (const it of items) {
    const s = score(it)
    if (Number.isFinite(s)) scored.push([it, s])
  }
  scored.sort((a, b) => b[1] - a[1])
  return scored.slice(0, n)
}

export class SubscriberMetrics {
  readonly frames: Counter<'type'>
  readonly drops: Counter<'reason'>
  readonly reconnects: Counter<'cause'>
  readonly rateLimitWaits: Counter<'tier'>
  readonly rateLimitWaitSeconds: Counter<'tier'>
  readonly backpressureWaits: Counter
  readonly backpressureWaitSeconds: Counter
  readonly cursorResets: Counter<'reason'>
  readonly infos: Counter<'name'>
  readonly submitFailures: Counter
  readonly crawlRequests: Counter<'outcome'>

  constructor(registry: Registry, hosts: () => Iterable<HostStatsSource>, inFlight: () => number) {
    const r = [registry]
    this.frames = new Counter({
      name: 'relay_upstream_frames_total',
      help: 'Frames read from upstream hosts, by message type',
      labelNames: ['type'],
      registers: r,
    })
    this.drops = new Counter({
      name: 'relay_upstream_dropped_total',
      help: 'Upstream frames dropped by the subscriber before validation, by reason',
      labelNames: ['reason'],
      registers: r,
    })
    this.reconnects = new Counter({
      name: 'relay_upstream_reconnects_total',
      help: 'Upstream connections ended and redialled, by cause',
      labelNames: ['cause'],
      registers: r,
    })
    this.rateLimitWaits = new Counter({
      name: 'relay_upstream_rate_limit_waits_total',
      help: 'Times a host socket was paused by its event rate limit, by the window that throttled',
      labelNames: ['tier'],
      registers: r,
    })
    this.rateLimitWaitSeconds = new Counter({
      name: 'relay_upstream_rate_limit_wait_seconds_total',
      help: 'Time host sockets spent paused by rate limits, by window',
      labelNames: ['tier'],
      registers: r,
    })
    this.backpressureWaits = new Counter({
      name: 'relay_upstream_backpressure_waits_total',
      help: 'Times a host socket was paused because the pipeline (pool shard or sequencer) was full',
      registers: r,
    })
    this.backpressureWaitSeconds = new Counter({
      name: 'relay_upstream_backpressure_wait_seconds_total',
      help: 'Time host sockets spent paused by pipeline backpressure',
      registers: r,
    })
    this.cursorResets = new Counter({
      name: 'relay_upstream_cursor_resets_total',
      help: 'Host cursors abandoned for the live head, by reason (stale, future_cursor, seq_went_backwards)',
      labelNames: ['reason'],
      registers: r,
    })
    this.infos = new Counter({
      name: 'relay_upstream_info_total',
      help: 'Upstream #info messages, by name',
      labelNames: ['name'],
      registers: r,
    })
    this.submitFailures = new Counter({
      name: 'relay_upstream_submit_failures_total',
      help: 'Frames whose hand-off to the pipeline failed (their seq stays below the saved cursor and is fetched again)',
      registers: r,
    })
    this.crawlRequests = new Counter({
      name: 'relay_request_crawl_total',
      help: 'requestCrawl calls by outcome',
      labelNames: ['outcome'],
      registers: r,
    })

    new Gauge({
      name: 'relay_upstream_hosts',
      help: 'Known upstream hosts by status',
      labelNames: ['status'],
      registers: r,
      collect() {
        const counts: Record<HostStatus, number> = { active: 0, idle: 0, offline: 0, throttled: 0, banned: 0 }
        for (const h of hosts()) counts[h.status]++
        for (const [s, n] of Object.entries(counts)) this.set({ status: s }, n)
      },
    })
    new Gauge({
      name: 'relay_upstream_hosts_connected',
      help: 'Upstream hosts with an open subscription',
      registers: r,
      collect() {
        let n = 0
        for (const h of hosts()) if (h.connected) n++
        this.set(n)
      },
    })
    new Gauge({
      name: 'relay_upstream_hosts_paused',
      help: 'Upstream sockets currently paused (rate limit or backpressure)',
      registers: r,
      collect() {
        let n = 0
        for (const h of hosts()) if (h.paused) n++
        this.set(n)
      },
    })
    new Gauge({
      name: 'relay_upstream_buffered_bytes',
      help: 'Frame bytes read from upstream sockets but not yet handed to the pipeline',
      registers: r,
      collect() {
        let n = 0
        for (const h of hosts()) n += h.bufferedBytes
        this.set(n)
      },
    })
    new Gauge({
      name: 'relay_upstream_in_flight_frames',
      help: 'Upstream frames handed to the pipeline and not yet persisted or dropped',
      registers: r,
      collect() {
        this.set(inFlight())
      },
    })
    new Gauge({
      name: 'relay_upstream_host_lag_seconds',
      help: `Now minus the \`time\` of the last event from a host (top ${TOP_N} connected hosts)`,
      labelNames: ['host'],
      registers: r,
      collect() {
        this.reset()
        const now = Date.now()
        const list = [...hosts()].filter((h) => h.connected && h.lastEventTime !== null)
        for (const [h, lag] of topN(list, (h) => (now - Date.parse(h.lastEventTime!)) / 1000, TOP_N)) this.set({ host: h.hostname }, lag)
      },
    })
    new Gauge({
      name: 'relay_upstream_host_seconds_since_event',
      help: `Seconds since the last event was read from a host (top ${TOP_N} connected hosts)`,
      labelNames: ['host'],
      registers: r,
      collect() {
        this.reset()
        const now = Date.now()
        const list = [...hosts()].filter((h) => h.connected)
        for (const [h, s] of topN(list, (h) => (h.lastEventAt === null ? Number.POSITIVE_INFINITY : (now - h.lastEventAt) / 1000), TOP_N)) {
          this.set({ host: h.hostname }, s)
        }
        // Connected hosts that never sent anything are reported with the time since start of
        // connection elsewhere (relay_upstream_hosts_connected); Infinity is not exported.
      },
    })
    // events/s per host between two scrapes (a scrape-driven rate, like a counter's rate()).
    let prev = new Map<string, number>()
    let prevAt = Date.now()
    new Gauge({
      name: 'relay_upstream_host_events_per_second',
      help: `Events per second from a host since the previous scrape (top ${TOP_N} hosts)`,
      labelNames: ['host'],
      registers: r,
      collect() {
        this.reset()
        const now = Date.now()
        const dt = Math.max(0.001, (now - prevAt) / 1000)
        const next = new Map<string, number>()
        const rates: Array<{ host: string; rate: number }> = []
        for (const h of hosts()) {
          next.set(h.hostname, h.events)
          const before = prev.get(h.hostname)
          if (before !== undefined && h.events > before) rates.push({ host: h.hostname, rate: (h.events - before) / dt })
        }
        prev = next
        prevAt = now
        for (const [x, rate] of topN(rates, (x) => x.rate, TOP_N)) this.set({ host: x.host }, rate)
      },
    })
  }

  rateLimited(tier: RateTier, waitMs: number): void {
    this.rateLimitWaits.inc({ tier })
    this.rateLimitWaitSeconds.inc({ tier }, waitMs / 1000)
  }
}
