import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import pg from 'pg'
import { createPool, type Pool } from '../../../src/core/db.ts'
import { createLogger } from '../../../src/core/log.ts'
import { appliedVersion, latestVersion, loadMigrations, migrate } from '../../../src/core/migrate.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'

const log = createLogger('silent')
let db: TestDatabase
let pools: Pool[] = []

before(async () => {
  db = await createTestDatabase('mig')
})
after(async () => {
  await Promise.all(pools.map((p) => p.end()))
  await db.drop()
})

test('migrations load in version order with unique versions', () => {
  const ms = loadMigrations()
  assert.ok(ms.length >= 1)
  assert.deepEqual(
    ms.map((m) => m.version),
    [...ms.map((m) => m.version)].sort((a, b) => a - b),
  )
  assert.equal(latestVersion(ms), ms.at(-1)!.version)
})

test('concurrent migrators serialise on the advisory lock; the second run is a no-op', async () => {
  const a = createPool(db.url, { max: 2, log })
  const b = createPool(db.url, { max: 2, log })
  pools.push(a, b)
  assert.equal(await appliedVersion(a), 0)
  const [ra, rb] = await Promise.all([migrate(a, log), migrate(b, log)])
  const all = loadMigrations().map((m) => m.version)
  // exactly one of them applied everything, the other found nothing to do
  assert.deepEqual(
    [...ra, ...rb].sort((x, y) => x - y),
    all,
  )
  assert.ok(ra.length === 0 || rb.length === 0)
  assert.equal(await appliedVersion(a), latestVersion())
  assert.deepEqual(await migrate(a, log), [])
  const { rows } = await a.query(`SELECT count(*)::int AS n FROM schema_migrations`)
  assert.equal(rows[0].n, all.length)
  const tables = await a.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
  const names = new Set(tables.rows.map((r) => r.table_name))
  for (const t of ['host', 'account', 'event', 'domain_ban', 'collection_repo', 'relay_setting']) assert.ok(names.has(t), t)
})

test('a failing migration rolls back completely', async () => {
  const other = await createTestDatabase('migfail')
  const pool = createPool(other.url, { max: 1, log })
  try {
    const bad = [...loadMigrations(), { version: 9999, name: 'broken', sql: 'CREATE TABLE ok_table (x int); SELECT * FROM no_such_table;' }]
    await assert.rejects(migrate(pool, log, bad), /no_such_table/)
    const c = new pg.Client({ connectionString: other.url })
    await c.connect()
    const { rows } = await c.query(`SELECT to_regclass('ok_table') AS t, to_regclass('host') AS h, to_regclass('schema_migrations') AS m`)
    await c.end()
    assert.deepEqual(rows[0], { t: null, h: null, m: null })
  } finally {
    await pool.end()
    await other.drop()
  }
})
