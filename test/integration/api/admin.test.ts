import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { XrpcError } from '../../../src/api/http.ts'
import { ADMIN, PASSWORD, basic, call, createEnv, insertAccount, insertHost, type TestApi, type TestEnv } from './helpers.ts'

let env: TestEnv
let api: TestApi

before(async () => {
  env = await createEnv('apiadmin')
  api = await env.start()
})
after(() => env.close())

const adminGet = (path: string) => call(api.url, path, { headers: ADMIN })
const adminPost = (path: string, json?: unknown) => call(api.url, path, { method: 'POST', headers: ADMIN, json })
const SUCCESS = { success: 'true' }

async function status(did: string): Promise<string> {
  return (await env.db.query<{ status: string }>('SELECT status FROM account WHERE did = $1', [did])).rows[0]!.status
}
async function hostRow(hostname: string) {
  return (await env.db.query('SELECT status, account_limit, account_count FROM host WHERE hostname = $1', [hostname])).rows[0]
}

describe('authentication', () => {
  const path = '/admin/subs/getEnabled'

  test('missing or wrong credentials: 401 with WWW-Authenticate', async () => {
    const cases: Array<Record<string, string>> = [
      {},
      { authorization: basic('admin', 'wrong') },
      { authorization: basic('root', PASSWORD) },
      { authorization: basic('admin', PASSWORD + 'x') },
      { authorization: 'Bearer wrong' },
      { authorization: 'Bearer' },
      { authorization: `Token ${PASSWORD}` },
      { authorization: 'Basic !!!notbase64' },
    ]
    for (const headers of cases) {
      const r = await call(api.url, path, { headers })
      assert.equal(r.status, 401, JSON.stringify(headers))
      assert.equal(r.headers.get('www-authenticate'), 'Basic realm="relay admin"')
      assert.equal(r.body.error, 'AuthRequired')
    }
    // a mutation without credentials changes nothing
    const r = await call(api.url, '/admin/subs/setEnabled?enabled=false', { method: 'POST' })
    assert.equal(r.status, 401)
    assert.equal(await api.registered.settings.requestCrawlEnabled(), true)
  })

  test('Basic user admin and Bearer both work', async () => {
    assert.equal((await call(api.url, path, { headers: { authorization: basic('admin', PASSWORD) } })).status, 200)
    assert.equal((await call(api.url, path, { headers: { authorization: `Bearer ${PASSWORD}` } })).status, 200)
    assert.equal((await call(api.url, path, { headers: { authorization: `bearer ${PASSWORD}` } })).status, 200)
  })

  test('without RELAY_ADMIN_PASSWORD the admin API is disabled, whatever the credentials', async () => {
    const off = await env.start({ password: null })
    for (const headers of [{}, { authorization: basic('admin', '') }, { authorization: 'Bearer ' }]) {
      const r = await call(off.url, path, { headers })
      assert.equal(r.status, 403)
      assert.equal(r.body.error, 'AdminDisabled')
      assert.match(r.body.message, /RELAY_ADMIN_PASSWORD/)
    }
    // the public API still works
    assert.equal((await call(off.url, '/xrpc/com.atproto.sync.listHosts')).status, 200)
    await off.close()
  })

  test('wrong method on an admin path: 405', async () => {
    assert.equal((await adminGet('/admin/pds/block?host=x.example.com')).status, 405)
  })
})

describe('requestCrawl settings', () => {
  test('setEnabled / getEnabled and setPerDayLimit / perDayLimit persist across a restart of the routes', async () => {
    assert.deepEqual((await adminGet('/admin/subs/getEnabled')).body, { enabled: true })
    assert.deepEqual((await adminGet('/admin/subs/perDayLimit')).body, { limit: 50 })
    assert.deepEqual((await adminPost('/admin/subs/setEnabled?enabled=false')).body, SUCCESS)
    assert.deepEqual((await adminPost('/admin/subs/setPerDayLimit?limit=7')).body, SUCCESS)

    const restarted = await env.start()
    const h = { headers: ADMIN }
    assert.deepEqual((await call(restarted.url, '/admin/subs/getEnabled', h)).body, { enabled: false })
    assert.deepEqual((await call(restarted.url, '/admin/subs/perDayLimit', h)).body, { limit: 7 })
    assert.equal(await restarted.registered.settings.requestCrawlEnabled(), false)
    assert.equal(await restarted.registered.settings.newHostsPerDay(), 7)
    await restarted.close()

    assert.deepEqual((await adminPost('/admin/subs/setEnabled?enabled=true')).body, SUCCESS)
    assert.deepEqual((await adminGet('/admin/subs/getEnabled')).body, { enabled: true })
  })

  test('bad values are 400 naming the parameter', async () => {
    for (const [path, param] of [
      ['/admin/subs/setEnabled', 'enabled'],
      ['/admin/subs/setEnabled?enabled=maybe', 'enabled'],
      ['/admin/subs/setPerDayLimit', 'limit'],
      ['/admin/subs/setPerDayLimit?limit=-1', 'limit'],
      ['/admin/subs/setPerDayLimit?limit=ten', 'limit'],
    ]) {
      const r = await adminPost(path!)
      assert.equal(r.status, 400, path)
      assert.match(r.body.message, new RegExp(param!))
    }
  })
})

describe('upstream connections and domain bans', () => {
  test('getUpstreamConns lists connected hosts; killUpstream disconnects, or 400 when not connected', async () => {
    api.control.connected = new Set(['a.example.com', 'b.example.com'])
    assert.deepEqual((await adminGet('/admin/subs/getUpstreamConns')).body, ['a.example.com', 'b.example.com'])
    api.control.take()
    assert.deepEqual((await adminPost('/admin/subs/killUpstream?host=a.example.com')).body, SUCCESS)
    assert.deepEqual(api.control.take(), [['disconnectHost', 'a.example.com']])
    const again = await adminPost('/admin/subs/killUpstream?host=a.example.com')
    assert.equal(again.status, 400)
    assert.match(again.body.message, /no active connection/)
    assert.equal((await adminPost('/admin/subs/killUpstream')).status, 400)
  })

  test('killUpstream with block=true also bans the host', async () => {
    await insertHost(env.db, 'kill.example.com', { lastSeq: 3 })
    api.control.connected.add('kill.example.com')
    api.control.take()
    assert.deepEqual((await adminPost('/admin/subs/killUpstream?host=kill.example.com&block=true')).body, SUCCESS)
    assert.equal((await hostRow('kill.example.com')).status, 'banned')
    assert.deepEqual(api.control.take(), [['disconnectHost', 'kill.example.com']])
  })

  test('banDomain stores the ban and disconnects connected hosts under it (any depth), not lookalikes', async () => {
    api.control.connected = new Set(['pds.evil.com', 'a.b.evil.com', 'evil.com.example.org', 'notevil.com', 'good.example.org'])
    api.control.take()
    // indigo's Go field name {"Domain"}; matching is case-insensitive
    assert.deepEqual((await adminPost('/admin/subs/banDomain', { Domain: 'Evil.COM' })).body, SUCCESS)
    const calls = api.control.take()
    assert.deepEqual(calls.map((c) => c[1]).sort(), ['a.b.evil.com', 'pds.evil.com'])
    assert.ok(calls.every((c) => c[0] === 'disconnectHost'))
    assert.deepEqual([...api.control.connected].sort(), ['evil.com.example.org', 'good.example.org', 'notevil.com'])

    // goat sends {"domain"}
    assert.deepEqual((await adminPost('/admin/subs/banDomain', { domain: 'spam.example' })).body, SUCCESS)
    assert.deepEqual((await adminPost('/admin/subs/banDomain', { domain: 'spam.example' })).body, SUCCESS) // idempotent
    assert.deepEqual((await adminGet('/admin/subs/listDomainBans')).body, { banned_domains: ['evil.com', 'spam.example'] })
    assert.deepEqual((await adminPost('/admin/subs/unbanDomain', { domain: 'spam.example' })).body, SUCCESS)
    assert.deepEqual((await adminGet('/admin/subs/listDomainBans')).body, { banned_domains: ['evil.com'] })
    const rows = await env.db.query('SELECT domain FROM domain_ban ORDER BY domain')
    assert.deepEqual(rows.rows, [{ domain: 'evil.com' }])
  })

  test('banDomain input errors', async () => {
    for (const body of [undefined, {}, { domain: '' }, { domain: 'bad domain' }, { domain: 'com' }, { domain: 42 }, ['evil.com']]) {
      const r = await adminPost('/admin/subs/banDomain', body)
      assert.equal(r.status, 400, JSON.stringify(body))
      assert.equal(r.body.error, 'InvalidRequest')
    }
    const r = await call(api.url, '/admin/subs/banDomain', {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: '{nope',
    })
    assert.equal(r.status, 400)
  })
})

describe('takedowns', () => {
  let hostId: number
  before(async () => {
    hostId = await insertHost(env.db, 'td.example.com', { lastSeq: 1 })
    for (const n of [1, 2, 3]) await insertAccount(env.db, `did:plc:td${n}`, hostId)
  })

  test('takeDown sets takendown, hides events, reloads workers, then emits #account', async () => {
    api.control.take()
    assert.deepEqual((await adminPost('/admin/repo/takeDown', { did: 'did:plc:td1' })).body, SUCCESS)
    assert.equal(await status('did:plc:td1'), 'takendown')
    assert.deepEqual(api.control.take(), [
      ['hideAccountEvents', 'did:plc:td1'],
      ['invalidateAccount', 'did:plc:td1'],
      ['emitAccountStatus', 'did:plc:td1'],
    ])
    // visible on the public API
    const r = await call(api.url, '/xrpc/com.atproto.sync.getLatestCommit?did=did:plc:td1')
    assert.equal(r.body.error, 'RepoTakendown')
  })

  test('takedowns pages through taken-down accounts with a string cursor (goat loops until it is absent)', async () => {
    await adminPost('/admin/repo/takeDown', { did: 'did:plc:td2' })
    await adminPost('/admin/repo/takeDown', { did: 'did:plc:td3' })
    const p1 = await adminGet('/admin/repo/takedowns?cursor=&size=2')
    assert.deepEqual(p1.body.dids, ['did:plc:td1', 'did:plc:td2'])
    assert.equal(typeof p1.body.cursor, 'string')
    const p2 = await adminGet(`/admin/repo/takedowns?cursor=${p1.body.cursor}&size=2`)
    assert.deepEqual(p2.body, { dids: ['did:plc:td3'] })
    assert.deepEqual((await adminGet('/admin/repo/takedowns')).body, { dids: ['did:plc:td1', 'did:plc:td2', 'did:plc:td3'] })
    assert.equal((await adminGet('/admin/repo/takedowns?cursor=x')).status, 400)
  })

  test('reverseTakedown sets active, reloads and emits; a no-op for accounts not taken down', async () => {
    api.control.take()
    assert.deepEqual((await adminPost('/admin/repo/reverseTakedown', { did: 'did:plc:td1' })).body, SUCCESS)
    assert.equal(await status('did:plc:td1'), 'active')
    assert.deepEqual(api.control.take(), [
      ['invalidateAccount', 'did:plc:td1'],
      ['emitAccountStatus', 'did:plc:td1'],
    ])
    assert.deepEqual((await adminPost('/admin/repo/reverseTakedown', { did: 'did:plc:td1' })).body, SUCCESS)
    assert.deepEqual(api.control.take(), [])
  })

  test('errors: missing or bad did 400, unknown account 404', async () => {
    for (const path of ['/admin/repo/takeDown', '/admin/repo/reverseTakedown']) {
      assert.equal((await adminPost(path, {})).status, 400)
      assert.equal((await adminPost(path, { did: 'nope' })).status, 400)
      const r = await adminPost(path, { did: 'did:plc:nobody' })
      assert.equal(r.status, 404)
      assert.equal(r.body.error, 'RepoNotFound')
    }
    assert.deepEqual(api.control.take(), [])
  })
})

describe('hosts', () => {
  test('changeLimits raise releases throttled accounts oldest first; lowering throttles the newest active', async () => {
    const h = await insertHost(env.db, 'limits.example.com', { lastSeq: 1, limit: 2, accountCount: 6 })
    await insertAccount(env.db, 'did:plc:l1', h)
    await insertAccount(env.db, 'did:plc:l2', h, { status: 'takendown' }) // admitted, counts against the limit
    await insertAccount(env.db, 'did:plc:l3', h, { status: 'throttled' })
    await insertAccount(env.db, 'did:plc:l4', h, { status: 'throttled' })
    await insertAccount(env.db, 'did:plc:l5', h, { status: 'throttled' })
    await insertAccount(env.db, 'did:plc:l6', h, { status: 'throttled' })
    api.control.take()

    assert.deepEqual((await adminPost('/admin/pds/changeLimits', { host: 'limits.example.com', repo_limit: 4 })).body, SUCCESS)
    assert.deepEqual(api.control.take(), [
      ['setHostLimits', 'limits.example.com', 4],
      ['invalidateAccount', 'did:plc:l3'],
      ['emitAccountStatus', 'did:plc:l3'],
      ['invalidateAccount', 'did:plc:l4'],
      ['emitAccountStatus', 'did:plc:l4'],
    ])
    assert.deepEqual(
      (await env.db.query(`SELECT did, status FROM account WHERE host_id = $1 ORDER BY uid`, [h])).rows.map((r) => r.status),
      ['active', 'takendown', 'active', 'active', 'throttled', 'throttled'],
    )
    assert.deepEqual(await hostRow('limits.example.com'), { status: 'active', account_limit: 4, account_count: 6 })

    // lower to 2: two of the four admitted must go; only active ones are throttled, newest first
    assert.deepEqual((await adminPost('/admin/pds/changeLimits', { host: 'https://limits.example.com', repo_limit: 2 })).body, SUCCESS)
    assert.deepEqual(api.control.take(), [
      ['setHostLimits', 'limits.example.com', 2],
      ['invalidateAccount', 'did:plc:l4'],
      ['emitAccountStatus', 'did:plc:l4'],
      ['invalidateAccount', 'did:plc:l3'],
      ['emitAccountStatus', 'did:plc:l3'],
    ])
    assert.deepEqual(
      (await env.db.query(`SELECT status FROM account WHERE host_id = $1 ORDER BY uid`, [h])).rows.map((r) => r.status),
      ['active', 'takendown', 'throttled', 'throttled', 'throttled', 'throttled'],
    )
    // raising far beyond releases everyone, and the same limit again changes nothing
    await adminPost('/admin/pds/changeLimits', { host: 'limits.example.com', repo_limit: 100 })
    assert.equal(api.control.take().filter((c) => c[0] === 'emitAccountStatus').length, 4)
    await adminPost('/admin/pds/changeLimits', { host: 'limits.example.com', repo_limit: 100 })
    assert.deepEqual(api.control.take(), [['setHostLimits', 'limits.example.com', 100]])
  })

  test('changeLimits errors', async () => {
    const cases: Array<[unknown, number]> = [
      [{ repo_limit: 5 }, 400],
      [{ host: 'limits.example.com' }, 400],
      [{ host: 'limits.example.com', repo_limit: -1 }, 400],
      [{ host: 'limits.example.com', repo_limit: 1.5 }, 400],
      [{ host: 'limits.example.com', repo_limit: '5' }, 400],
      [{ host: 'nope.example.com', repo_limit: 5 }, 404],
      [{ host: 'nope.example.com', account_limit_alerts_silenced: true }, 404],
      [{ host: 'limits.example.com', account_limit_alerts_silenced: true }, 200],
    ]
    for (const [body, code] of cases) assert.equal((await adminPost('/admin/pds/changeLimits', body)).status, code, JSON.stringify(body))
  })

  test('block bans and disconnects; unblock reactivates and reconnects', async () => {
    await insertHost(env.db, 'blk.example.com', { lastSeq: 9 })
    api.control.connected.add('blk.example.com')
    api.control.take()
    assert.deepEqual((await adminPost('/admin/pds/block?host=blk.example.com')).body, SUCCESS)
    assert.equal((await hostRow('blk.example.com')).status, 'banned')
    assert.deepEqual(api.control.take(), [['disconnectHost', 'blk.example.com']])
    const pub = await call(api.url, '/xrpc/com.atproto.sync.getHostStatus?hostname=blk.example.com')
    assert.equal(pub.body.status, 'banned')

    assert.deepEqual((await adminPost('/admin/pds/unblock?host=blk.example.com')).body, SUCCESS)
    assert.equal((await hostRow('blk.example.com')).status, 'active')
    assert.deepEqual(api.control.take(), [['connectHost', 'blk.example.com']])

    for (const p of ['/admin/pds/block?host=nope.example.com', '/admin/pds/unblock?host=nope.example.com']) {
      const r = await adminPost(p)
      assert.equal(r.status, 404)
      assert.equal(r.body.error, 'HostNotFound')
    }
    assert.equal((await adminPost('/admin/pds/block')).status, 400)
    assert.equal((await adminPost('/admin/pds/block?host=1.2.3.4')).status, 400)
  })

  test('pds/list returns indigo-shaped rows', async () => {
    api.control.connected = new Set(['blk.example.com'])
    api.control.stats.set('blk.example.com', { eventsSeenSinceStartup: 12, perSecond: { max: 50, windowSeconds: 1 } })
    const r = await adminGet('/admin/pds/list')
    assert.equal(r.status, 200)
    assert.ok(Array.isArray(r.body))
    const row = r.body.find((x: any) => x.Host === 'blk.example.com')
    assert.equal(row.HasActiveConnection, true)
    assert.equal(row.Cursor, 9)
    assert.equal(row.SSL, true)
    assert.equal(row.Blocked, false)
    assert.equal(row.RepoLimit, 100)
    assert.equal(row.EventsSeenSinceStartup, 12)
    assert.deepEqual(row.PerSecondEventRate, { Max: 50, Window: 1_000_000_000 })
    assert.deepEqual(row.PerDayEventRate, { Max: -1, Window: 86_400_000_000_000 })
    for (const k of [
      'ID',
      'CreatedAt',
      'Registered',
      'CrawlRateLimit',
      'RepoCount',
      'PerHourEventRate',
      'UserCount',
      'AccountLimitAlertsSilenced',
      'AccountLimitAlertState',
    ]) {
      assert.ok(k in row, k)
    }
    const kill = r.body.find((x: any) => x.Host === 'kill.example.com')
    assert.equal(kill.Blocked, true)
    assert.equal(kill.HasActiveConnection, false)
  })

  test('pds/requestCrawl passes the hostname to the subscriber as an admin request', async () => {
    api.control.take()
    assert.deepEqual((await adminPost('/admin/pds/requestCrawl', { hostname: 'http://localhost:2583' })).body, SUCCESS)
    assert.deepEqual(api.control.take(), [['requestCrawl', 'http://localhost:2583', { admin: true }]])
    assert.equal((await adminPost('/admin/pds/requestCrawl', { hostname: 'bad host' })).status, 400)
    assert.equal((await adminPost('/admin/pds/requestCrawl', {})).status, 400)
    api.control.crawlError = new XrpcError(400, 'HostBanned', 'host domain is banned')
    const r = await adminPost('/admin/pds/requestCrawl', { hostname: 'x.evil.com' })
    assert.deepEqual([r.status, r.body], [400, { error: 'HostBanned', message: 'host domain is banned' }])
    api.control.crawlError = undefined
  })
})

test('consumers/list returns the broadcaster consumers', async () => {
  api.control.consumerList = [
    { id: 1, remote_addr: '127.0.0.1:5000', user_agent: 'test', events_consumed: 42, connected_at: '2025-01-01T00:00:00.000Z' },
  ]
  assert.deepEqual((await adminGet('/admin/consumers/list')).body, api.control.consumerList)
})
