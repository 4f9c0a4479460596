import pg from 'pg'
import type { Logger } from './log.ts'

export type Pool = pg.Pool
export type PoolClient = pg.PoolClient
export type ConnectionSettings = string | pg.ClientConfig

// int8 (bigint) columns hold seqs and counters that stay below 2^53 by construction; parse them
// as numbers rather than strings so every caller doesn't have to.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => {
  const n = Number(v)
  if (!Number.isSafeInteger(n)) throw new Error(`int8 value ${v} exceeds 2^53-1`)
  return n
})

// bytea values (event frames read back for replay, CIDs) get an allocation of their own. pg's
// parser decodes with Buffer.from(hex), which carves values under 32 KiB out of Node's shared 64 KiB
// Buffer pool: a frame kept in the replay cache or an account cache would pin its whole pool slab,
// so those byte-capped caches would hold many times the bytes they count.
const defaultByteaParser = pg.types.getTypeParser(pg.types.builtins.BYTEA)
pg.types.setTypeParser(pg.types.builtins.BYTEA, (v: string) => {
  if (v.length < 2 || v[0] !== '\\' || v[1] !== 'x') return defaultByteaParser(v) // legacy escape format
  const out = Buffer.allocUnsafeSlow((v.length - 2) >>> 1)
  out.write(v.slice(2), 'hex')
  return out
})

export function toClientConfig(conn: ConnectionSettings): pg.ClientConfig {
  return typeof conn === 'string' ? { connectionString: conn } : conn
}

export function createPool(conn: ConnectionSettings, opts: { max: number; log: Logger; name?: string }): Pool {
  const pool = new pg.Pool({
    ...toClientConfig(conn),
    max: opts.max,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    application_name: opts.name ?? 'relay',
    keepAlive: true,
  })
  // An idle client's connection dying (Postgres restart, network) surfaces here; without a
  // listener it would crash the process. The pool drops the client and reconnects on demand.
  pool.on('error', (err) => opts.log.warn({ err: err.message }, 'postgres idle client error'))
  return pool
}

/** Runs fn in a transaction, rolling back on any error. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

/** Redacts the password in a connection URL for logs. */
export function describeConnection(conn: ConnectionSettings): string {
  if (typeof conn !== 'string') return `unix:${conn.host}/${conn.database}`
  try {
    const u = new URL(conn)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '<unparseable DATABASE_URL>'
  }
}
