// indigo-compatible admin API under /admin/ (paths, methods, query-vs-JSON inputs and response
// shapes as in indigo's handlers_admin.go, so goat's `relay admin` commands work unchanged).
// Errors use the XRPC body {"error","message"}.

import { Counter, type Registry } from 'prom-client'
import type { Config } from '../../core/config.ts'
import type { Logger } from '../../core/log.ts'
import type { RateLimitInfo, RelayControl } from '../control.ts'
import { XrpcError, invalidRequest, readJsonBody, sendJson, sendXrpcError, type ApiServer, type Handler } from '../http.ts'
import { boolParam, hostnameParam, hostnameValue, idCursor, intParam } from '../params.ts'
import type { RelaySettings } from '../settings.ts'
import { isDid } from '../../validator/syntax.ts'
import { ADMIN_REALM, AdminAuth } from './auth.ts'
import { AdminService, normalizeBanDomain } from './service.ts'
import type { Pool } from '../../core/db.ts'

const SUCCESS = { success: 'true' }
const PDS_LIST_MAX = 10_000
const NS_PER_S = 1_000_000_000

export interface AdminDeps {
  db: Pool
  config: Config
  control: RelayControl
  log: Logger
  registry: Registry
  settings: RelaySettings
}

/** A JSON object body (the admin procedures all take one). */
async function objectBody(req: Parameters<Handler>[0]['req']): Promise<Record<string, unknown>> {
  const body = await readJsonBody(req)
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('request body must be a JSON object')
  return body as Record<string, unknown>
}

/** Go's encoding/json matches field names case-insensitively (indigo takes {"Domain"}, goat sends {"domain"}). */
function field(body: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(body, name)) return body[name]
  const lower = name.toLowerCase()
  const key = Object.keys(body).find((k) => k.toLowerCase() === lower)
  return key === undefined ? undefined : body[key]
}

function didField(body: Record<string, unknown>): string {
  const did = field(body, 'did')
  if (typeof did !== 'string' || did === '') throw invalidRequest('did is required')
  if (!isDid(did)) throw invalidRequest('did must be a DID (did:method:identifier)')
  return did
}

function goRate(r: RateLimitInfo | undefined, windowSeconds: number): { Max: number; Window: number } {
  return { Max: r?.max ?? -1, Window: (r?.windowSeconds ?? windowSeconds) * NS_PER_S }
}

export function registerAdminRoutes(api: ApiServer, deps: AdminDeps): void {
  const { db, control, log, settings } = deps
  const service = new AdminService(db, control, log)
  const password = deps.config.adminPassword
  const auth = password ? new AdminAuth(password) : undefined

  const authFailures = new Counter({
    name: 'relay_admin_auth_failures_total',
    help: 'Admin API requests rejected for missing or wrong credentials',
    registers: [deps.registry],
  })
  const actions = new Counter({
    name: 'relay_admin_requests_total',
    help: 'Authenticated admin API requests by endpoint and outcome',
    labelNames: ['endpoint', 'outcome'] as const,
    registers: [deps.registry],
  })

  const admin = (method: 'GET' | 'POST', path: string, handler: Handler): void => {
    const endpoint = path.slice('/admin/'.length)
    api.route(method, path, async (ctx) => {
      if (!auth) {
        return sendXrpcError(ctx.res, 403, 'AdminDisabled', 'the admin API is disabled: set RELAY_ADMIN_PASSWORD to enable it')
      }
      if (!auth.check(ctx.req.headers.authorization)) {
        authFailures.inc()
        return sendXrpcError(ctx.res, 401, 'AuthRequired', 'admin credentials required (HTTP Basic user "admin", or Bearer)', {
          'www-authenticate': ADMIN_REALM,
        })
      }
      try {
        await handler(ctx)
        actions.inc({ endpoint, outcome: 'ok' })
      } catch (err) {
        actions.inc({ endpoint, outcome: err instanceof XrpcError && err.status < 500 ? 'rejected' : 'error' })
        throw err
      }
    })
  }

  // --- upstream subscriptions and requestCrawl settings

  admin('GET', '/admin/subs/getUpstreamConns', ({ res }) => sendJson(res, 200, control.connectedHosts()))

  admin('POST', '/admin/subs/killUpstream', async ({ url, res }) => {
    const host = hostnameParam(url.searchParams, 'host')
    await service.killUpstream(host, boolParam(url.searchParams, 'block') ?? false)
    sendJson(res, 200, SUCCESS)
  })

  admin('GET', '/admin/subs/getEnabled', async ({ res }) => {
    sendJson(res, 200, { enabled: await settings.requestCrawlEnabled() })
  })

  admin('POST', '/admin/subs/setEnabled', async ({ url, res }) => {
    const enabled = boolParam(url.searchParams, 'enabled')
    if (enabled === undefined) throw invalidRequest('parameter enabled is required')
    await settings.setRequestCrawlEnabled(enabled)
    log.info({ enabled }, 'admin: public requestCrawl switched')
    sendJson(res, 200, SUCCESS)
  })

  admin('GET', '/admin/subs/perDayLimit', async ({ res }) => {
    sendJson(res, 200, { limit: await settings.newHostsPerDay() })
  })

  admin('POST', '/admin/subs/setPerDayLimit', async ({ url, res }) => {
    if (!url.searchParams.has('limit')) throw invalidRequest('parameter limit is required')
    const limit = intParam(url.searchParams, 'limit', { min: 0, max: 1_000_000, default: 0 })
    await settings.setNewHostsPerDay(limit)
    log.info({ limit }, 'admin: new-hosts-per-day limit changed')
    sendJson(res, 200, SUCCESS)
  })

  admin('GET', '/admin/subs/listDomainBans', async ({ res }) => {
    sendJson(res, 200, { banned_domains: await service.listDomainBans() })
  })

  admin('POST', '/admin/subs/banDomain', async ({ req, res }) => {
    const domain = normalizeBanDomain(field(await objectBody(req), 'domain'))
    await service.banDomain(domain)
    sendJson(res, 200, SUCCESS)
  })

  admin('POST', '/admin/subs/unbanDomain', async ({ req, res }) => {
    const domain = normalizeBanDomain(field(await objectBody(req), 'domain'))
    await service.unbanDomain(domain)
    sendJson(res, 200, SUCCESS)
  })

  // --- accounts

  admin('GET', '/admin/repo/takedowns', async ({ url, res }) => {
    const cursor = idCursor(url.searchParams)
    const size = intParam(url.searchParams, 'size', { min: 1, max: 1000, default: 500 })
    sendJson(res, 200, await service.takedowns(cursor, size))
  })

  admin('POST', '/admin/repo/takeDown', async ({ req, res }) => {
    await service.takedown(didField(await objectBody(req)))
    sendJson(res, 200, SUCCESS)
  })

  admin('POST', '/admin/repo/reverseTakedown', async ({ req, res }) => {
    await service.reverseTakedown(didField(await objectBody(req)))
    sendJson(res, 200, SUCCESS)
  })

  // --- hosts

  admin('GET', '/admin/pds/list', async ({ res }) => {
    const { rows } = await db.query<{
      id: number
      created_at: Date
      hostname: string
      no_ssl: boolean
      status: string
      last_seq: number
      account_count: number
      account_limit: number
      trusted: boolean
      admin_added: boolean
      last_error: string | null
      last_event_at: Date | null
    }>(
      `SELECT id, created_at, hostname, no_ssl, status, last_seq, account_count, account_limit, trusted, admin_added,
              last_error, last_event_at
       FROM host ORDER BY id LIMIT $1`,
      [PDS_LIST_MAX],
    )
    const connected = new Set(control.connectedHosts())
    const out = rows.map((h) => {
      const live = connected.has(h.hostname)
      const stats = live ? control.hostStats?.(h.hostname) : undefined
      return {
        ID: h.id,
        CreatedAt: h.created_at.toISOString(),
        Host: h.hostname,
        SSL: !h.no_ssl,
        Cursor: h.last_seq,
        Registered: true,
        Blocked: h.status === 'banned',
        CrawlRateLimit: stats?.perSecond?.max ?? 0,
        RepoCount: h.account_count,
        RepoLimit: h.account_limit,
        HasActiveConnection: live,
        EventsSeenSinceStartup: stats?.eventsSeenSinceStartup ?? 0,
        PerSecondEventRate: goRate(stats?.perSecond, 1),
        PerHourEventRate: goRate(stats?.perHour, 3600),
        PerDayEventRate: goRate(stats?.perDay, 86_400),
        UserCount: h.account_count,
        AccountLimitAlertsSilenced: false,
        AccountLimitAlertState: 'ok',
        // beyond indigo's shape
        Status: h.status,
        Trusted: h.trusted,
        AdminAdded: h.admin_added,
        LastError: h.last_error,
        LastEventAt: h.last_event_at?.toISOString() ?? null,
      }
    })
    sendJson(res, 200, out)
  })

  admin('POST', '/admin/pds/requestCrawl', async ({ req, res }) => {
    const raw = field(await objectBody(req), 'hostname')
    hostnameValue(raw, 'hostname') // reject bad input here; the subscriber parses the original (its scheme decides TLS)
    await control.requestCrawl((raw as string).trim(), { admin: true })
    log.info({ hostname: raw }, 'admin: requestCrawl')
    sendJson(res, 200, SUCCESS)
  })

  admin('POST', '/admin/pds/changeLimits', async ({ req, res }) => {
    const body = await objectBody(req)
    const host = hostnameValue(field(body, 'host'), 'host')
    const limit = field(body, 'repo_limit')
    const silenced = field(body, 'account_limit_alerts_silenced')
    if (limit === undefined && silenced === undefined) {
      throw invalidRequest('at least one of repo_limit and account_limit_alerts_silenced is required')
    }
    if (silenced !== undefined && typeof silenced !== 'boolean') throw invalidRequest('account_limit_alerts_silenced must be a boolean')
    if (limit !== undefined) {
      if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0) {
        throw invalidRequest('repo_limit must be a non-negative integer')
      }
      await service.changeLimits(host, limit)
    } else {
      // No alerting here, so the silence flag has nothing to change; still a 404 for unknown hosts.
      const { rowCount } = await db.query('SELECT 1 FROM host WHERE hostname = $1', [host])
      if (rowCount === 0) throw new XrpcError(404, 'HostNotFound', `host not found: ${host}`)
    }
    sendJson(res, 200, SUCCESS)
  })

  admin('POST', '/admin/pds/block', async ({ url, res }) => {
    await service.blockHost(hostnameParam(url.searchParams, 'host'))
    sendJson(res, 200, SUCCESS)
  })

  admin('POST', '/admin/pds/unblock', async ({ url, res }) => {
    await service.unblockHost(hostnameParam(url.searchParams, 'host'))
    sendJson(res, 200, SUCCESS)
  })

  // --- consumers

  admin('GET', '/admin/consumers/list', ({ res }) => sendJson(res, 200, control.consumers()))
}
