// The relay as an operator runs it: a child process, real signals, embedded or external Postgres.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { createTestDatabase } from '../../helpers/db.ts'
import { freePort, httpGet, spawnRelay, waitFor } from '../../helpers/relay-process.ts'

function postgresPidsFor(dataDir: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `postgres -D ${path.join(dataDir, 'postgres')}`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number)
  } catch {
    return []
  }
}

async function startAndWaitReady(env: Record<string, string>) {
  const probePort = await freePort()
  const port = await freePort()
  const relay = spawnRelay({ RELAY_PORT: String(port), RELAY_PROBE_PORT: String(probePort), RELAY_LISTEN_HOST: '127.0.0.1', ...env })
  const base = `http://127.0.0.1:${probePort}`
  // Probes come up before the database is started.
  const first = await waitFor(() => httpGet(`${base}/_healthz`).catch(() => undefined), { what: 'healthz', intervalMs: 20 })
  assert.equal(first.status, 200)
  await waitFor(async () => (await httpGet(`${base}/_readyz`)).status === 200 || undefined, { what: 'readyz 200', timeoutMs: 60_000 })
  return { relay, base }
}

test('embedded postgres: start, ready, SIGTERM exits 0 and leaves no postgres running', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'relay-life-'))
  try {
    const { relay, base } = await startAndWaitReady({ RELAY_DATA_DIR: dataDir })
    assert.ok(existsSync(path.join(dataDir, 'postgres', 'PG_VERSION')))
    assert.equal(postgresPidsFor(dataDir).length, 1)
    const metrics = await httpGet(`${base}/metrics`)
    assert.match(metrics.body, /relay_build_info/)
    relay.proc.kill('SIGTERM')
    const { code } = await relay.exited
    assert.equal(code, 0, relay.output())
    assert.match(relay.output(), /embedded postgres stopped/)
    assert.deepEqual(postgresPidsFor(dataDir), [])
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test('after SIGKILL the next start recovers the orphaned embedded postgres without manual cleanup', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'relay-crash-'))
  try {
    const first = await startAndWaitReady({ RELAY_DATA_DIR: dataDir })
    first.relay.proc.kill('SIGKILL')
    await first.relay.exited
    const orphans = postgresPidsFor(dataDir)
    assert.equal(orphans.length, 1, 'the postmaster outlives a SIGKILLed relay')
    assert.ok(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid')))

    const second = await startAndWaitReady({ RELAY_DATA_DIR: dataDir })
    assert.match(second.relay.output(), /still running; stopping it/)
    const now = postgresPidsFor(dataDir)
    assert.equal(now.length, 1)
    assert.notEqual(now[0], orphans[0])
    second.relay.proc.kill('SIGTERM')
    assert.equal((await second.relay.exited).code, 0, second.relay.output())
    assert.deepEqual(postgresPidsFor(dataDir), [])

    // A stale pid file pointing at a dead process is also handled.
    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid')
    const { writeFileSync } = await import('node:fs')
    writeFileSync(pidFile, '999999\n' + path.join(dataDir, 'postgres') + '\n')
    const third = await startAndWaitReady({ RELAY_DATA_DIR: dataDir })
    third.relay.proc.kill('SIGINT')
    assert.equal((await third.relay.exited).code, 0, third.relay.output())
    assert.deepEqual(postgresPidsFor(dataDir), [])
  } finally {
    for (const pid of postgresPidsFor(dataDir)) process.kill(pid, 'SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test('with DATABASE_URL no embedded server is started', async () => {
  const db = await createTestDatabase('ext')
  const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'relay-ext-')), 'data')
  try {
    const { relay } = await startAndWaitReady({ DATABASE_URL: db.url, RELAY_DATA_DIR: dataDir })
    assert.equal(existsSync(dataDir), false, 'the data dir is not even created')
    assert.match(relay.output(), /using external postgres/)
    assert.doesNotMatch(relay.output(), /embedded postgres started/)
    relay.proc.kill('SIGTERM')
    assert.equal((await relay.exited).code, 0, relay.output())
  } finally {
    await db.drop()
  }
})

test('an invalid option exits non-zero with a message naming it', async () => {
  const relay = spawnRelay({ RELAY_PORT: 'eighty' })
  const { code } = await relay.exited
  assert.equal(code, 2)
  assert.match(relay.output(), /configuration error: invalid value for RELAY_PORT \(--port\).*expected an integer/)
  const flag = spawnRelay({}, ['--replay-nonsense', '1'])
  assert.equal((await flag.exited).code, 2)
  assert.match(flag.output(), /unknown flag --replay-nonsense/)
})

test('relay help lists every option', async () => {
  const relay = spawnRelay({}, ['help'])
  assert.equal((await relay.exited).code, 0)
  const docs = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8')
  for (const m of docs.matchAll(/\| `([A-Z_]+)`/g)) assert.match(relay.output(), new RegExp(m[1]!))
})
