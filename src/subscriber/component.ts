// The subscriber stage as a relay Component. The integrator creates it with the pipeline's
// IngestSink and hands `cursors` to the sequencer (cursorProvider = cursors.cursorsFor, and
// cursors.committed(batch.seqsByHost) from onCommitted). Start it AFTER the pool and sequencer
// and so stop it BEFORE them: its stop closes every upstream socket and then waits for the frames
// already handed off to settle, which needs the pipeline still running.

import type { Component, RelayContext } from '../relay.ts'
import { invalidRequest, readJsonBody, serverHeader } from '../api/http.ts'
import type { BackoffPolicy } from './backoff.ts'
import { Crawler, type CrawlSettings, type CrawlOptions, type CrawlOutcome } from './crawl.ts'
import { HostRegistry, type HostRecord } from './host-registry.ts'
import { CursorRegistry, type IngestSink } from './ingest.ts'
import { SubscriberManager, type HostLiveInfo } from './manager.ts'
import { SubscriberMetrics } from './metrics.ts'
import { compileTrustedDomains, type RateLimits } from './rate-limit.ts'
import { admitSeedHosts, pullHostsFromRelay } from './seed.ts'
import { SafeDialer, policyFromConfig, type LookupFn } from './ssrf.ts'

export interface SubscriberComponentOptions {
  /** shared with the sequencer; created here when absent */
  cursors?: CursorRegistry
  /** persisted requestCrawl switch and daily limit (src/api RelaySettings); config values otherwise */
  settings?: CrawlSettings
  /** tests: DNS answers (e.g. a public-looking name resolving to a private address) */
  lookup?: LookupFn
  /** tests: tighter reconnect timings */
  backoff?: Partial<BackoffPolicy>
  /** register POST /xrpc/com.atproto.sync.requestCrawl on ctx.api (default true) */
  registerRoute?: boolean
  now?: () => number
  random?: () => number
  /** bound on the wait for in-flight frames at stop; default 15 s */
  drainTimeoutMs?: number
  lastEventFlushMs?: number
  describeTimeoutMs?: number
  /** override of the per-host rate limits (tests, benchmarks) */
  limits?: (host: HostRecord) => RateLimits
}

export interface SubscriberComponent extends Component {
  readonly cursors: CursorRegistry
  readonly manager: SubscriberManager
  readonly hosts: HostRegistry
  readonly crawler: Crawler
  readonly dialer: SafeDialer
  /** Public or admin requestCrawl (admin: localhost:PORT allowed, exempt from the daily limit). */
  requestCrawl(hostname: string, opts: { admin: boolean }): Promise<CrawlOutcome>
  connectedHosts(): string[]
  disconnectHost(hostname: string): Promise<boolean>
  connectHost(hostname: string): Promise<void>
  setHostLimits(hostname: string, accountLimit: number): Promise<void>
  hostInfo(hostname: string): HostLiveInfo | undefined
}

type Ctx = Pick<RelayContext, 'config' | 'log' | 'registry' | 'api' | 'db' | 'build'>

export function userAgent(version: string): string {
  // Contains `atproto-relay`, so a relay we dial can recognise us (loop prevention both ways).
  return serverHeader(version)
}

export function createSubscriberComponent(ctx: Ctx, sink: IngestSink, opts: SubscriberComponentOptions = {}): SubscriberComponent {
  const { config } = ctx
  const log = ctx.log.child({ stage: 'subscriber' })
  const cursors = opts.cursors ?? new CursorRegistry()
  const hosts = new HostRegistry(ctx.db)
  const trusted = compileTrustedDomains(config.trustedDomains)
  const ua = userAgent(ctx.build.version)
  const dialer = new SafeDialer({
    policy: policyFromConfig(config.allowInsecureHosts),
    lookup: opts.lookup,
    userAgent: ua,
    connectTimeoutMs: 5_000,
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 10_000,
    handshakeTimeoutMs: 10_000,
    maxPayload: Math.max(config.upstreamHardFrameCap, config.upstreamMaxFrame),
  })
  const settings: CrawlSettings = opts.settings ?? {
    requestCrawlEnabled: async () => !config.disableRequestCrawl,
    newHostsPerDay: async () => config.newHostsPerDayLimit,
  }
  let manager!: SubscriberManager
  const metrics = new SubscriberMetrics(
    ctx.registry,
    () => manager.stats(),
    () => cursors.totalInFlight(),
  )
  manager = new SubscriberManager({
    hosts,
    sink,
    cursors,
    dialer,
    metrics,
    log,
    trusted,
    settings: {
      maxFrameBytes: config.upstreamMaxFrame,
      pingIntervalMs: config.upstreamPingInterval,
      maxCursorAgeMs: config.maxCursorAge,
      idleRetryMs: config.hostIdleRetry,
      backoff: { offlineAfter: config.hostOfflineAfter, offlineRetryMs: config.hostOfflineRetry, ...opts.backoff },
    },
    startupWindowMs: config.startupConnectWindow,
    offlineRetryMs: config.hostOfflineRetry,
    lastEventFlushMs: opts.lastEventFlushMs,
    now: opts.now,
    random: opts.random,
    limits: opts.limits,
  })
  const crawler = new Crawler({
    hosts,
    dialer,
    trusted,
    allowInsecureHosts: config.allowInsecureHosts,
    defaultAccountLimit: config.defaultAccountLimit,
    settings,
    userAgent: ua,
    log,
    onAdmitted: (h) => manager.onAdmitted(h),
    onKnown: (h) => manager.onKnown(h),
    describeTimeoutMs: opts.describeTimeoutMs,
  })
  manager.crawler = crawler

  const requestCrawl = async (hostname: string, o: CrawlOptions): Promise<CrawlOutcome> => {
    try {
      const outcome = await crawler.requestCrawl(hostname, o)
      metrics.crawlRequests.inc({ outcome })
      return outcome
    } catch (err) {
      metrics.crawlRequests.inc({ outcome: (err as { status?: number }).status !== undefined ? 'rejected' : 'error' })
      throw err
    }
  }

  let stopped = false
  return {
    name: 'subscriber',
    cursors,
    manager,
    hosts,
    crawler,
    dialer,
    async start() {
      if (opts.registerRoute !== false) {
        ctx.api.procedure('com.atproto.sync.requestCrawl', async ({ req, res }) => {
          const body = await readJsonBody(req, 16 * 1024)
          if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidRequest('request body must be a JSON object')
          await requestCrawl((body as { hostname?: unknown }).hostname as string, { admin: false })
          res.writeHead(200, { 'content-length': '0' })
          res.end()
        })
      }
      await manager.start()
      // Discovery runs in the background: a slow seed relay must not hold up startup.
      if (config.seedHosts && config.seedHosts.length > 0) {
        void admitSeedHosts(crawler, config.seedHosts, log)
      }
      if (config.seedRelay) {
        void pullHostsFromRelay({
          relayUrl: config.seedRelay,
          hosts,
          dialer,
          trusted,
          defaultAccountLimit: config.defaultAccountLimit,
          allowInsecureHosts: config.allowInsecureHosts,
          userAgent: ua,
          log,
          onAdmitted: (h) => manager.onAdmitted(h),
          shouldStop: () => stopped,
        }).catch((err) => log.warn({ err: (err as Error).message, relay: config.seedRelay }, 'pulling hosts from the seed relay failed'))
      }
    },
    async stop() {
      stopped = true
      await manager.stop(opts.drainTimeoutMs)
      await dialer.close()
    },
    requestCrawl: (hostname, o) => requestCrawl(hostname, o),
    connectedHosts: () => manager.connectedHosts(),
    disconnectHost: (h) => manager.disconnectHost(h),
    connectHost: (h) => manager.connectHost(h),
    setHostLimits: (h, l) => manager.setHostLimits(h, l),
    hostInfo: (h) => manager.hostInfo(h),
  }
}
