// A real ApiServer on loopback with the API registered against a fresh migrated database, and a
// RelayControl fake that records every call.

import { Registry } from 'prom-client'
import { ApiServer } from '../../../src/api/http.ts'
import { registerApi, type RegisteredApi } from '../../../src/api/index.ts'
import type { ConsumerInfo, HostLiveStats, RelayControl } from '../../../src/api/control.ts'
import { loadConfig } from '../../../src/core/config.ts'
import { createPool, type Pool } from '../../../src/core/db.ts'
import { createLogger } from '../../../src/core/log.ts'
import { migrate } from '../../../src/core/migrate.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'

export const log = createLogger('silent')
export const PASSWORD = 'correct horse battery staple'

export type Call = [method: string, ...args: unknown[]]

export class FakeControl implements RelayControl {
  calls: Call[] = []
  connected = new Set<string>()
  consumerList: ConsumerInfo[] = []
  stats = new Map<string, HostLiveStats>()
  crawlError?: Error

  connectedHosts(): string[] {
    return [...this.connected]
  }
  async disconnectHost(hostname: string): Promise<boolean> {
    this.calls.push(['disconnectHost', hostname])
    return this.connected.delete(hostname)
  }
  async connectHost(hostname: string): Promise<void> {
    this.calls.push(['connectHost', hostname])
    this.connected.add(hostname)
  }
  async requestCrawl(hostname: string, opts: { admin: boolean }): Promise<void> {
    this.calls.push(['requestCrawl', hostname, opts])
    if (this.crawlError) throw this.crawlError
  }
  async setHostLimits(hostname: string, accountLimit: number): Promise<void> {
    this.calls.push(['setHostLimits', hostname, accountLimit])
  }
  async emitAccountStatus(did: string): Promise<void> {
    this.calls.push(['emitAccountStatus', did])
  }
  async hideAccountEvents(did: string): Promise<void> {
    this.calls.push(['hideAccountEvents', did])
  }
  async invalidateAccount(did: string): Promise<void> {
    this.calls.push(['invalidateAccount', did])
  }
  consumers(): ConsumerInfo[] {
    return this.consumerList
  }
  hostStats(hostname: string): HostLiveStats | undefined {
    return this.stats.get(hostname)
  }
  take(): Call[] {
    const c = this.calls
    this.calls = []
    return c
  }
}

export interface TestApi {
  url: string
  control: FakeControl
  registered: RegisteredApi
  close(): Promise<void>
}

export interface TestEnv {
  db: Pool
  start(opts?: { password?: string | null }): Promise<TestApi>
  close(): Promise<void>
}

export async function createEnv(prefix: string): Promise<TestEnv> {
  const tdb: TestDatabase = await createTestDatabase(prefix)
  const db = createPool(tdb.url, { max: 4, log })
  await migrate(db, log)
  const servers: TestApi[] = []
  return {
    db,
    async start(opts = {}) {
      const password = opts.password === undefined ? PASSWORD : opts.password
      const env: Record<string, string> = password === null ? {} : { RELAY_ADMIN_PASSWORD: password }
      const { config } = loadConfig({ env, argv: [] })
      const api = new ApiServer({ version: 'test', log })
      const control = new FakeControl()
      const registered = registerApi(api, { db, config, control, log, registry: new Registry() })
      const port = await api.listen(0, '127.0.0.1')
      const t: TestApi = {
        url: `http://127.0.0.1:${port}`,
        control,
        registered,
        async close() {
          api.server.closeAllConnections()
          await api.stopAccepting()
        },
      }
      servers.push(t)
      return t
    },
    async close() {
      for (const s of servers) await s.close()
      await db.end()
      await tdb.drop()
    },
  }
}

export interface Reply {
  status: number
  headers: Headers
  body: any
}

export async function call(base: string, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Reply> {
  const { json, ...rest } = init
  const headers = new Headers(rest.headers)
  if (json !== undefined) headers.set('content-type', 'application/json')
  const res = await fetch(base + path, {
    ...rest,
    headers,
    body: json !== undefined ? JSON.stringify(json) : rest.body,
    redirect: 'manual',
  })
  const text = await res.text()
  let body: unknown = text
  try {
    body = text === '' ? undefined : JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body }
}

export const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')
export const ADMIN = { authorization: basic('admin', PASSWORD) }

export async function insertHost(
  db: Pool,
  hostname: string,
  opts: { lastSeq?: number; status?: string; limit?: number; noSsl?: boolean; accountCount?: number } = {},
): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO host (hostname, last_seq, status, account_limit, no_ssl, account_count)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [hostname, opts.lastSeq ?? -1, opts.status ?? 'active', opts.limit ?? 100, opts.noSsl ?? false, opts.accountCount ?? 0],
  )
  return rows[0]!.id
}

export async function insertAccount(
  db: Pool,
  did: string,
  hostId: number,
  opts: { status?: string; upstream?: string; rev?: string | null; cid?: string | null; desync?: boolean } = {},
): Promise<number> {
  const rev = opts.rev === undefined ? '3l3qo2vutsw2b' : opts.rev
  const cid = opts.cid === undefined ? 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' : opts.cid
  const { rows } = await db.query<{ uid: number }>(
    `INSERT INTO account (did, host_id, status, upstream_status, rev, commit_cid, desynchronized)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING uid`,
    [did, hostId, opts.status ?? 'active', opts.upstream ?? 'active', rev, cid, opts.desync ?? false],
  )
  return rows[0]!.uid
}
