// Hostname rules for upstream hosts (requestCrawl, admin add-host, seed lists) and the host
// authority of a DID document's PDS endpoint.
//
// The stored form is canonical: lower-case DNS name without scheme, port or trailing dot, except
// `localhost:PORT` (a dev/admin-only convenience, as in indigo's ParseHostname). Hand-rolled rather
// than WHATWG `new URL()`: the URL parser silently rewrites `0x7f.1` or `2130706433` into IPv4
// addresses, accepts userinfo and paths, and percent-decodes; here every such input is an error.

import { isIP } from 'node:net'

export type HostnameErrorCode =
  | 'empty'
  | 'too-long'
  | 'bad-scheme'
  | 'userinfo'
  | 'path'
  | 'ip-literal'
  | 'port'
  | 'localhost-needs-port'
  | 'localhost-not-allowed'
  | 'invalid-name'

export interface HostnameError {
  ok: false
  code: HostnameErrorCode
  message: string
}

export interface ParsedHostname {
  ok: true
  /** canonical: `pds.example.com` or `localhost:2583` */
  hostname: string
  /** true for http:// / ws:// (and bare `localhost:PORT`): dial ws:// and http:// */
  noSsl: boolean
}

export interface ParseHostnameOptions {
  /**
   * Permit `localhost:PORT`. Only for insecure-hosts mode or an admin caller: on a production relay
   * a public requestCrawl must never make us dial our own loopback.
   */
  allowLocalhost?: boolean
}

// Longest DNS name is 253 chars; the slack covers a scheme, a port and a trailing slash.
const MAX_INPUT = 300
const MAX_NAME = 253

function fail(code: HostnameErrorCode, message: string): HostnameError {
  return { ok: false, code, message }
}

const SCHEMES: Readonly<Record<string, boolean>> = { https: false, wss: false, http: true, ws: true }

/**
 * Normalise and validate a hostname given as `host`, `https://host`, `wss://host`, `http://…` or
 * `ws://…`. A single trailing `/` is tolerated (PDSs commonly send their base URL); any other
 * path, query or fragment is rejected so that two spellings can never name different services.
 */
export function parseHostname(input: string, opts: ParseHostnameOptions = {}): ParsedHostname | HostnameError {
  if (typeof input !== 'string') return fail('empty', 'hostname must be a string')
  const s = input.trim()
  if (s === '') return fail('empty', 'hostname is empty')
  if (s.length > MAX_INPUT) return fail('too-long', 'hostname is too long')

  let rest = s
  let noSsl: boolean | null = null
  const schemeEnd = s.indexOf('://')
  if (schemeEnd !== -1) {
    const scheme = s.slice(0, schemeEnd).toLowerCase()
    if (!Object.hasOwn(SCHEMES, scheme)) {
      return fail('bad-scheme', `unsupported scheme "${scheme}:" (use https, wss, http or ws)`)
    }
    noSsl = SCHEMES[scheme]!
    rest = s.slice(schemeEnd + 3)
  }

  // Authority ends at the first path/query/fragment delimiter.
  let end = rest.length
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i)
    if (c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x23 /* # */) {
      end = i
      break
    }
  }
  const tail = rest.slice(end)
  if (tail !== '' && tail !== '/') return fail('path', 'hostname must not include a path, query or fragment')
  let authority = rest.slice(0, end)
  if (authority === '') return fail('empty', 'hostname is empty')
  if (authority.includes('@')) return fail('userinfo', 'hostname must not include user info')
  if (authority.startsWith('[')) return fail('ip-literal', 'IP addresses are not allowed, use a DNS name')
  if (isIP(authority) !== 0) return fail('ip-literal', 'IP addresses are not allowed, use a DNS name')
  // Unbracketed IPv6 with a zone or other multi-colon strings: never a name.
  if (authority.indexOf(':') !== authority.lastIndexOf(':')) {
    return fail('ip-literal', 'IP addresses are not allowed, use a DNS name')
  }

  let port: number | null = null
  const colon = authority.indexOf(':')
  if (colon !== -1) {
    const portStr = authority.slice(colon + 1)
    authority = authority.slice(0, colon)
    if (!/^[0-9]{1,5}$/.test(portStr) || Number(portStr) < 1 || Number(portStr) > 65535) {
      return fail('port', `invalid port "${portStr}"`)
    }
    port = Number(portStr)
  }

  const host = authority.toLowerCase()
  if (isIP(host) !== 0) return fail('ip-literal', 'IP addresses are not allowed, use a DNS name')

  if (host === 'localhost') {
    if (port === null) return fail('localhost-needs-port', 'localhost requires a port (localhost:PORT)')
    if (!opts.allowLocalhost) return fail('localhost-not-allowed', 'localhost hosts are not allowed here')
    // indigo: bare `localhost:PORT` means plain http/ws (a local dev PDS has no TLS).
    return { ok: true, hostname: `localhost:${port}`, noSsl: noSsl ?? true }
  }
  if (port !== null) return fail('port', 'ports are only allowed for localhost')

  const nameErr = checkDnsName(host)
  if (nameErr !== null) return fail('invalid-name', nameErr)
  return { ok: true, hostname: host, noSsl: noSsl ?? false }
}

/**
 * Handle-style DNS name (atproto handle syntax minus the reserved-TLD list, so `service.local`
 * stays valid as in indigo): ASCII letters/digits/hyphens, labels 1–63 chars not starting or
 * ending with `-`, ≥ 2 labels, ≤ 253 chars, last label not starting with a digit — which is also
 * what stops `127.1`, `0x7f.0.0.1` or `1.2.3.4` from being read as IPv4 by URL parsers later.
 * Expects lower-case input; returns an error message or null.
 */
export function checkDnsName(host: string): string | null {
  if (host.length > MAX_NAME) return 'hostname is too long'
  const labels = host.split('.')
  if (labels.length < 2) return `"${host}" is not a fully-qualified domain name`
  for (const label of labels) {
    if (label.length === 0) return 'hostname has an empty label'
    if (label.length > 63) return 'hostname label is longer than 63 characters'
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i)
      const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d
      if (!ok) return 'hostname contains an invalid character'
    }
    if (label.startsWith('-') || label.endsWith('-')) return 'hostname label starts or ends with a hyphen'
  }
  const tld = labels[labels.length - 1]!
  const t0 = tld.charCodeAt(0)
  if (t0 >= 0x30 && t0 <= 0x39) return 'top-level domain must not start with a digit'
  return null
}

/**
 * Parent suffixes checked against domain bans, most specific first, down to the registrable
 * two-label name: `a.b.example.com` → [a.b.example.com, b.example.com, example.com]. A ban on
 * `example.com` therefore covers every host below it. `localhost:PORT` yields [localhost].
 */
export function domainBanCandidates(hostname: string): string[] {
  const colon = hostname.indexOf(':')
  const host = (colon === -1 ? hostname : hostname.slice(0, colon)).toLowerCase()
  const labels = host.split('.')
  if (labels.length < 2) return [host]
  const out: string[] = []
  for (let i = 0; i + 2 <= labels.length; i++) out.push(labels.slice(i).join('.'))
  return out
}

export type ServiceEndpointResult = { ok: true; host: string } | { ok: false; message: string }

/**
 * Host authority of a DID document's `#atproto_pds` serviceEndpoint, in the same canonical form as
 * stored hostnames so that "is this event from the account's own PDS" is a string comparison.
 * Lower-cased; default port dropped; a port is kept only for localhost (where it is what
 * distinguishes dev PDSs, and `localhost` without an explicit port becomes `localhost:80/443` so it
 * can still be compared). A non-default port on any other host can never equal a registered
 * host, so it is reported as an error rather than silently stripped (which could conflate two
 * services). The path is ignored: only the authority identifies the host.
 */
export function normalizeServiceEndpoint(endpoint: string): ServiceEndpointResult {
  if (typeof endpoint !== 'string' || endpoint.length === 0 || endpoint.length > 2048) {
    return { ok: false, message: 'serviceEndpoint is empty or too long' }
  }
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    return { ok: false, message: 'serviceEndpoint is not a URL' }
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return { ok: false, message: `serviceEndpoint scheme ${url.protocol} is not http(s)` }
  }
  if (url.username !== '' || url.password !== '') return { ok: false, message: 'serviceEndpoint has user info' }
  const host = url.hostname.toLowerCase() // WHATWG already lower-cases and punycodes; be explicit.
  if (host.startsWith('[') || isIP(host) !== 0) return { ok: false, message: 'serviceEndpoint host is an IP address' }
  if (host === 'localhost') {
    const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80'
    return { ok: true, host: `localhost:${port}` }
  }
  // WHATWG leaves `port` empty when it equals the scheme default.
  if (url.port !== '') return { ok: false, message: 'serviceEndpoint has a non-default port' }
  const err = checkDnsName(host.endsWith('.') ? host.slice(0, -1) : host)
  if (err !== null) return { ok: false, message: `serviceEndpoint host: ${err}` }
  return { ok: true, host: host.endsWith('.') ? host.slice(0, -1) : host }
}
