// Startup host discovery: RELAY_SEED_HOSTS (admitted like admin requestCrawls) and
// RELAY_SEED_RELAY (another relay's com.atproto.sync.listHosts). Both run in the background after
// start and only ever add hosts this relay does not know; a known host (including a banned one)
// is left as it is.

import { request } from 'undici'
import type { Logger } from '../core/log.ts'
import type { Crawler } from './crawl.ts'
import { TRUSTED_ACCOUNT_LIMIT } from './crawl.ts'
import { errorText, type HostRecord, type HostRegistry } from './host-registry.ts'
import { parseHostname } from './hostname.ts'
import type { TrustedDomains } from './rate-limit.ts'
import type { SafeDialer } from './ssrf.ts'

export async function admitSeedHosts(crawler: Crawler, list: readonly string[], log: Logger): Promise<{ created: number; failed: number }> {
  let created = 0
  let failed = 0
  for (const entry of list) {
    try {
      if ((await crawler.requestCrawl(entry, { admin: true, seed: true })) === 'created') created++
    } catch (err) {
      failed++
      log.warn({ host: entry, err: errorText(err) }, 'seed host not admitted')
    }
  }
  if (list.length > 0) log.info({ seeds: list.length, created, failed }, 'seed hosts processed')
  return { created, failed }
}

export interface SeedRelayOptions {
  relayUrl: string
  hosts: HostRegistry
  dialer: SafeDialer
  trusted: TrustedDomains
  defaultAccountLimit: number
  allowInsecureHosts: boolean
  userAgent: string
  log: Logger
  onAdmitted(host: HostRecord): void
  /** stop after this many pages (1,000 hosts each); default 200 */
  maxPages?: number
  timeoutMs?: number
  shouldStop?: () => boolean
}

interface ListHostsPage {
  cursor?: unknown
  hosts?: unknown
}

/**
 * Copies active hosts from another relay. Hostname rules and domain bans apply; describeServer is
 * not called for each (thousands of hosts at boot), the subscription itself is the check: a host
 * that never answers goes offline through the normal backoff.
 */
export async function pullHostsFromRelay(o: SeedRelayOptions): Promise<{ seen: number; created: number }> {
  const base = new URL(o.relayUrl)
  const permission = { adminLocalhost: base.hostname === 'localhost' }
  const timeout = o.timeoutMs ?? 10_000
  let cursor: string | undefined
  let seen = 0
  let created = 0
  for (let page = 0; page < (o.maxPages ?? 200); page++) {
    if (o.shouldStop?.()) break
    const url = new URL('/xrpc/com.atproto.sync.listHosts', base)
    url.searchParams.set('limit', '1000')
    if (cursor) url.searchParams.set('cursor', cursor)
    const res = await request(url, {
      dispatcher: o.dialer.dispatcher(permission),
      headers: { 'user-agent': o.userAgent, accept: 'application/json' },
      signal: AbortSignal.timeout(timeout),
    })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`listHosts answered HTTP ${res.statusCode}`)
    }
    const body = (await res.body.json()) as ListHostsPage
    const hosts = Array.isArray(body.hosts) ? body.hosts : []
    for (const h of hosts) {
      const entry = h as { hostname?: unknown; status?: unknown }
      if (typeof entry.hostname !== 'string') continue
      if (entry.status !== undefined && entry.status !== 'active') continue
      seen++
      const parsed = parseHostname(entry.hostname, { allowLocalhost: o.allowInsecureHosts })
      if (!parsed.ok) continue
      if (parsed.noSsl && !o.allowInsecureHosts) continue
      if ((await o.hosts.domainBan(parsed.hostname)) !== null) continue
      if (await o.hosts.get(parsed.hostname)) continue
      const trusted = o.trusted.matches(parsed.hostname)
      const r = await o.hosts.create(
        {
          hostname: parsed.hostname,
          noSsl: parsed.noSsl,
          accountLimit: trusted ? TRUSTED_ACCOUNT_LIMIT : o.defaultAccountLimit,
          trusted,
          adminAdded: false,
        },
        null,
      )
      if (r.kind === 'created') {
        created++
        o.onAdmitted(r.host)
      }
    }
    cursor = typeof body.cursor === 'string' && body.cursor !== '' && hosts.length > 0 ? body.cursor : undefined
    if (!cursor) break
  }
  o.log.info({ relay: o.relayUrl, seen, created }, 'hosts pulled from seed relay')
  return { seen, created }
}
