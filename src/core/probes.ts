// Kubernetes probes and the Prometheus scrape, on their own port and listener so that a flood of
// consumer connections or API calls can never delay them.

import http from 'node:http'
import pg from 'pg'
import type { Registry } from 'prom-client'
import { toClientConfig, type ConnectionSettings } from './db.ts'
import type { Logger } from './log.ts'
import { appliedVersion } from './migrate.ts'

export interface CheckResult {
  ok: boolean
  reason?: string
}

export type ReadinessCheck = () => Promise<CheckResult> | CheckResult

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>()

  add(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check)
  }

  async evaluate(timeoutMs = 2_000): Promise<{ ready: boolean; checks: Record<string, CheckResult> }> {
    const entries = await Promise.all(
      [...this.checks].map(async ([name, check]): Promise<[string, CheckResult]> => {
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<CheckResult>((resolve) => {
          timer = setTimeout(() => resolve({ ok: false, reason: `check timed out after ${timeoutMs} ms` }), timeoutMs)
        })
        try {
          const result = await Promise.race([Promise.resolve().then(check), timeout])
          return [name, result]
        } catch (err) {
          return [name, { ok: false, reason: (err as Error).message }]
        } finally {
          clearTimeout(timer)
        }
      }),
    )
    const checks = Object.fromEntries(entries)
    return { ready: entries.every(([, r]) => r.ok), checks }
  }
}

/**
 * Database readiness over a dedicated connection (not the main pool, whose clients may all be
 * busy with ingest): Postgres answers and the schema is at the version this build expects.
 */
export function databaseCheck(conn: ConnectionSettings, expectedVersion: number, log: Logger): ReadinessCheck & { close(): Promise<void> } {
  let client: pg.Client | undefined
  let connecting: Promise<pg.Client> | undefined
  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      ...toClientConfig(conn),
      connectionTimeoutMillis: 1_500,
      application_name: 'relay-probe',
      query_timeout: 1_500,
    })
    c.on('error', (err) => {
      log.debug({ err: err.message }, 'probe database connection error')
      if (client === c) client = undefined
    })
    await c.connect()
    return c
  }
  const check = async (): Promise<CheckResult> => {
    try {
      if (!client) {
        connecting ??= connect().finally(() => (connecting = undefined))
        client = await connecting
      }
      const version = await appliedVersion(client)
      if (version < expectedVersion)
        return { ok: false, reason: `migrations not applied (schema version ${version}, need ${expectedVersion})` }
      return { ok: true }
    } catch (err) {
      const c = client
      client = undefined
      c?.end().catch(() => {})
      return { ok: false, reason: `database unreachable: ${(err as Error).message}` }
    }
  }
  return Object.assign(check, {
    async close() {
      const c = client
      client = undefined
      await c?.end().catch(() => {})
    },
  })
}

export class ProbeServer {
  readonly server: http.Server

  constructor(opts: { registry: Registry; readiness: Readiness; serverHeader: string; log: Logger }) {
    this.server = http.createServer(async (req, res) => {
      res.setHeader('server', opts.serverHeader)
      const path = (req.url ?? '/').split('?')[0]
      try {
        if (path === '/_healthz') {
          // Liveness: answering at all proves the event loop runs. Touch nothing else, so a
          // database outage never gets the pod restarted.
          res.writeHead(200, { 'content-type': 'application/json' })
          return void res.end('{"status":"ok"}')
        }
        if (path === '/_readyz') {
          const { ready, checks } = await opts.readiness.evaluate()
          const body = JSON.stringify(ready ? { status: 'ready', checks } : { status: 'not ready', reason: firstFailure(checks), checks })
          res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          return void res.end(body)
        }
        if (path === '/metrics') {
          const text = await opts.registry.metrics()
          res.writeHead(200, { 'content-type': opts.registry.contentType })
          return void res.end(text)
        }
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end('{"error":"NotFound","message":"probe endpoints: /_healthz, /_readyz, /metrics"}')
      } catch (err) {
        opts.log.error({ err }, 'probe handler failed')
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end('{"error":"InternalServerError"}')
      }
    })
    this.server.keepAliveTimeout = 5_000
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve((this.server.address() as { port: number }).port)
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }
}

function firstFailure(checks: Record<string, CheckResult>): string {
  for (const [name, r] of Object.entries(checks)) if (!r.ok) return `${name}: ${r.reason ?? 'failing'}`
  return 'unknown'
}
