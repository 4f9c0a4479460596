// Owns one HostSubscriber per non-banned host: startup (staggered), admission callbacks,
// operator actions (the methods src/api's RelayControl needs), liveness ticks, periodic
// `last_event_at` writes, and the graceful stop that waits for in-flight frames so the final
// cursors cover them.

import type { Logger } from '../core/log.ts'
import { startupStagger } from './backoff.ts'
import type { Crawler, CrawlOptions, CrawlOutcome } from './crawl.ts'
import { errorText, type HostRecord, type HostRegistry, type HostStatus } from './host-registry.ts'
import type { CursorRegistry, IngestSink } from './ingest.ts'
import type { HostStatsSource, SubscriberMetrics } from './metrics.ts'
import { computeHostLimits, type RateLimits, type TrustedDomains } from './rate-limit.ts'
import type { SafeDialer } from './ssrf.ts'
import { HostSubscriber, type SubscriberSettings } from './subscriber.ts'

export interface ManagerOptions {
  hosts: HostRegistry
  sink: IngestSink
  cursors: CursorRegistry
  dialer: SafeDialer
  metrics: SubscriberMetrics
  log: Logger
  trusted: TrustedDomains
  settings: SubscriberSettings
  /** startup connects are spread over min(this, hosts × 20 ms) */
  startupWindowMs: number
  offlineRetryMs: number
  lastEventFlushMs?: number
  now?: () => number
  random?: () => number
  /** override of the rate limits per host (tests, benchmarks); default computeHostLimits */
  limits?: (host: HostRecord) => RateLimits
}

/** Per-host live figures for the admin API (`/admin/pds/list`). */
export interface HostLiveInfo {
  connected: boolean
  paused: boolean
  eventsSeenSinceStartup: number
  limits: RateLimits
}

export class SubscriberManager {
  private readonly o: ManagerOptions
  private readonly log: Logger
  private readonly subs = new Map<string, HostSubscriber>()
  /** banned hosts are known (for the status gauge) but have no subscriber */
  private readonly banned = new Map<string, HostStatsSource>()
  private readonly now: () => number
  private readonly random: () => number
  private tickTimer: NodeJS.Timeout | null = null
  private flushTimer: NodeJS.Timeout | null = null
  private readonly pending = new Set<Promise<unknown>>()
  private flushedEventAt = new Map<number, number>()
  private stopping = false
  crawler: Crawler | null = null

  constructor(opts: ManagerOptions) {
    this.o = opts
    this.log = opts.log
    this.now = opts.now ?? Date.now
    this.random = opts.random ?? Math.random
  }

  /** Live stats of every known host (metrics). */
  *stats(): Iterable<HostStatsSource> {
    yield* this.subs.values()
    yield* this.banned.values()
  }

  get(hostname: string): HostSubscriber | undefined {
    return this.subs.get(hostname)
  }

  limitsFor(host: HostRecord): RateLimits {
    if (this.o.limits) return this.o.limits(host)
    return computeHostLimits(host.accountLimit, host.trusted || this.o.trusted.matches(host.hostname))
  }

  /** Load hosts and schedule their connects (staggered). */
  async start(): Promise<void> {
    const all = await this.o.hosts.list()
    const connect: HostSubscriber[] = []
    for (const h of all) {
      if (h.status === 'banned') {
        this.markBanned(h)
        continue
      }
      const sub = this.add(h)
      if (h.status === 'offline') {
        // Dead hosts get one attempt somewhere within the offline retry interval, not a storm at boot.
        sub.start(Math.floor(this.random() * this.o.offlineRetryMs))
      } else {
        connect.push(sub)
      }
    }
    const window = Math.min(this.o.startupWindowMs, connect.length * 20)
    const offsets = startupStagger(connect.length, window, this.random)
    connect.forEach((s, i) => s.start(offsets[i]!))
    const interval = this.o.settings.pingIntervalMs
    this.tickTimer = setInterval(() => {
      const now = this.now()
      for (const s of this.subs.values()) s.tick(now)
    }, interval)
    this.tickTimer.unref()
    const flushMs = this.o.lastEventFlushMs ?? 30_000
    this.flushTimer = setInterval(() => void this.flushLastEvents(), flushMs)
    this.flushTimer.unref()
    this.log.info({ hosts: all.length, connecting: connect.length, windowMs: window }, 'upstream subscriptions scheduled')
  }

  /**
   * Stop reading from every host (close 1000), then wait for the frames already handed to the
   * pipeline to settle, so the sequencer's final cursor flush covers them.
   */
  async stop(drainTimeoutMs = 15_000): Promise<void> {
    this.stopping = true
    if (this.tickTimer) clearInterval(this.tickTimer)
    if (this.flushTimer) clearInterval(this.flushTimer)
    await Promise.all([...this.subs.values()].map((s) => s.disconnect()))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), drainTimeoutMs)
    })
    const settled = (async () => {
      while (this.pending.size > 0) await Promise.allSettled([...this.pending])
      return 'ok' as const
    })()
    const r = await Promise.race([settled, timeout])
    clearTimeout(timer)
    if (r === 'timeout') this.log.warn({ pending: this.pending.size }, 'frames still in the pipeline after the drain timeout')
    await this.flushLastEvents()
  }

  /** In-flight submits (for tests and the drain). */
  get pendingSubmits(): number {
    return this.pending.size
  }

  private trackSubmit = (p: Promise<unknown>): void => {
    this.pending.add(p)
    void p.finally(() => this.pending.delete(p))
  }

  private add(h: HostRecord): HostSubscriber {
    const existing = this.subs.get(h.hostname)
    if (existing) return existing
    this.banned.delete(h.hostname)
    const sub = new HostSubscriber(h, this.limitsFor(h), {
      sink: this.o.sink,
      cursors: this.o.cursors,
      hosts: this.o.hosts,
      dialer: this.o.dialer,
      metrics: this.o.metrics,
      log: this.log,
      settings: this.o.settings,
      now: this.now,
      random: this.random,
      trackSubmit: this.trackSubmit,
      onStatus: (s, status) => this.onStatus(s, status),
    })
    this.subs.set(h.hostname, sub)
    return sub
  }

  private markBanned(h: HostRecord): void {
    this.banned.set(h.hostname, {
      hostname: h.hostname,
      status: 'banned',
      connected: false,
      paused: false,
      events: 0,
      lastEventAt: null,
      lastEventTime: null,
      bufferedBytes: 0,
    })
  }

  private onStatus(sub: HostSubscriber, status: HostStatus): void {
    if (status === 'banned') {
      this.subs.delete(sub.hostname)
      this.markBanned(sub.host)
    }
  }

  // ---- admission callbacks (Crawler) ----------------------------------------------------------

  onAdmitted(host: HostRecord): void {
    if (this.stopping) return
    this.add(host).start(0)
  }

  onKnown(host: HostRecord): void {
    if (this.stopping) return
    const sub = this.subs.get(host.hostname)
    if (!sub) {
      this.add(host).start(0)
      return
    }
    // The row is the truth for what operators changed behind our back.
    sub.host.status = host.status
    if (host.status === 'idle' || host.status === 'offline' || !sub.active) sub.revive()
  }

  requestCrawl(hostname: string, opts: CrawlOptions): Promise<CrawlOutcome> {
    if (!this.crawler) throw new Error('crawler not configured')
    return this.crawler.requestCrawl(hostname, opts)
  }

  // ---- operator actions (src/api RelayControl) ------------------------------------------------

  connectedHosts(): string[] {
    const out: string[] = []
    for (const s of this.subs.values()) if (s.connected) out.push(s.hostname)
    return out.sort()
  }

  /** Close a host's subscription and don't redial until connectHost / requestCrawl. */
  async disconnectHost(hostname: string): Promise<boolean> {
    const sub = this.subs.get(hostname)
    if (!sub) return false
    const was = sub.connected
    await sub.disconnect()
    // A ban (the usual reason) is written by the caller; reflect it locally from the row.
    const row = await this.o.hosts.get(hostname).catch(() => null)
    if (row?.status === 'banned') {
      this.subs.delete(hostname)
      this.markBanned(row)
    }
    return was
  }

  /** Subscribe to a known host now from its stored cursor (unblock). */
  async connectHost(hostname: string): Promise<void> {
    const row = await this.o.hosts.get(hostname)
    if (!row) throw new Error(`unknown host ${hostname}`)
    const sub = this.subs.get(hostname)
    if (sub) {
      sub.host.status = row.status
      sub.revive()
      return
    }
    this.add(row).start(0)
  }

  async setHostLimits(hostname: string, accountLimit: number): Promise<void> {
    const sub = this.subs.get(hostname)
    if (!sub) return
    sub.host.accountLimit = accountLimit
    sub.setLimits(this.limitsFor(sub.host))
  }

  hostInfo(hostname: string): HostLiveInfo | undefined {
    const sub = this.subs.get(hostname)
    if (!sub) return undefined
    return { connected: sub.connected, paused: sub.paused, eventsSeenSinceStartup: sub.events, limits: sub.rateLimits() }
  }

  private async flushLastEvents(): Promise<void> {
    const times = new Map<number, number>()
    for (const s of this.subs.values()) {
      const t = s.lastEventAt
      if (t !== null && t !== this.flushedEventAt.get(s.host.id)) times.set(s.host.id, t)
    }
    if (times.size === 0) return
    try {
      await this.o.hosts.touchLastEvent(times)
      for (const [id, t] of times) this.flushedEventAt.set(id, t)
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'could not write host last_event_at')
    }
  }
}
