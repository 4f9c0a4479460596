// `npm test`: runs every test file under node:test against a real PostgreSQL. Without
// DATABASE_URL it starts one embedded cluster for the whole run (tests create their own
// databases on it); with DATABASE_URL it uses that server, which must allow CREATE DATABASE.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startEmbeddedPostgres } from '../src/core/embedded-postgres.ts'
import { createLogger } from '../src/core/log.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const log = createLogger(process.env.TEST_PG_LOG_LEVEL ?? 'error', { pretty: false })
const patterns = process.argv.slice(2).length ? process.argv.slice(2) : ['test/**/*.test.ts']

let adminUrl = process.env.DATABASE_URL
let testDir: string | undefined
let stop: (() => Promise<void>) | undefined
if (!adminUrl) {
  // fsync off: test data is disposable and this keeps the suite fast on slow disks.
  // A fresh cluster per run: concurrent runs must not share (and "recover") each other's.
  testDir = mkdtempSync(path.join(tmpdir(), 'relay-test-pg-'))
  const pg = await startEmbeddedPostgres({
    dataDir: testDir,
    log,
    database: 'postgres',
    settings: { fsync: 'off', full_page_writes: 'off', max_connections: '300' },
  })
  const c = pg.connection
  adminUrl = `postgresql://${c.user}@localhost/${c.database}?host=${encodeURIComponent(String(c.host))}`
  stop = () => pg.stop()
}

const child = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=300000', ...patterns], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, RELAY_TEST_DATABASE_URL: adminUrl, DATABASE_URL: '' },
})
const forward = (sig: NodeJS.Signals) => child.kill(sig)
process.on('SIGINT', forward)
process.on('SIGTERM', forward)
const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))))
await stop?.()
if (testDir) rmSync(testDir, { recursive: true, force: true })
process.exit(code)
