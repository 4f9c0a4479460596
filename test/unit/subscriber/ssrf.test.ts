// Only loopback traffic is ever sent: every "private" target below is refused before a socket
// exists, which the tests assert through a spy on the socket-creating function.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { LookupAddress } from 'node:dns'
import { buildConnector, request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import {
  SafeDialer,
  SsrfError,
  createSafeDispatcher,
  createSafeLookup,
  isLoopbackAddress,
  isPublicAddress,
  parseIPv6,
  resolveChecked,
  wsDialOptions,
} from '../../../src/subscriber/ssrf.ts'
import type { LookupFn, SsrfPolicy } from '../../../src/subscriber/ssrf.ts'

describe('isPublicAddress', () => {
  const blocked = [
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '10.255.255.255',
    '100.64.0.1',
    '100.127.255.255',
    '127.0.0.1',
    '127.255.0.1',
    '169.254.169.254',
    '169.254.0.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.0.0.8',
    '192.0.2.1',
    '192.88.99.1',
    '192.168.1.1',
    '198.18.0.1',
    '198.19.255.255',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.1',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    '[::1]',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'febf::1',
    'ff02::1',
    'ff0e::1',
    '2001:db8::1',
    '2001:0db8:85a3::8a2e:370:7334',
    '3fff::1',
    '2001::1',
    '2001:10::1',
    '2001:20::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::FFFF:7F00:0001',
    '::ffff:10.0.0.1',
    '::ffff:a9fe:a9fe',
    '::ffff:0:a00:1',
    '::127.0.0.1',
    '::a00:1',
    '64:ff9b::10.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b:1::1',
    '2002:7f00:1::1',
    '2002:a00:1::',
    '100::1',
    'fec0::1',
    '3fff:fff::1',
    'not an ip',
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '256.1.1.1',
    '1::2::3',
    'fe80::1%eth0',
    '2001:4860:4860::8888%1',
    '12345::',
    ':::',
    '1:2:3:4:5:6:7:8:9',
  ]
  const allowed = [
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '172.15.255.255',
    '172.32.0.1',
    '100.63.255.255',
    '100.128.0.1',
    '169.253.255.255',
    '192.0.1.1',
    '198.17.255.255',
    '198.20.0.1',
    '223.255.255.255',
    '11.0.0.1',
    '126.255.255.255',
    '128.0.0.1',
    '2001:4860:4860::8888',
    '2606:4700:4700::1111',
    '2a00:1450:4001:81c::200e',
    '[2606:4700::1]',
    '::ffff:8.8.8.8',
    '::ffff:808:808',
    '64:ff9b::8.8.8.8',
    '2002:808:808::1',
    '2001:200::1',
    '3ffe::1',
    '3fff:1000::1',
  ]
  for (const ip of blocked) it(`blocks ${JSON.stringify(ip)}`, () => assert.equal(isPublicAddress(ip), false))
  for (const ip of allowed) it(`allows ${ip}`, () => assert.equal(isPublicAddress(ip), true))

  it('parses IPv6 forms', () => {
    assert.deepEqual(parseIPv6('::ffff:127.0.0.1'), [0, 0, 0, 0, 0, 0xffff, 0x7f00, 1])
    assert.deepEqual(parseIPv6('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8])
    assert.deepEqual(parseIPv6('1::'), [1, 0, 0, 0, 0, 0, 0, 0])
    assert.equal(parseIPv6('1:2:3:4:5:6:7::8'), null)
  })
  it('recognises loopback in all spellings', () => {
    for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1']) assert.equal(isLoopbackAddress(ip), true, ip)
    for (const ip of ['10.0.0.1', '::', '8.8.8.8', '::2']) assert.equal(isLoopbackAddress(ip), false, ip)
  })
})

/** Injectable DNS: a fixed table; records every lookup. */
function fakeDns(table: Record<string, string[]>): { lookup: LookupFn; calls: string[] } {
  const calls: string[] = []
  const lookup: LookupFn = (hostname, options, cb) => {
    calls.push(hostname)
    const addrs = table[hostname]
    if (!addrs) {
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
      process.nextTick(() => cb(err, options.all ? [] : '', 0))
      return
    }
    const list: LookupAddress[] = addrs.map((address) => ({ address, family: net.isIP(address) }))
    process.nextTick(() => (options.all ? cb(null, list) : cb(null, list[0]!.address, list[0]!.family)))
  }
  return { lookup, calls }
}

describe('createSafeLookup', () => {
  const { lookup } = fakeDns({
    'pds.example.com': ['10.0.0.1'],
    'good.example.com': ['93.184.216.34', '2606:4700::1'],
    'mixed.example.com': ['93.184.216.34', '127.0.0.1'],
  })
  const call = (fn: LookupFn, host: string, all: boolean): Promise<{ err: NodeJS.ErrnoException | null; res: unknown }> =>
    new Promise((resolve) => fn(host, { all }, (err, address, family) => resolve({ err, res: all ? address : [address, family] })))

  it('refuses private answers with ESSRF (all: true and all: false)', async () => {
    const safe = createSafeLookup({ lookup, allowPrivate: false })
    for (const all of [true, false]) {
      const { err } = await call(safe, 'pds.example.com', all)
      assert.ok(err instanceof SsrfError)
      assert.equal(err.code, 'ESSRF')
      assert.equal((err as SsrfError).address, '10.0.0.1')
    }
    const mixed = await call(safe, 'mixed.example.com', true)
    assert.equal(mixed.err?.code, 'ESSRF')
  })
  it('passes public answers through in both callback shapes', async () => {
    const safe = createSafeLookup({ lookup, allowPrivate: false })
    const a = await call(safe, 'good.example.com', true)
    assert.equal(a.err, null)
    assert.deepEqual(a.res, [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:4700::1', family: 6 },
    ])
    const b = await call(safe, 'good.example.com', false)
    assert.deepEqual(b.res, ['93.184.216.34', 4])
  })
  it('allows private answers when allowPrivate', async () => {
    const safe = createSafeLookup({ lookup, allowPrivate: true })
    const { err } = await call(safe, 'pds.example.com', false)
    assert.equal(err, null)
  })
  it('passes DNS errors through', async () => {
    const safe = createSafeLookup({ lookup, allowPrivate: false })
    const { err } = await call(safe, 'nx.example.com', true)
    assert.equal(err?.code, 'ENOTFOUND')
  })
})

describe('resolveChecked', () => {
  const strict: SsrfPolicy = { allowPrivate: false, allowAnyPort: false }
  it('checks the port before resolving', async () => {
    const { lookup, calls } = fakeDns({ 'pds.example.com': ['93.184.216.34'] })
    await assert.rejects(resolveChecked('pds.example.com', 8080, strict, undefined, lookup), { code: 'ESSRF', reason: 'port' })
    assert.deepEqual(calls, [])
    assert.deepEqual(await resolveChecked('pds.example.com', 443, strict, undefined, lookup), [{ address: '93.184.216.34', family: 4 }])
    assert.equal((await resolveChecked('pds.example.com', 80, strict, undefined, lookup)).length, 1)
  })
  it('checks IP literals without DNS', async () => {
    const { lookup, calls } = fakeDns({})
    await assert.rejects(resolveChecked('169.254.169.254', 80, strict, undefined, lookup), { code: 'ESSRF', reason: 'private-address' })
    await assert.rejects(resolveChecked('[::ffff:7f00:1]', 443, strict, undefined, lookup), { code: 'ESSRF' })
    assert.deepEqual(calls, [])
  })
  it('reports DNS failure as unresolvable', async () => {
    const { lookup } = fakeDns({})
    await assert.rejects(resolveChecked('nx.example.com', 443, strict, undefined, lookup), { code: 'ESSRF', reason: 'unresolvable' })
  })
  it('admin localhost: any port, loopback only, and only for the name localhost', async () => {
    const { lookup } = fakeDns({ localhost: ['127.0.0.1', '::1'], 'pds.example.com': ['127.0.0.1'] })
    const perm = { adminLocalhost: true }
    assert.equal((await resolveChecked('localhost', 2583, strict, perm, lookup)).length, 2)
    await assert.rejects(resolveChecked('localhost', 2583, strict, undefined, lookup), { reason: 'port' })
    await assert.rejects(resolveChecked('pds.example.com', 443, strict, perm, lookup), { reason: 'private-address' })
    const { lookup: evil } = fakeDns({ localhost: ['10.0.0.1'] })
    await assert.rejects(resolveChecked('localhost', 2583, strict, perm, evil), { reason: 'private-address' })
  })
})

describe('safe dispatcher and ws options against a loopback server', () => {
  let server: http.Server
  let wss: WebSocketServer
  let port = 0
  let connections = 0
  let lastUserAgent: string | undefined

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://10.0.0.1/' })
        res.end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"ok":true}')
    })
    server.on('connection', () => connections++)
    wss = new WebSocketServer({ server })
    wss.on('connection', (ws, req) => {
      lastUserAgent = req.headers['user-agent']
      ws.send('hello')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    wss.close()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  const open: SsrfPolicy = { allowPrivate: true, allowAnyPort: true }
  const addrOnly: SsrfPolicy = { allowPrivate: false, allowAnyPort: true }
  const strict: SsrfPolicy = { allowPrivate: false, allowAnyPort: false }

  /** undici's own connector wrapped in a spy: records every socket actually created. */
  function spyConnector(): { connect: buildConnector.connector; dialled: string[] } {
    const base = buildConnector({ timeout: 2_000 })
    const dialled: string[] = []
    const connect: buildConnector.connector = (opts, cb) => {
      dialled.push(opts.hostname)
      assert.ok(isLoopbackAddress(opts.hostname), `test must only dial loopback, got ${opts.hostname}`)
      base(opts, cb)
    }
    return { connect, dialled }
  }

  it('allowPrivate: a public-looking name mapped to 127.0.0.1 is reached (loopback only)', async () => {
    const { lookup } = fakeDns({ 'pds.example.com': ['127.0.0.1'] })
    const spy = spyConnector()
    const d = createSafeDispatcher({ policy: open, lookup, connect: spy.connect })
    try {
      const res = await request(`http://pds.example.com:${port}/xrpc/com.atproto.server.describeServer`, { dispatcher: d })
      assert.equal(res.statusCode, 200)
      assert.deepEqual(await res.body.json(), { ok: true })
      assert.deepEqual(spy.dialled, ['127.0.0.1'])
    } finally {
      await d.close()
    }
  })

  for (const target of ['127.0.0.1', '10.0.0.1', '169.254.169.254', '::ffff:127.0.0.1', '::1', '::ffff:a9fe:a9fe', '64:ff9b::a00:1']) {
    it(`strict: pds.example.com → ${target} is refused before any socket exists`, async () => {
      const { lookup, calls } = fakeDns({ 'pds.example.com': [target] })
      const spy = spyConnector()
      const d = createSafeDispatcher({ policy: addrOnly, lookup, connect: spy.connect })
      const before = connections
      try {
        await assert.rejects(request(`http://pds.example.com:${port}/`, { dispatcher: d }), (err: Error) => {
          const e = err as SsrfError
          assert.equal(e.code, 'ESSRF')
          assert.equal(e.phase, 'pre-connect')
          assert.equal(e.address, target)
          return true
        })
        assert.deepEqual(calls, ['pds.example.com'])
        assert.deepEqual(spy.dialled, [], 'no socket was created')
        assert.equal(connections, before)
      } finally {
        await d.close()
      }
    })
  }

  it('strict: a name with one public and one private record is refused entirely', async () => {
    const { lookup } = fakeDns({ 'pds.example.com': ['93.184.216.34', '10.0.0.1'] })
    const spy = spyConnector()
    const d = createSafeDispatcher({ policy: addrOnly, lookup, connect: spy.connect })
    try {
      await assert.rejects(request(`http://pds.example.com:${port}/`, { dispatcher: d }), { code: 'ESSRF' })
      assert.deepEqual(spy.dialled, [])
    } finally {
      await d.close()
    }
  })

  it('strict: IP-literal URLs are refused without DNS and without a socket', async () => {
    const { lookup, calls } = fakeDns({})
    const spy = spyConnector()
    const d = createSafeDispatcher({ policy: addrOnly, lookup, connect: spy.connect })
    try {
      await assert.rejects(request(`http://127.0.0.1:${port}/`, { dispatcher: d }), { code: 'ESSRF' })
      await assert.rejects(request(`http://[::1]:${port}/`, { dispatcher: d }), { code: 'ESSRF' })
      await assert.rejects(request(`http://[::ffff:7f00:1]:${port}/`, { dispatcher: d }), { code: 'ESSRF' })
      assert.deepEqual(calls, [])
      assert.deepEqual(spy.dialled, [])
    } finally {
      await d.close()
    }
  })

  it('strict ports: only 80/443 unless allowed; admin localhost exempt per dial', async () => {
    const { lookup, calls } = fakeDns({ localhost: ['127.0.0.1'], 'pds.example.com': ['127.0.0.1'] })
    const spy = spyConnector()
    const dialer = new SafeDialer({ policy: strict, lookup })
    const plain = createSafeDispatcher({ policy: strict, lookup, connect: spy.connect })
    try {
      await assert.rejects(request(`http://pds.example.com:${port}/`, { dispatcher: plain }), { code: 'ESSRF', reason: 'port' })
      await assert.rejects(request(`http://localhost:${port}/`, { dispatcher: plain }), { code: 'ESSRF', reason: 'port' })
      assert.deepEqual(calls, [])
      assert.deepEqual(spy.dialled, [])
      // the same dial with the admin permission succeeds
      const res = await request(`http://localhost:${port}/`, { dispatcher: dialer.dispatcher({ adminLocalhost: true }) })
      assert.equal(res.statusCode, 200)
      await res.body.dump()
      // and the permission does not extend to other names
      await assert.rejects(request(`http://pds.example.com:${port}/`, { dispatcher: dialer.dispatcher({ adminLocalhost: true }) }), {
        code: 'ESSRF',
      })
    } finally {
      await plain.close()
      await dialer.close()
    }
  })

  it('second line of defence: the connected peer is checked after connect', async () => {
    // DNS says public, but the (misbehaving) dial lands on loopback: must be refused post-connect.
    const { lookup } = fakeDns({ 'pds.example.com': ['93.184.216.34'] })
    const base = buildConnector({ timeout: 2_000 })
    let dialled = 0
    const d = createSafeDispatcher({
      policy: addrOnly,
      lookup,
      connect: (opts, cb) => {
        dialled++
        base({ ...opts, hostname: '127.0.0.1' }, cb) // never the public address
      },
    })
    try {
      await assert.rejects(request(`http://pds.example.com:${port}/`, { dispatcher: d }), { code: 'ESSRF', phase: 'post-connect' })
      assert.equal(dialled, 1)
    } finally {
      await d.close()
    }
  })

  it('does not follow redirects', async () => {
    const { lookup } = fakeDns({ 'pds.example.com': ['127.0.0.1'] })
    const d = createSafeDispatcher({ policy: open, lookup })
    try {
      const res = await request(`http://pds.example.com:${port}/redirect`, { dispatcher: d })
      assert.equal(res.statusCode, 302)
      await res.body.dump()
    } finally {
      await d.close()
    }
  })

  function wsOpen(url: string, options: ReturnType<typeof wsDialOptions>): Promise<{ message?: string; error?: Error }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, options)
      ws.on('message', (data) => {
        resolve({ message: String(data) })
        ws.close()
      })
      ws.on('error', (error) => resolve({ error }))
    })
  }

  function spyRaw(): { connect: (o: net.NetConnectOpts | tls.ConnectionOptions, secure: boolean) => net.Socket; dialled: string[] } {
    const dialled: string[] = []
    return {
      dialled,
      connect: (o, secure) => {
        assert.equal(secure, false)
        const opts = o as net.TcpNetConnectOpts
        dialled.push(String(opts.host))
        return net.connect(opts)
      },
    }
  }

  it('ws: dials the checked loopback address with our User-Agent when allowed', async () => {
    const { lookup } = fakeDns({ 'pds.example.com': ['127.0.0.1'] })
    const spy = spyRaw()
    const url = `ws://pds.example.com:${port}/xrpc/com.atproto.sync.subscribeRepos`
    const opts = wsDialOptions(url, { policy: open, lookup, userAgent: 'test-relay/1 (atproto-relay)', connect: spy.connect })
    assert.equal(opts.maxPayload, 5_000_000)
    assert.equal(opts.followRedirects, false)
    const r = await wsOpen(url, opts)
    assert.equal(r.message, 'hello')
    assert.equal(lastUserAgent, 'test-relay/1 (atproto-relay)')
    assert.deepEqual(spy.dialled, ['pds.example.com']) // host name kept; the pinned lookup supplies the checked IP
  })

  for (const target of ['127.0.0.1', '10.0.0.1', '169.254.169.254', '::ffff:127.0.0.1', '::1']) {
    it(`ws strict: pds.example.com → ${target} refused before any socket`, async () => {
      const { lookup } = fakeDns({ 'pds.example.com': [target] })
      const spy = spyRaw()
      const before = connections
      const url = `ws://pds.example.com:${port}/xrpc/com.atproto.sync.subscribeRepos`
      const r = await wsOpen(url, wsDialOptions(url, { policy: addrOnly, lookup, connect: spy.connect }))
      assert.equal((r.error as SsrfError | undefined)?.code, 'ESSRF')
      assert.deepEqual(spy.dialled, [])
      assert.equal(connections, before)
    })
  }

  it('ws strict ports: refused synchronously; admin localhost allowed', async () => {
    const { lookup } = fakeDns({ localhost: ['127.0.0.1'] })
    assert.throws(() => wsDialOptions(`ws://pds.example.com:${port}/`, { policy: strict, lookup }), { code: 'ESSRF', reason: 'port' })
    assert.throws(() => wsDialOptions(`ws://localhost:${port}/`, { policy: strict, lookup }), { code: 'ESSRF', reason: 'port' })
    const dialer = new SafeDialer({ policy: strict, lookup, userAgent: 'x' })
    const url = `ws://localhost:${port}/`
    const r = await wsOpen(url, dialer.wsOptions(url, { adminLocalhost: true }))
    assert.equal(r.message, 'hello')
    await dialer.close()
  })
})

// Self-signed test certificate for pds.example.com (generated for this test only).
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBpTCCAUugAwIBAgIUNCFRpyV0a5QxGL2UcAHUnDP6Q/wwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPcGRzLmV4YW1wbGUuY29tMB4XDTI2MTEyMjA3MTcxOVoXDTM2
MTExOTA3MTcxOVowGjEYMBYGA1UEAwwPcGRzLmV4YW1wbGUuY29tMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEo3XXGTrJjEXWejBHMxhlAI+rbCZ1rvQbV28wjdiZ
2zV6zswR/fwQFNyQeA0qq3heYW8xF9m4nw+SExmILiA1hKNvMG0wHQYDVR0OBBYE
FDg6SLHcacODM0xPDgeFNiyD36bFMB8GA1UdIwQYMBaAFDg6SLHcacODM0xPDgeF
NiyD36bFMA8GA1UdEwEB/wQFMAMBAf8wGgYDVR0RBBMwEYIPcGRzLmV4YW1wbGUu
Y29tMAoGCCqGSM49BAMCA0gAMEUCIEab91CVfWZuTSJ0FBtwIRv5g+qKniay67Ri
mbHnk4j8AiEAk4wzIJkbKONTSQlkbBKWCyvJdkd71CWk1XuOgQ/GmvQ=
-----END CERTIFICATE-----`
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6TqL2SEvEvoohwXV
vxSK76b81SXtB0cRO+ws7m/OzumhRANCAASjddcZOsmMRdZ6MEczGGUAj6tsJnWu
9BtXbzCN2JnbNXrOzBH9/BAU3JB4DSqreF5hbzEX2bifD5ITGYguIDWE
-----END PRIVATE KEY-----`

describe('TLS: dialling the checked IP keeps SNI and certificate checks on the original name', () => {
  let server: https.Server
  let port = 0
  let sni: string | undefined
  before(async () => {
    server = https.createServer({ cert: TEST_CERT, key: TEST_KEY }, (_req, res) => {
      res.end('tls-ok')
    })
    server.on('secureConnection', (s) => {
      sni = (s as tls.TLSSocket & { servername?: string }).servername
    })
    const wss = new WebSocketServer({ server })
    wss.on('connection', (ws) => ws.send('tls-hello'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const open: SsrfPolicy = { allowPrivate: true, allowAnyPort: true }

  it('undici: https to a name pinned to 127.0.0.1 verifies the cert for that name', async () => {
    const { lookup } = fakeDns({ 'pds.example.com': ['127.0.0.1'], 'other.example.com': ['127.0.0.1'] })
    const d = createSafeDispatcher({ policy: open, lookup, connect: buildConnector({ ca: TEST_CERT, timeout: 2_000 }) })
    try {
      const res = await request(`https://pds.example.com:${port}/`, { dispatcher: d })
      assert.equal(await res.body.text(), 'tls-ok')
      assert.equal(sni, 'pds.example.com')
      // a name the certificate doesn't cover fails verification even though the IP is the same
      await assert.rejects(request(`https://other.example.com:${port}/`, { dispatcher: d }), (err: Error & { code?: string }) => {
        assert.match(String(err.code ?? err.message), /ERR_TLS_CERT_ALTNAME_INVALID|altnames/i)
        return true
      })
    } finally {
      await d.close()
    }
  })

  it('ws: wss to a name pinned to 127.0.0.1 verifies the cert for that name', async () => {
    const { lookup } = fakeDns({ 'pds.example.com': ['127.0.0.1'] })
    const url = `wss://pds.example.com:${port}/xrpc/com.atproto.sync.subscribeRepos`
    const got = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(url, { ...wsDialOptions(url, { policy: open, lookup }), ca: TEST_CERT })
      ws.on('message', (m) => {
        resolve(String(m))
        ws.close()
      })
      ws.on('error', reject)
    })
    assert.equal(got, 'tls-hello')
    assert.equal(sni, 'pds.example.com')
  })
})
