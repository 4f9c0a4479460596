// Every test gets its own database on the run's PostgreSQL server (see scripts/test.ts).

import { randomBytes } from 'node:crypto'
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
