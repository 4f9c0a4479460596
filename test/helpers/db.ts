// Every test gets its own database on the run's PostgreSQL server (see scripts/test.ts).

import { randomBytes } from 'node:crypto'
import net from 'node:net'
import pg from 'pg'

export function adminUrl(): string {
  const url = process.env.RELAY_TEST_DATABASE_URL
  if (!url) throw new Error('RELAY_TEST_DATABASE_URL is not set: run tests through `npm test` (scripts/test.ts)')
  return url
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = '/' + database
  return u.toString()
}

export interface TestDatabase {
  url: string
  name: string
  drop(): Promise<void>
}

export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl() })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`)
  } finally {
    await admin.end()
  }
  return {
    url: withDatabase(adminUrl(), name),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl() })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}

/** A TCP proxy in front of Postgres that a test can cut, to make the database unreachable. */
export async function cuttableProxy(dbUrl: string) {
  const target = new URL(dbUrl)
  const socketDir = target.searchParams.get('host')
  const connectOpts: net.NetConnectOpts = socketDir
    ? { path: `${socketDir}/.s.PGSQL.${target.port || 5432}` }
    : { host: target.hostname, port: Number(target.port || 5432) }
  const sockets = new Set<net.Socket>()
  let open = true
  const server = net.createServer((client) => {
    if (!open) return client.destroy()
    const upstream = net.connect(connectOpts)
    sockets.add(client).add(upstream)
    client.pipe(upstream).pipe(client)
    const done = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', done).on('close', done)
    upstream.on('error', done).on('close', done)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  const url = new URL(dbUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  url.searchParams.delete('host')
  return {
    url: url.toString(),
    cut() {
      open = false
      for (const s of sockets) s.destroy()
    },
    restore() {
      open = true
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}
