import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { call, createEnv, insertAccount, insertHost, type TestApi, type TestEnv } from './helpers.ts'

let env: TestEnv
let api: TestApi
const get = (path: string) => call(api.url, path)

before(async () => {
  env = await createEnv('apisync')
  api = await env.start()
})
after(() => env.close())

function assertBadParam(r: { status: number; body: any }, param: string): void {
  assert.equal(r.status, 400, JSON.stringify(r.body))
  assert.equal(r.body.error, 'InvalidRequest')
  assert.match(r.body.message, new RegExp(`\\b${param}\\b`))
}

describe('listHosts and getHostStatus', () => {
  test('empty relay: an explicit empty list and no cursor', async () => {
    const r = await get('/xrpc/com.atproto.sync.listHosts')
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { hosts: [] })
  })

  test('lists hosts that delivered events or are active, oldest first; pages without skips or duplicates', async () => {
    await insertHost(env.db, 'pds-a.example.com', { lastSeq: 10, accountCount: 3 })
    await insertHost(env.db, 'pds-b.example.com') // active, never delivered: listed without seq
    await insertHost(env.db, 'pds-c.example.com', { status: 'banned' }) // never delivered, banned: hidden
    await insertHost(env.db, 'pds-d.example.com', { lastSeq: 5, status: 'offline' })
    await insertHost(env.db, 'pds-e.example.com', { lastSeq: 0, status: 'idle' })

    const all = await get('/xrpc/com.atproto.sync.listHosts')
    assert.deepEqual(all.body.hosts, [
      { hostname: 'pds-a.example.com', seq: 10, accountCount: 3, status: 'active' },
      { hostname: 'pds-b.example.com', accountCount: 0, status: 'active' },
      { hostname: 'pds-d.example.com', seq: 5, accountCount: 0, status: 'offline' },
      { hostname: 'pds-e.example.com', seq: 0, accountCount: 0, status: 'idle' },
    ])
    assert.equal(all.body.cursor, undefined)

    const p1 = await get('/xrpc/com.atproto.sync.listHosts?limit=2')
    assert.deepEqual(
      p1.body.hosts.map((h: any) => h.hostname),
      ['pds-a.example.com', 'pds-b.example.com'],
    )
    assert.equal(typeof p1.body.cursor, 'string')
    // a host added between pages lands after the cursor and is seen exactly once
    await insertHost(env.db, 'pds-f.example.com', { lastSeq: 1 })
    const p2 = await get(`/xrpc/com.atproto.sync.listHosts?limit=2&cursor=${p1.body.cursor}`)
    assert.deepEqual(
      p2.body.hosts.map((h: any) => h.hostname),
      ['pds-d.example.com', 'pds-e.example.com'],
    )
    const p3 = await get(`/xrpc/com.atproto.sync.listHosts?limit=2&cursor=${p2.body.cursor}`)
    assert.deepEqual(
      p3.body.hosts.map((h: any) => h.hostname),
      ['pds-f.example.com'],
    )
    assert.equal(p3.body.cursor, undefined)
  })

  test('listHosts rejects bad limit and cursor, naming the parameter', async () => {
    for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=1.5'])
      assertBadParam(await get(`/xrpc/com.atproto.sync.listHosts?${q}`), 'limit')
    for (const q of ['cursor=-1', 'cursor=abc', 'cursor=99999999999999999999'])
      assertBadParam(await get(`/xrpc/com.atproto.sync.listHosts?${q}`), 'cursor')
    assertBadParam(await get('/xrpc/com.atproto.sync.listHosts?limit=1&limit=2'), 'limit')
  })

  test('getHostStatus answers for any known host, by canonical name', async () => {
    const r = await get('/xrpc/com.atproto.sync.getHostStatus?hostname=pds-a.example.com')
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { hostname: 'pds-a.example.com', seq: 10, accountCount: 3, status: 'active' })
    const banned = await get('/xrpc/com.atproto.sync.getHostStatus?hostname=' + encodeURIComponent('https://PDS-C.example.com/'))
    assert.deepEqual(banned.body, { hostname: 'pds-c.example.com', accountCount: 0, status: 'banned' })
  })

  test('getHostStatus errors: unknown host 404 HostNotFound, bad or missing hostname 400', async () => {
    const r = await get('/xrpc/com.atproto.sync.getHostStatus?hostname=nope.example.com')
    assert.equal(r.status, 404)
    assert.equal(r.body.error, 'HostNotFound')
    assert.equal(typeof r.body.message, 'string')
    assertBadParam(await get('/xrpc/com.atproto.sync.getHostStatus'), 'hostname')
    assertBadParam(await get('/xrpc/com.atproto.sync.getHostStatus?hostname=bad_host!'), 'hostname')
    assertBadParam(await get('/xrpc/com.atproto.sync.getHostStatus?hostname=10.0.0.1'), 'hostname')
  })
})

describe('repos', () => {
  let hostId: number
  const HEAD = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm'
  const REV = '3l3qo2vutsw2b'

  before(async () => {
    hostId = await insertHost(env.db, 'repos.example.com', { lastSeq: 1 })
    await insertHost(env.db, 'localhost:2583', { noSsl: true, lastSeq: 1 })
    await insertAccount(env.db, 'did:plc:active1', hostId)
    await insertAccount(env.db, 'did:plc:nocommit', hostId, { rev: null, cid: null })
    await insertAccount(env.db, 'did:plc:takendown', hostId, { status: 'takendown' })
    await insertAccount(env.db, 'did:plc:suspended', hostId, { status: 'suspended' })
    await insertAccount(env.db, 'did:plc:throttled', hostId, { status: 'throttled' })
    await insertAccount(env.db, 'did:plc:deactivated', hostId, { upstream: 'deactivated' })
    await insertAccount(env.db, 'did:plc:deleted', hostId, { upstream: 'deleted' })
    await insertAccount(env.db, 'did:plc:inactive', hostId, { upstream: 'inactive' })
    await insertAccount(env.db, 'did:plc:desync', hostId, { desync: true })
  })

  test('listRepos: head and rev always present, inactive accounts flagged, accounts without a commit omitted', async () => {
    const r = await get('/xrpc/com.atproto.sync.listRepos')
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, {
      repos: [
        { did: 'did:plc:active1', head: HEAD, rev: REV, active: true },
        { did: 'did:plc:takendown', head: HEAD, rev: REV, active: false, status: 'takendown' },
        { did: 'did:plc:suspended', head: HEAD, rev: REV, active: false, status: 'suspended' },
        { did: 'did:plc:throttled', head: HEAD, rev: REV, active: false, status: 'throttled' },
        { did: 'did:plc:deactivated', head: HEAD, rev: REV, active: false, status: 'deactivated' },
        { did: 'did:plc:deleted', head: HEAD, rev: REV, active: false, status: 'deleted' },
        { did: 'did:plc:inactive', head: HEAD, rev: REV, active: false },
        { did: 'did:plc:desync', head: HEAD, rev: REV, active: true, status: 'desynchronized' },
      ],
    })
  })

  test('listRepos pages by uid; accounts created or committing between pages are neither skipped nor repeated', async () => {
    const seen: string[] = []
    let cursor: string | undefined
    let round = 0
    do {
      const r = await get(`/xrpc/com.atproto.sync.listRepos?limit=3${cursor ? `&cursor=${cursor}` : ''}`)
      assert.equal(r.status, 200)
      seen.push(...r.body.repos.map((x: any) => x.did))
      cursor = r.body.cursor
      if (round++ === 0) {
        await insertAccount(env.db, `did:plc:late${round}`, hostId)
        // an account that was omitted (no commit yet) gets its first commit: it sorts before the cursor
        await env.db.query(`UPDATE account SET rev = $1, commit_cid = $2 WHERE did = 'did:plc:nocommit'`, [REV, HEAD])
      }
    } while (cursor)
    assert.equal(new Set(seen).size, seen.length, 'no duplicates')
    assert.ok(seen.includes('did:plc:late1'))
    assert.equal(seen.length, 9)
    await env.db.query(`UPDATE account SET rev = NULL, commit_cid = NULL WHERE did = 'did:plc:nocommit'`)
    await env.db.query(`DELETE FROM account WHERE did = 'did:plc:late1'`)
  })

  test('listRepos rejects bad limit and cursor', async () => {
    for (const q of ['limit=0', 'limit=1001', 'limit=x']) assertBadParam(await get(`/xrpc/com.atproto.sync.listRepos?${q}`), 'limit')
    assertBadParam(await get('/xrpc/com.atproto.sync.listRepos?cursor=did:plc:x'), 'cursor')
  })

  test('getRepoStatus: combined status and rev when known', async () => {
    const s = (did: string) => get(`/xrpc/com.atproto.sync.getRepoStatus?did=${did}`)
    assert.deepEqual((await s('did:plc:active1')).body, { did: 'did:plc:active1', active: true, rev: REV })
    assert.deepEqual((await s('did:plc:nocommit')).body, { did: 'did:plc:nocommit', active: true })
    assert.deepEqual((await s('did:plc:takendown')).body, { did: 'did:plc:takendown', active: false, status: 'takendown', rev: REV })
    assert.deepEqual((await s('did:plc:deactivated')).body, { did: 'did:plc:deactivated', active: false, status: 'deactivated', rev: REV })
    assert.deepEqual((await s('did:plc:inactive')).body, { did: 'did:plc:inactive', active: false, rev: REV })
    const missing = await s('did:plc:unknown')
    assert.equal(missing.status, 404)
    assert.equal(missing.body.error, 'RepoNotFound')
    assertBadParam(await get('/xrpc/com.atproto.sync.getRepoStatus'), 'did')
    assertBadParam(await s('not-a-did'), 'did')
    assertBadParam(await s('did:PLC:upper'), 'did')
  })

  test('getLatestCommit: commit of an active account, and every documented error', async () => {
    const c = (did: string) => get(`/xrpc/com.atproto.sync.getLatestCommit?did=${did}`)
    const ok = await c('did:plc:active1')
    assert.equal(ok.status, 200)
    assert.deepEqual(ok.body, { cid: HEAD, rev: REV })
    assert.deepEqual((await c('did:plc:desync')).body, { cid: HEAD, rev: REV })
    const cases: Array<[string, number, string]> = [
      ['did:plc:takendown', 403, 'RepoTakendown'],
      ['did:plc:suspended', 403, 'RepoSuspended'],
      ['did:plc:deactivated', 403, 'RepoDeactivated'],
      ['did:plc:deleted', 403, 'RepoDeleted'],
      ['did:plc:throttled', 403, 'RepoInactive'],
      ['did:plc:inactive', 403, 'RepoInactive'],
      ['did:plc:nocommit', 404, 'RepoNotSynchronized'],
      ['did:plc:unknown', 404, 'RepoNotFound'],
    ]
    for (const [did, status, error] of cases) {
      const r = await c(did)
      assert.equal(r.status, status, did)
      assert.equal(r.body.error, error, did)
      assert.equal(typeof r.body.message, 'string')
    }
    assertBadParam(await get('/xrpc/com.atproto.sync.getLatestCommit?did=did:plc:'), 'did')
  })

  test('getRepo redirects to the account host with the same query', async () => {
    const r = await get('/xrpc/com.atproto.sync.getRepo?did=did:plc:active1&since=3l3qo2vutsw2a')
    assert.equal(r.status, 302)
    assert.equal(
      r.headers.get('location'),
      'https://repos.example.com/xrpc/com.atproto.sync.getRepo?did=did:plc:active1&since=3l3qo2vutsw2a',
    )
    const local = (await env.db.query<{ id: number }>(`SELECT id FROM host WHERE hostname = 'localhost:2583'`)).rows[0]!.id
    await insertAccount(env.db, 'did:plc:localdev', local)
    const dev = await get('/xrpc/com.atproto.sync.getRepo?did=did:plc:localdev')
    assert.equal(dev.headers.get('location'), 'http://localhost:2583/xrpc/com.atproto.sync.getRepo?did=did:plc:localdev')
    // no commit seen yet: the PDS has the repo, so still a redirect
    assert.equal((await get('/xrpc/com.atproto.sync.getRepo?did=did:plc:nocommit')).status, 302)
  })

  test('getRepo errors: status errors, unknown account, bad did and since', async () => {
    for (const [did, error] of [
      ['did:plc:takendown', 'RepoTakendown'],
      ['did:plc:suspended', 'RepoSuspended'],
      ['did:plc:deactivated', 'RepoDeactivated'],
      ['did:plc:deleted', 'RepoDeleted'],
    ]) {
      const r = await get(`/xrpc/com.atproto.sync.getRepo?did=${did}`)
      assert.equal(r.status, 403)
      assert.equal(r.body.error, error)
    }
    const missing = await get('/xrpc/com.atproto.sync.getRepo?did=did:plc:unknown')
    assert.equal(missing.status, 404)
    assert.equal(missing.body.error, 'RepoNotFound')
    assertBadParam(await get('/xrpc/com.atproto.sync.getRepo'), 'did')
    assertBadParam(await get('/xrpc/com.atproto.sync.getRepo?did=did:plc:active1&since=notatid'), 'since')
  })
})

describe('listReposByCollection', () => {
  const C = 'app.bsky.feed.post'
  const list = (q: string) => get(`/xrpc/com.atproto.sync.listReposByCollection?${q}`)

  before(async () => {
    const h = await insertHost(env.db, 'coll.example.com', { lastSeq: 1 })
    await insertAccount(env.db, 'did:plc:c-takendown', h, { status: 'takendown' })
    await insertAccount(env.db, 'did:plc:c-deactivated', h, { upstream: 'deactivated' })
    await insertAccount(env.db, 'did:plc:c-b', h)
    const rows: Array<[string, string, number]> = [
      [C, 'did:plc:c-b', 3],
      [C, 'did:plc:c-d', 1], // no account row (yet): listed
      [C, 'did:plc:c-f', 2],
      [C, 'did:plc:c-h', 0], // last record deleted
      [C, 'did:plc:c-takendown', 4],
      [C, 'did:plc:c-deactivated', 4],
      ['app.bsky.feed.like', 'did:plc:c-a', 1],
    ]
    for (const [collection, did, n] of rows) {
      await env.db.query('INSERT INTO collection_repo (collection, did, record_count) VALUES ($1, $2, $3)', [collection, did, n])
    }
  })

  test('lists repos with records in the collection, skipping emptied and inactive ones', async () => {
    const r = await list(`collection=${C}`)
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { repos: [{ did: 'did:plc:c-b' }, { did: 'did:plc:c-d' }, { did: 'did:plc:c-f' }] })
    assert.deepEqual((await list('collection=com.example.nothing')).body, { repos: [] })
  })

  test('keyset pages stay stable when repos join the collection between pages', async () => {
    const p1 = await list(`collection=${C}&limit=2`)
    assert.deepEqual(p1.body.repos, [{ did: 'did:plc:c-b' }, { did: 'did:plc:c-d' }])
    assert.ok(p1.body.cursor)
    // one joins before the cursor (not in this enumeration), one after (seen once)
    await env.db.query('INSERT INTO collection_repo (collection, did, record_count) VALUES ($1, $2, 1), ($1, $3, 1)', [
      C,
      'did:plc:c-a',
      'did:plc:c-e',
    ])
    const p2 = await list(`collection=${C}&limit=2&cursor=${encodeURIComponent(p1.body.cursor)}`)
    assert.deepEqual(p2.body.repos, [{ did: 'did:plc:c-e' }, { did: 'did:plc:c-f' }])
    assert.equal(p2.body.cursor, undefined, 'last page: no cursor')
  })

  test('validates collection, limit and cursor', async () => {
    assertBadParam(await list(''), 'collection')
    for (const bad of ['app.bsky', 'app..bsky.post', '1app.bsky.post', 'app.bsky.feed.po-st', 'app.bsky.feed.post/x']) {
      assertBadParam(await list(`collection=${encodeURIComponent(bad)}`), 'collection')
    }
    assertBadParam(await list(`collection=${C}&limit=2001`), 'limit')
    assertBadParam(await list(`collection=${C}&limit=0`), 'limit')
    assert.equal((await list(`collection=${C}&limit=2000`)).status, 200)
    assertBadParam(await list(`collection=${C}&cursor=garbage`), 'cursor')
  })
})

test('unknown XRPC methods answer 501 MethodNotImplemented', async () => {
  const r = await get('/xrpc/com.atproto.sync.getBlob?did=did:plc:x&cid=y')
  assert.equal(r.status, 501)
  assert.equal(r.body.error, 'MethodNotImplemented')
})
