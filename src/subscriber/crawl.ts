// Host admission: com.atproto.sync.requestCrawl (public), the admin variant, and seed lists.
//
// Everything is validated before anything is inserted: hostname syntax (DNS name, no IP
// literals, a port only for localhost:PORT and only for admins or insecure mode), scheme
// (https/wss unless insecure mode; admins may add http/ws), domain bans on every parent suffix,
// the daily new-host limit (public only), and a live `describeServer` answer fetched through the
// SSRF-safe dialer (5 s). A host whose answer carries `Server: … atproto-relay` is another relay
// and is refused (subscribing to a relay would loop the network through us).
//
// A new host starts at its live head: no cursor, no backfill (as indigo). Events it emitted
// before we subscribed are not fetched; consumers that need them resync from the PDS.

import { request } from 'undici'
import type { Logger } from '../core/log.ts'
import { XrpcError, invalidRequest } from '../api/http.ts'
import { errorText, type HostRecord, type HostRegistry } from './host-registry.ts'
import { parseHostname } from './hostname.ts'
import type { TrustedDomains } from './rate-limit.ts'
import { SsrfError, type SafeDialer } from './ssrf.ts'

/** The persisted requestCrawl settings (src/api RelaySettings has this shape). */
export interface CrawlSettings {
  requestCrawlEnabled(): Promise<boolean>
  newHostsPerDay(): Promise<number>
}

export const TRUSTED_ACCOUNT_LIMIT = 10_000_000
export const DESCRIBE_TIMEOUT_MS = 5_000
const MAX_DESCRIBE_BODY = 64 * 1024

export const hostBanned = (message: string) => new XrpcError(403, 'HostBanned', message)

export interface CrawlerOptions {
  hosts: HostRegistry
  dialer: SafeDialer
  trusted: TrustedDomains
  allowInsecureHosts: boolean
  defaultAccountLimit: number
  settings: CrawlSettings
  userAgent: string
  log: Logger
  /** a new host was inserted: subscribe now */
  onAdmitted(host: HostRecord): void
  /** a known, not banned host was asked for: revive it if idle/offline/disconnected */
  onKnown(host: HostRecord): void
  describeTimeoutMs?: number
}

export interface CrawlOptions {
  admin: boolean
  /** seed lists: skip known hosts entirely (don't revive) */
  seed?: boolean
}

export type CrawlOutcome = 'created' | 'known'

export class Crawler {
  private readonly o: CrawlerOptions

  constructor(opts: CrawlerOptions) {
    this.o = opts
  }

  /**
   * Admit or revive a host. `input` is the caller's text (a bare hostname or a URL whose scheme
   * decides TLS). Throws XrpcError (4xx) for anything the caller should see.
   */
  async requestCrawl(input: unknown, opts: CrawlOptions): Promise<CrawlOutcome> {
    const o = this.o
    if (typeof input !== 'string' || input.trim() === '') throw invalidRequest('hostname is required')
    const admin = opts.admin
    if (!admin && !(await o.settings.requestCrawlEnabled())) {
      throw new XrpcError(403, 'Forbidden', 'public requestCrawl is disabled on this relay')
    }
    const parsed = parseHostname(input, { allowLocalhost: admin || o.allowInsecureHosts })
    if (!parsed.ok) throw invalidRequest(`hostname is invalid: ${parsed.message}`)
    if (parsed.noSsl && !admin && !o.allowInsecureHosts) {
      throw invalidRequest('this relay only subscribes to hosts over https/wss')
    }
    const hostname = parsed.hostname

    const ban = await o.hosts.domainBan(hostname)
    if (ban !== null) throw hostBanned(ban === hostname ? 'host is banned' : `host domain is banned (${ban})`)

    const known = await o.hosts.get(hostname)
    if (known) {
      if (known.status === 'banned') throw hostBanned('host is banned')
      if (!opts.seed) o.onKnown(known)
      return 'known'
    }

    let dailyLimit: number | null = null
    if (!admin) {
      dailyLimit = await o.settings.newHostsPerDay()
      if ((await o.hosts.admissionsToday()) >= dailyLimit) throw dailyLimitError(dailyLimit)
    }

    await this.checkHost(hostname, parsed.noSsl, admin)

    const trusted = o.trusted.matches(hostname)
    const result = await o.hosts.create(
      {
        hostname,
        noSsl: parsed.noSsl,
        accountLimit: trusted ? TRUSTED_ACCOUNT_LIMIT : o.defaultAccountLimit,
        trusted,
        adminAdded: admin,
      },
      dailyLimit,
    )
    if (result.kind === 'daily-limit') throw dailyLimitError(result.limit)
    if (result.kind === 'exists') {
      if (result.host.status === 'banned') throw hostBanned('host is banned')
      if (!opts.seed) o.onKnown(result.host)
      return 'known'
    }
    o.log.info({ hostname, admin, trusted, noSsl: parsed.noSsl }, 'new upstream host admitted; subscribing at its live head')
    o.onAdmitted(result.host)
    return 'created'
  }

  /**
   * `GET /xrpc/com.atproto.server.describeServer` must answer 2xx within the timeout, through the
   * SSRF-safe dispatcher, and must not come from a relay.
   */
  async checkHost(hostname: string, noSsl: boolean, admin: boolean): Promise<void> {
    const o = this.o
    const url = `${noSsl ? 'http' : 'https'}://${hostname}/xrpc/com.atproto.server.describeServer`
    const permission = { adminLocalhost: admin && hostname.startsWith('localhost:') }
    const timeout = o.describeTimeoutMs ?? DESCRIBE_TIMEOUT_MS
    let status: number
    let server: string
    try {
      const res = await request(url, {
        method: 'GET',
        dispatcher: o.dialer.dispatcher(permission),
        headers: { 'user-agent': o.userAgent, accept: 'application/json' },
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout),
      })
      status = res.statusCode
      const sv = res.headers['server']
      server = Array.isArray(sv) ? sv.join(' ') : String(sv ?? '')
      // Read (bounded) and discard, so the connection can be reused or closed cleanly.
      let size = 0
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > MAX_DESCRIBE_BODY) {
          res.body.destroy()
          break
        }
      }
    } catch (err) {
      const e = (err as { cause?: unknown }).cause instanceof SsrfError ? (err as { cause: SsrfError }).cause : err
      if (e instanceof SsrfError) {
        if (e.reason === 'unresolvable') throw new XrpcError(400, 'HostNotFound', `host server unreachable: ${e.message}`)
        throw invalidRequest(`host is not allowed: ${e.message}`)
      }
      throw new XrpcError(400, 'HostNotFound', `host server unreachable: ${errorText(err)}`)
    }
    if (server.toLowerCase().includes('atproto-relay')) {
      throw invalidRequest(`host identifies itself as a relay (Server: ${server.slice(0, 200)}); relays are not subscribed to`)
    }
    if (status < 200 || status >= 300) {
      throw new XrpcError(400, 'HostNotFound', `host server unreachable: describeServer answered HTTP ${status}`)
    }
  }
}

function dailyLimitError(limit: number): XrpcError {
  return new XrpcError(
    429,
    'RateLimitExceeded',
    `this relay admits at most ${limit} new hosts per day through requestCrawl; try again later`,
  )
}
