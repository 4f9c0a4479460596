import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkDnsName, domainBanCandidates, normalizeServiceEndpoint, parseHostname } from '../../../src/subscriber/hostname.ts'
import type { HostnameErrorCode } from '../../../src/subscriber/hostname.ts'

function ok(input: string, hostname: string, noSsl: boolean, allowLocalhost = false): void {
  const r = parseHostname(input, { allowLocalhost })
  assert.deepEqual(r, { ok: true, hostname, noSsl }, `input ${JSON.stringify(input)}`)
}

function bad(input: string, code: HostnameErrorCode, allowLocalhost = true): void {
  const r = parseHostname(input, { allowLocalhost })
  assert.equal(r.ok, false, `input ${JSON.stringify(input)} should be rejected`)
  if (!r.ok) {
    assert.equal(r.code, code, `input ${JSON.stringify(input)}: ${r.message}`)
    assert.ok(r.message.length > 0)
  }
}

describe('parseHostname: indigo fixtures', () => {
  it('valid', () => {
    ok('localhost:8080', 'localhost:8080', true, true)
    ok('https://localhost:8080', 'localhost:8080', false, true)
    ok('service.local', 'service.local', false)
  })
  it('invalid', () => {
    bad('https://localhost', 'localhost-needs-port')
    bad('localhost', 'localhost-needs-port')
    bad('https://8.8.8.8', 'ip-literal')
    bad('https://internal', 'invalid-name')
    bad('at://', 'bad-scheme')
    bad('ftp://', 'bad-scheme')
    bad('asdf', 'invalid-name')
  })
})

describe('parseHostname: normalisation', () => {
  it('accepts bare names and the four schemes, lower-cases', () => {
    ok('pds.example.com', 'pds.example.com', false)
    ok('PDS.Example.COM', 'pds.example.com', false)
    ok('https://pds.example.com', 'pds.example.com', false)
    ok('wss://pds.example.com', 'pds.example.com', false)
    ok('HTTPS://pds.example.com', 'pds.example.com', false)
    ok('http://pds.example.com', 'pds.example.com', true)
    ok('ws://pds.example.com', 'pds.example.com', true)
    ok('https://pds.example.com/', 'pds.example.com', false)
    ok('  morel.us-east.host.bsky.network  ', 'morel.us-east.host.bsky.network', false)
    ok('xn--bcher-kva.example', 'xn--bcher-kva.example', false)
    ok('a-b.c0.io', 'a-b.c0.io', false)
    ok('http://localhost:2583', 'localhost:2583', true, true)
    ok('ws://LOCALHOST:1', 'localhost:1', true, true)
  })
})

describe('parseHostname: rejections', () => {
  it('IP literals of every shape', () => {
    bad('8.8.8.8', 'ip-literal')
    bad('127.0.0.1', 'ip-literal')
    bad('https://127.0.0.1:443', 'ip-literal')
    bad('[::1]', 'ip-literal')
    bad('https://[::1]', 'ip-literal')
    bad('https://[::1]:8080', 'ip-literal')
    bad('::1', 'ip-literal')
    bad('2001:db8::1', 'ip-literal')
    bad('::ffff:127.0.0.1', 'ip-literal')
    bad('https://[::ffff:7f00:1]', 'ip-literal')
    bad('fe80::1%eth0', 'ip-literal')
  })
  it('numeric-looking names a URL parser would turn into IPv4', () => {
    bad('127.1', 'invalid-name')
    bad('0x7f.0.0.1', 'invalid-name')
    bad('2130706433', 'invalid-name')
    bad('1.2.3.0x4', 'invalid-name')
    bad('example.123', 'invalid-name')
  })
  it('ports, except localhost:PORT when allowed', () => {
    bad('pds.example.com:443', 'port')
    bad('https://pds.example.com:8443', 'port')
    bad('localhost:0', 'port')
    bad('localhost:65536', 'port')
    bad('localhost:abc', 'port')
    bad('localhost:', 'port')
    bad('localhost:8080', 'localhost-not-allowed', false)
    bad('http://localhost:8080', 'localhost-not-allowed', false)
    bad('localhost.', 'invalid-name')
  })
  it('paths, queries, fragments, userinfo', () => {
    bad('https://pds.example.com/xrpc', 'path')
    bad('https://pds.example.com?x=1', 'path')
    bad('https://pds.example.com#frag', 'path')
    bad('https://pds.example.com//', 'path')
    bad('https://user@pds.example.com', 'userinfo')
    bad('https://user:pw@pds.example.com', 'userinfo')
  })
  it('schemes', () => {
    bad('at://did:plc:abc', 'bad-scheme')
    bad('file:///etc/passwd', 'bad-scheme')
    bad('javascript://x.com', 'bad-scheme')
    bad('https://', 'empty')
    bad('', 'empty')
    bad('   ', 'empty')
  })
  it('DNS syntax', () => {
    bad('pds..example.com', 'invalid-name')
    bad('.example.com', 'invalid-name')
    bad('example.com.', 'invalid-name')
    bad('-pds.example.com', 'invalid-name')
    bad('pds-.example.com', 'invalid-name')
    bad('pds_1.example.com', 'invalid-name')
    bad('*.example.com', 'invalid-name')
    bad('pds example.com', 'invalid-name')
    bad('pds%2e.example.com', 'invalid-name')
    bad('bücher.example', 'invalid-name')
    bad(`${'a'.repeat(64)}.com`, 'invalid-name')
    bad(`${'a.'.repeat(160)}com`, 'too-long')
    bad(`${'abcdefghi.'.repeat(26)}com`, 'invalid-name') // 253 < len ≤ 300
  })
  it('non-string input does not throw', () => {
    const r = parseHostname(42 as unknown as string)
    assert.equal(r.ok, false)
  })
})

describe('checkDnsName', () => {
  it('accepts 63-char labels and rejects single labels', () => {
    assert.equal(checkDnsName(`${'a'.repeat(63)}.com`), null)
    assert.notEqual(checkDnsName('com'), null)
  })
})

describe('domainBanCandidates', () => {
  it('expands parents down to two labels', () => {
    assert.deepEqual(domainBanCandidates('a.b.example.com'), ['a.b.example.com', 'b.example.com', 'example.com'])
    assert.deepEqual(domainBanCandidates('example.com'), ['example.com'])
    assert.deepEqual(domainBanCandidates('localhost:8080'), ['localhost'])
    assert.deepEqual(domainBanCandidates('Pds.Example.Com'), ['pds.example.com', 'example.com'])
  })
})

describe('normalizeServiceEndpoint', () => {
  const cases: Array<[string, string | null]> = [
    ['https://pds.example.com', 'pds.example.com'],
    ['https://PDS.Example.com/', 'pds.example.com'],
    ['https://pds.example.com:443', 'pds.example.com'],
    ['http://pds.example.com:80/', 'pds.example.com'],
    ['https://pds.example.com/some/path', 'pds.example.com'],
    ['https://pds.example.com.', 'pds.example.com'],
    ['http://localhost:2583', 'localhost:2583'],
    ['https://localhost', 'localhost:443'],
    ['http://localhost', 'localhost:80'],
    ['https://pds.example.com:8443', null],
    ['http://pds.example.com:443', null],
    ['https://127.0.0.1', null],
    ['https://[::1]', null],
    ['https://0x7f.1', null],
    ['https://user@pds.example.com', null],
    ['wss://pds.example.com', null],
    ['at://did:plc:x', null],
    ['not a url', null],
    ['', null],
    ['https://internal', null],
  ]
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} → ${want ?? 'error'}`, () => {
      const r = normalizeServiceEndpoint(input)
      if (want === null) assert.equal(r.ok, false)
      else assert.deepEqual(r, { ok: true, host: want })
    })
  }
  it('matches the host form produced by parseHostname', () => {
    const a = parseHostname('https://PDS.example.com')
    const b = normalizeServiceEndpoint('https://pds.EXAMPLE.com:443/')
    assert.ok(a.ok && b.ok && a.hostname === b.host)
    const c = parseHostname('localhost:2583', { allowLocalhost: true })
    const d = normalizeServiceEndpoint('http://localhost:2583')
    assert.ok(c.ok && d.ok && c.hostname === d.host)
  })
})
