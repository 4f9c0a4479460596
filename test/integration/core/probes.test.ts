import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { loadConfig } from '../../../src/core/config.ts'
import { createLogger } from '../../../src/core/log.ts'
import { Relay } from '../../../src/relay.ts'
import { createTestDatabase, cuttableProxy, type TestDatabase } from '../../helpers/db.ts'
import { httpGet, waitFor } from '../../helpers/relay-process.ts'

let db: TestDatabase
before(async () => {
  db = await createTestDatabase('probe')
})
after(async () => {
  await db.drop()
})

test('probes: healthz always 200, readyz follows the database, metrics expose build info', async () => {
  const proxy = await cuttableProxy(db.url)
  const { config } = loadConfig({
    env: { DATABASE_URL: proxy.url, RELAY_PORT: '0', RELAY_PROBE_PORT: '0', RELAY_LISTEN_HOST: '127.0.0.1' },
  })
  const relay = new Relay({ config, log: createLogger('silent') })
  try {
    await relay.start()
    const base = `http://127.0.0.1:${relay.probePort}`
    assert.equal((await httpGet(`${base}/_healthz`)).status, 200)
    const ready = await httpGet(`${base}/_readyz`)
    assert.equal(ready.status, 200, ready.body)
    const metrics = await httpGet(`${base}/metrics`)
    assert.equal(metrics.status, 200)
    assert.match(metrics.body, /relay_build_info\{version="[^"]+",commit="[^"]+",node="v24\.[^"]+"\} 1/)
    assert.match(metrics.body, /nodejs_eventloop_lag_seconds/)
    assert.match(metrics.body, /process_resident_memory_bytes/)
    assert.match(metrics.body, /nodejs_heap_size_used_bytes/)
    assert.match(metrics.body, /nodejs_external_memory_bytes/)
    assert.match(metrics.body, /relay_memory_array_buffers_bytes/)
    assert.match(ready.headers.get('server') ?? '', /atproto-relay/)

    proxy.cut()
    const down = await waitFor(
      async () => {
        const r = await httpGet(`${base}/_readyz`)
        return r.status === 503 ? r : undefined
      },
      { what: 'readyz 503' },
    )
    const body = JSON.parse(down.body)
    assert.equal(body.status, 'not ready')
    assert.match(body.reason, /^database: database unreachable/)
    assert.equal((await httpGet(`${base}/_healthz`)).status, 200, 'liveness must not depend on the database')

    proxy.restore()
    await waitFor(async () => (await httpGet(`${base}/_readyz`)).status === 200 || undefined, { what: 'readyz back to 200' })
  } finally {
    await relay.stop()
    await proxy.close()
  }
})

test('readyz is 503 with a reason while migrations are missing', async () => {
  const other = await createTestDatabase('probe2')
  const { config } = loadConfig({
    env: { DATABASE_URL: other.url, RELAY_PORT: '0', RELAY_PROBE_PORT: '0', RELAY_LISTEN_HOST: '127.0.0.1' },
  })
  const relay = new Relay({ config, log: createLogger('silent') })
  try {
    await relay.start()
    const base = `http://127.0.0.1:${relay.probePort}`
    assert.equal((await httpGet(`${base}/_readyz`)).status, 200)
    const pg = (await import('pg')).default
    const c = new pg.Client({ connectionString: other.url })
    await c.connect()
    await c.query('DELETE FROM schema_migrations')
    await c.end()
    const r = await httpGet(`${base}/_readyz`)
    assert.equal(r.status, 503)
    assert.match(JSON.parse(r.body).reason, /migrations not applied/)
  } finally {
    await relay.stop()
    await other.drop()
  }
})

test('api port: unknown XRPC method is 501 MethodNotImplemented, _health answers with the version', async () => {
  const other = await createTestDatabase('api')
  const { config } = loadConfig({
    env: { DATABASE_URL: other.url, RELAY_PORT: '0', RELAY_PROBE_PORT: '0', RELAY_LISTEN_HOST: '127.0.0.1' },
  })
  const relay = new Relay({ config, log: createLogger('silent') })
  try {
    await relay.start()
    const base = `http://127.0.0.1:${relay.apiPort}`
    const r = await httpGet(`${base}/xrpc/com.example.nothing`)
    assert.equal(r.status, 501)
    assert.deepEqual(JSON.parse(r.body), { error: 'MethodNotImplemented', message: 'method not implemented: com.example.nothing' })
    assert.match(r.headers.get('server') ?? '', /\(atproto-relay\)$/)
    const h = await httpGet(`${base}/xrpc/_health`)
    assert.equal(h.status, 200)
    assert.equal(typeof JSON.parse(h.body).version, 'string')
  } finally {
    await relay.stop()
    await other.drop()
  }
})
