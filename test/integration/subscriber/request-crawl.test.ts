// requestCrawl through the real ApiServer. No traffic ever leaves loopback: names are resolved by
// an injected lookup, and every non-loopback target must be refused before any socket exists.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { LookupAddress } from 'node:dns'
import { CursorRegistry } from '../../../src/subscriber/ingest.ts'
import type { LookupFn } from '../../../src/subscriber/ssrf.ts'
import { FakeUpstream, waitFor } from '../../helpers/fake-upstream.ts'
import { FakePipeline, harness, hostRow, startSubscriber, type Harness, type Started } from './helpers.ts'

const ANSWERS: Record<string, LookupAddress[]> = {
  'evil.example.com': [{ address: '10.0.0.5', family: 4 }],
  'meta.example.com': [{ address: '169.254.169.254', family: 4 }],
  'loop.example.com': [{ address: '127.0.0.1', family: 4 }],
  'mapped.example.com': [{ address: '::ffff:127.0.0.1', family: 6 }],
  'mixed.example.com': [
    { address: '93.184.216.34', family: 4 },
    { address: '192.168.1.1', family: 4 },
  ],
  localhost: [{ address: '127.0.0.1', family: 4 }],
}
const lookups: string[] = []
const lookup: LookupFn = (hostname, _opts, cb) => {
  lookups.push(hostname)
  const a = ANSWERS[hostname]
  if (a) setImmediate(() => cb(null, a))
  else setImmediate(() => cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []))
}

async function crawl(h: Harness, body: unknown): Promise<{ status: number; body: { error?: string; message?: string } | null }> {
  const res = await fetch(`http://127.0.0.1:${h.apiPort}/xrpc/com.atproto.sync.requestCrawl`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null }
}

async function hostCount(h: Harness): Promise<number> {
  const { rows } = await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM host')
  return rows[0]!.n
}

describe('requestCrawl, insecure hosts off (production policy)', () => {
  let h: Harness
  let s: Started
  let sink: FakePipeline
  before(async () => {
    h = await harness('crawl')
    sink = new FakePipeline(h.db, new CursorRegistry())
    s = await startSubscriber(h, sink, { cursors: sink.cursors, lookup, registerRoute: true, describeTimeoutMs: 2000 })
    await h.db.query(`INSERT INTO domain_ban (domain) VALUES ('banned.example'), ('bad.host.example')`)
  })
  after(async () => {
    await s.sub.stop?.()
    sink.close()
    await h.close()
  })

  const rejects = async (input: unknown, status: number, error: string, message?: RegExp) => {
    const before = await hostCount(h)
    const r = await crawl(h, input)
    assert.equal(r.status, status, `${JSON.stringify(input)} → ${r.status} ${JSON.stringify(r.body)}`)
    assert.equal(r.body?.error, error, JSON.stringify(input))
    assert.equal(typeof r.body?.message, 'string')
    if (message) assert.match(r.body!.message!, message, JSON.stringify(input))
    assert.equal(await hostCount(h), before, 'host table unchanged')
  }

  it('rejects malformed bodies and invalid hostnames', async () => {
    await rejects('not json', 400, 'InvalidRequest')
    await rejects([], 400, 'InvalidRequest')
    await rejects({}, 400, 'InvalidRequest', /hostname is required/)
    await rejects({ hostname: 42 }, 400, 'InvalidRequest')
    for (const hostname of [
      '',
      '   ',
      'nodots',
      'bad_char.example.com',
      'a..example.com',
      '-a.example.com',
      'https://a.example.com/path',
      'https://a.example.com?x=1',
      'user@a.example.com',
      'ftp://a.example.com',
      'a.example.123',
      `${'a'.repeat(64)}.example.com`,
    ]) {
      await rejects({ hostname }, 400, 'InvalidRequest')
    }
  })

  it('rejects IP literals (IPv4, IPv6, IPv4-mapped) and ports', async () => {
    for (const hostname of [
      '127.0.0.1',
      '10.0.0.1',
      '169.254.169.254',
      'https://10.0.0.1',
      '8.8.8.8',
      '[::1]',
      '::1',
      'https://[::1]:443',
      '[::ffff:127.0.0.1]',
      '::ffff:7f00:1',
      '[::ffff:a9fe:a9fe]',
      '[fe80::1%eth0]',
      '0x7f.0.0.1',
      '2130706433',
    ]) {
      await rejects({ hostname }, 400, 'InvalidRequest')
    }
    await rejects({ hostname: 'pds.example.com:8443' }, 400, 'InvalidRequest', /port/)
    await rejects({ hostname: 'localhost:2583' }, 400, 'InvalidRequest', /localhost/)
    await rejects({ hostname: 'http://pds.example.com' }, 400, 'InvalidRequest', /https/)
    await rejects({ hostname: 'ws://pds.example.com' }, 400, 'InvalidRequest', /https/)
  })

  it('rejects banned domains and every name below them with HostBanned', async () => {
    await rejects({ hostname: 'banned.example' }, 403, 'HostBanned')
    await rejects({ hostname: 'pds.banned.example' }, 403, 'HostBanned', /banned\.example/)
    await rejects({ hostname: 'https://a.b.BANNED.example' }, 403, 'HostBanned')
    await rejects({ hostname: 'x.bad.host.example' }, 403, 'HostBanned')
    // the parent of a banned name is not banned; it fails later (no DNS answer) instead
    await rejects({ hostname: 'host.example' }, 400, 'HostNotFound')
  })

  it('refuses SSRF targets behind public-looking names before connecting', async () => {
    lookups.length = 0
    await rejects({ hostname: 'evil.example.com' }, 400, 'InvalidRequest', /not a public address/)
    await rejects({ hostname: 'meta.example.com' }, 400, 'InvalidRequest', /169\.254\.169\.254/)
    await rejects({ hostname: 'loop.example.com' }, 400, 'InvalidRequest', /127\.0\.0\.1/)
    await rejects({ hostname: 'mapped.example.com' }, 400, 'InvalidRequest', /::ffff:127\.0\.0\.1/)
    // one private record among public ones refuses the whole name (never dial the public one either)
    await rejects({ hostname: 'mixed.example.com' }, 400, 'InvalidRequest', /192\.168\.1\.1/)
    assert.deepEqual(lookups, ['evil.example.com', 'meta.example.com', 'loop.example.com', 'mapped.example.com', 'mixed.example.com'])
  })

  it('describeServer that cannot be reached → HostNotFound', async () => {
    await rejects({ hostname: 'nxdomain.example.com' }, 400, 'HostNotFound', /unreachable/)
  })

  it('admin add of localhost:PORT works (not counted against the daily limit); a public request for it is refused', async () => {
    const up = await FakeUpstream.start()
    try {
      await rejects({ hostname: up.hostname }, 400, 'InvalidRequest')
      assert.equal(await s.sub.requestCrawl(up.hostname, { admin: true }), 'created')
      assert.equal(up.describeCalls, 1)
      const row = await hostRow(h.db, up.hostname)
      assert.equal(row?.status, 'active')
      assert.equal(row?.last_seq, -1)
      const { rows } = await h.db.query('SELECT admin_added, no_ssl, account_limit, trusted FROM host WHERE hostname = $1', [up.hostname])
      assert.deepEqual(rows[0], { admin_added: true, no_ssl: true, account_limit: 100, trusted: false })
      assert.equal((await h.db.query('SELECT count(*)::int AS n FROM host_admission')).rows[0].n, 0)
      await waitFor(() => up.openConnections.length === 1, 5000, 'subscribed')
      // a second admin request for a connected host is a no-op
      assert.equal(await s.sub.requestCrawl(`http://${up.hostname}`, { admin: true }), 'known')
      assert.equal(up.connections.length, 1)
    } finally {
      await s.sub.disconnectHost(up.hostname)
      await up.close()
    }
  })
})

describe('requestCrawl, insecure hosts on (development)', () => {
  let h: Harness
  let s: Started
  let sink: FakePipeline
  const settings = { enabled: true, perDay: 2 }
  before(async () => {
    h = await harness('crawlx')
    sink = new FakePipeline(h.db, new CursorRegistry())
    s = await startSubscriber(h, sink, {
      cursors: sink.cursors,
      lookup,
      registerRoute: true,
      describeTimeoutMs: 2000,
      env: { RELAY_ALLOW_INSECURE_HOSTS: 'true' },
      settings: { requestCrawlEnabled: async () => settings.enabled, newHostsPerDay: async () => settings.perDay },
    })
  })
  after(async () => {
    await s.sub.stop?.()
    sink.close()
    await h.close()
  })

  it('a host that answers as a relay is refused and not inserted', async () => {
    const up = await FakeUpstream.start({ serverHeader: 'indigo-relay/0.1 (atproto-relay)' })
    try {
      const r = await crawl(h, { hostname: up.hostname })
      assert.equal(r.status, 400)
      assert.equal(r.body?.error, 'InvalidRequest')
      assert.match(r.body!.message!, /relay/)
      assert.equal(await hostCount(h), 0)
      assert.equal(up.connections.length, 0)
    } finally {
      await up.close()
    }
  })

  it('describeServer failing with HTTP 500 → HostNotFound', async () => {
    const up = await FakeUpstream.start({ describeStatus: 500 })
    try {
      const r = await crawl(h, { hostname: up.hostname })
      assert.equal(r.status, 400)
      assert.equal(r.body?.error, 'HostNotFound')
      assert.match(r.body!.message!, /500/)
      assert.equal(await hostCount(h), 0)
    } finally {
      await up.close()
    }
  })

  it('admits, subscribes at the live head, enforces the daily limit (429), revives idle hosts, refuses banned ones, honours the switch', async () => {
    const ups = await Promise.all([FakeUpstream.start(), FakeUpstream.start(), FakeUpstream.start()])
    try {
      for (const up of ups.slice(0, 2)) {
        const r = await crawl(h, { hostname: `http://${up.hostname}` })
        assert.equal(r.status, 200, JSON.stringify(r.body))
      }
      assert.equal((await h.db.query('SELECT count(*)::int AS n FROM host_admission')).rows[0].n, 2)
      await waitFor(() => ups[0]!.openConnections.length === 1 && ups[1]!.openConnections.length === 1, 5000, 'subscribed')
      assert.equal(ups[0]!.connections[0]!.cursor, null)

      const limited = await crawl(h, { hostname: ups[2]!.hostname })
      assert.equal(limited.status, 429)
      assert.equal(limited.body?.error, 'RateLimitExceeded')
      assert.equal(await hostCount(h), 2)
      // admins are exempt
      assert.equal(await s.sub.requestCrawl(ups[2]!.hostname, { admin: true }), 'created')
      assert.equal(await hostCount(h), 3)

      // an idle host is revived at once by a (public) requestCrawl for it
      await s.sub.disconnectHost(ups[0]!.hostname)
      await h.db.query(`UPDATE host SET status = 'idle' WHERE hostname = $1`, [ups[0]!.hostname])
      const before = ups[0]!.connections.length
      assert.equal((await crawl(h, { hostname: ups[0]!.hostname })).status, 200)
      await waitFor(() => ups[0]!.connections.length === before + 1 && ups[0]!.openConnections.length === 1, 5000, 'revived')
      await waitFor(async () => (await hostRow(h.db, ups[0]!.hostname))!.status === 'active', 5000, 'active')

      // a banned host is refused
      await h.db.query(`UPDATE host SET status = 'banned' WHERE hostname = $1`, [ups[1]!.hostname])
      const banned = await crawl(h, { hostname: ups[1]!.hostname })
      assert.equal(banned.status, 403)
      assert.equal(banned.body?.error, 'HostBanned')

      settings.enabled = false
      const off = await crawl(h, { hostname: 'new.example.com' })
      assert.equal(off.status, 403)
      assert.equal(off.body?.error, 'Forbidden')
      settings.enabled = true
    } finally {
      for (const up of ups) await s.sub.disconnectHost(up.hostname)
      await Promise.all(ups.map((u) => u.close()))
    }
  })
})
