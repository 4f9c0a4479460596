import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import type { Pool } from './db.ts'
import type { Logger } from './log.ts'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))

// Constant key for pg_advisory_xact_lock: two relays (or `relay migrate` next to a running relay)
// starting at once serialise here instead of racing on DDL.
const MIGRATION_LOCK_KEY = 0x72656c6179 // "relay"

export interface Migration {
  version: number
  name: string
  sql: string
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .map((file) => {
      const m = /^(\d+)_([\w-]+)\.sql$/.exec(file)
      if (!m) throw new Error(`migration file name must look like 001_name.sql: ${file}`)
      return { version: Number(m[1]), name: m[2]!, sql: readFileSync(path.join(dir, file), 'utf8') }
    })
    .sort((a, b) => a.version - b.version)
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) throw new Error(`duplicate migration version ${migrations[i]!.version}`)
  }
  return migrations
}

/** Applies pending migrations in one transaction under an advisory lock; idempotent. */
export async function migrate(pool: Pool, log: Logger, migrations = loadMigrations()): Promise<number[]> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations')
    const done = new Set(rows.map((r) => r.version))
    const applied: number[] = []
    for (const m of migrations) {
      if (done.has(m.version)) continue
      log.info({ version: m.version, name: m.name }, 'applying migration')
      await client.query(m.sql)
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
      applied.push(m.version)
    }
    await client.query('COMMIT')
    if (applied.length === 0) log.debug('database schema is up to date')
    return applied
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

interface Queryable {
  query(sql: string): Promise<{ rows: any[] }>
}

/** The newest version applied, or 0 when the schema_migrations table does not exist yet. */
export async function appliedVersion(db: Queryable): Promise<number> {
  const exists = await db.query(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`)
  if (!exists.rows[0]?.present) return 0
  const { rows } = await db.query('SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations')
  return rows[0]?.v ?? 0
}

export function latestVersion(migrations = loadMigrations()): number {
  return migrations.at(-1)?.version ?? 0
}
