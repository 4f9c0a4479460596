// SSRF-safe outbound dialing for everything the relay fetches from hosts it was *told* about
// (requestCrawl, DID documents): describeServer/getRepoStatus over undici, subscribeRepos over ws,
// did:web documents.
//
// Policy (unless insecure-hosts mode): every address we are about to dial must be public unicast,
// and the port must be 80 or 443. The check runs on the resolved addresses *before* any socket is
// created, and the socket then dials exactly those checked addresses (no second DNS query, so DNS
// rebinding between check and connect is impossible). After connecting, the socket's actual
// remote address is checked again as a second line of defence (like Go's Dialer.Control in indigo).
// Hosts an admin added as `localhost:PORT` are the one exception and are granted per dial
// (`DialPermission.adminLocalhost`), never globally.
//
// Redirects: none of these dispatchers follow redirects themselves. undici's `request()` never
// follows them; undici's `fetch()` DOES by default, so callers must pass `redirect: 'manual'` (or
// 'error') — a redirect would still be dialled through this dispatcher, but a 3xx to another host
// is not something a PDS API answer should ever need. For ws, `followRedirects: false`.

import dns from 'node:dns'
import type { LookupAddress, LookupOptions } from 'node:dns'
import net from 'node:net'
import type { Socket } from 'node:net'
import tls from 'node:tls'
import type { ClientRequestArgs } from 'node:http'
import type { Duplex } from 'node:stream'
import { Agent, buildConnector } from 'undici'
import type { Dispatcher } from 'undici'
import type { ClientOptions } from 'ws'

// ---------------------------------------------------------------------------------------------
// Address classification

/** Parse dotted-quad IPv4 (strict: 4 decimal parts, no leading zeros) to a uint32, or null. */
export function parseIPv4(s: string): number | null {
  const parts = s.split('.')
  if (parts.length !== 4) return null
  let v = 0
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null
    const n = Number(p)
    if (n > 255) return null
    v = v * 256 + n
  }
  return v
}

/** Parse IPv6 (with `::`, optional embedded dotted IPv4; zone ids are rejected) into 8 groups. */
export function parseIPv6(input: string): number[] | null {
  let s = input
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1)
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null
  let tailV4: number | null = null
  const lastColon = s.lastIndexOf(':')
  if (s.indexOf('.', lastColon) !== -1) {
    tailV4 = parseIPv4(s.slice(lastColon + 1))
    if (tailV4 === null) return null
    // Replace the dotted quad by two placeholder groups so the rest parses uniformly.
    s = s.slice(0, lastColon + 1) + '0:0'
  }
  const dbl = s.indexOf('::')
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return null
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return []
    const out: number[] = []
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null
      out.push(parseInt(g, 16))
    }
    return out
  }
  let groups: number[]
  if (dbl === -1) {
    const g = parseGroups(s)
    if (g === null || g.length !== 8) return null
    groups = g
  } else {
    const head = parseGroups(s.slice(0, dbl))
    const tail = parseGroups(s.slice(dbl + 2))
    if (head === null || tail === null || head.length + tail.length > 7) return null
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  }
  if (tailV4 !== null) {
    groups[6] = Math.floor(tailV4 / 65536)
    groups[7] = tailV4 % 65536
  }
  return groups
}

function inV4(ip: number, base: string, bits: number): boolean {
  const b = parseIPv4(base)!
  const size = 2 ** (32 - bits)
  return Math.floor(ip / size) === Math.floor(b / size)
}

// Special-purpose IPv4 ranges (IANA registry + RFC 6890) that must never be dialled.
const V4_BLOCKED: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, incl. 169.254.169.254 cloud metadata
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, incl. 255.255.255.255 broadcast
]

export function isPublicIPv4(ip: number): boolean {
  for (const [base, bits] of V4_BLOCKED) if (inV4(ip, base, bits)) return false
  return true
}

/**
 * The IPv4 address an IPv6 address stands for, when it is a mapping or translation of one:
 * IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96 (deprecated), SIIT ::ffff:0:0:0/96,
 * NAT64 64:ff9b::/96 and 6to4 2002::/16. Such addresses are judged as the IPv4 they reach, so
 * `::ffff:7f00:1` is loopback even though it is written in hex.
 */
function embeddedIPv4(g: readonly number[]): number | null {
  const v4 = g[6]! * 65536 + g[7]!
  const zero5 = g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0
  if (zero5 && (g[5] === 0xffff || g[5] === 0)) return v4
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0xffff && g[5] === 0) return v4
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0) return v4
  if (g[0] === 0x2002) return g[1]! * 65536 + g[2]!
  return null
}

/**
 * Whether an IP address (v4 or v6 text, brackets allowed) is public unicast. Anything that does not
 * parse is not public. IPv6: only global unicast 2000::/3, minus ranges that are not ordinary
 * internet hosts (documentation, Teredo/ORCHID and other IETF assignments); mapped/translated
 * forms are judged by their embedded IPv4.
 */
export function isPublicAddress(ip: string): boolean {
  const v4 = parseIPv4(ip)
  if (v4 !== null) return isPublicIPv4(v4)
  const g = parseIPv6(ip)
  if (g === null) return false
  const emb = embeddedIPv4(g)
  if (emb !== null) return isPublicIPv4(emb)
  const g0 = g[0]!
  if ((g0 & 0xe000) !== 0x2000) return false // not 2000::/3: ::, ::1, fc00::/7, fe80::/10, ff00::/8, 64:ff9b:1::/48 …
  if (g0 === 0x2001 && g[1]! < 0x200) return false // 2001::/23 IETF protocol assignments (Teredo, ORCHID, benchmarking)
  if (g0 === 0x2001 && g[1] === 0x0db8) return false // 2001:db8::/32 documentation
  if (g0 === 0x3fff && g[1]! < 0x1000) return false // 3fff::/20 documentation (RFC 9637)
  return true
}

export function isLoopbackAddress(ip: string): boolean {
  const v4 = parseIPv4(ip)
  if (v4 !== null) return inV4(v4, '127.0.0.0', 8)
  const g = parseIPv6(ip)
  if (g === null) return false
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return true // ::1
  const emb = g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff ? g[6]! * 65536 + g[7]! : null
  return emb !== null && inV4(emb, '127.0.0.0', 8)
}

// ---------------------------------------------------------------------------------------------
// Policy

export interface SsrfPolicy {
  /** Dial private/loopback/reserved addresses (RELAY_ALLOW_INSECURE_HOSTS, tests on loopback). */
  allowPrivate: boolean
  /** Dial ports other than 80/443 (RELAY_ALLOW_INSECURE_HOSTS). */
  allowAnyPort: boolean
}

export function policyFromConfig(allowInsecureHosts: boolean): SsrfPolicy {
  return { allowPrivate: allowInsecureHosts, allowAnyPort: allowInsecureHosts }
}

/** Per-dial grant made by the caller who knows where the target came from. */
export interface DialPermission {
  /**
   * The target is a host an admin added as `localhost:PORT`: allow that name to reach loopback
   * addresses (only loopback) on any port, even with a strict policy. Has no effect on any other
   * hostname, so passing it for the wrong host cannot open anything else.
   */
  adminLocalhost?: boolean
}

export type SsrfReason = 'private-address' | 'port' | 'unresolvable' | 'connected-address'

export class SsrfError extends Error {
  readonly code = 'ESSRF'
  readonly reason: SsrfReason
  readonly hostname: string
  readonly address: string | null
  /** where it was stopped: before any socket existed, or after connect (second line of defence) */
  readonly phase: 'pre-connect' | 'post-connect'

  constructor(reason: SsrfReason, message: string, hostname: string, address: string | null, phase: 'pre-connect' | 'post-connect') {
    super(message)
    this.name = 'SsrfError'
    this.reason = reason
    this.hostname = hostname
    this.address = address
    this.phase = phase
  }
}

function isAdminLocalhost(hostname: string, permission: DialPermission | undefined): boolean {
  return permission?.adminLocalhost === true && hostname.toLowerCase() === 'localhost'
}

/** Port rule; `null` when allowed. */
export function checkPort(hostname: string, port: number, policy: SsrfPolicy, permission?: DialPermission): SsrfError | null {
  if (policy.allowAnyPort || port === 80 || port === 443 || isAdminLocalhost(hostname, permission)) return null
  return new SsrfError(
    'port',
    `refusing to dial ${hostname} on port ${port}: only ports 80 and 443 are allowed`,
    hostname,
    null,
    'pre-connect',
  )
}

/** Address rule for one resolved (or literal) address; `null` when allowed. */
export function checkAddress(
  hostname: string,
  address: string,
  policy: SsrfPolicy,
  permission?: DialPermission,
  phase: 'pre-connect' | 'post-connect' = 'pre-connect',
): SsrfError | null {
  if (policy.allowPrivate) return null
  if (isAdminLocalhost(hostname, permission)) {
    if (isLoopbackAddress(address)) return null
    return new SsrfError('private-address', `admin localhost host resolved to non-loopback address ${address}`, hostname, address, phase)
  }
  if (isPublicAddress(address)) return null
  const reason: SsrfReason = phase === 'post-connect' ? 'connected-address' : 'private-address'
  return new SsrfError(reason, `refusing to dial ${hostname}: ${address} is not a public address`, hostname, address, phase)
}

// ---------------------------------------------------------------------------------------------
// DNS

/** Signature of dns.lookup as used by net/tls `lookup` (both `all: false` and `all: true`). */
export type LookupFn = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void

const defaultLookup: LookupFn = dns.lookup as unknown as LookupFn

/** Default bound on one resolution: getaddrinfo can stall for tens of seconds on a bad resolver. */
export const LOOKUP_TIMEOUT_MS = 5_000

/** Resolve every address (all: true) through the injectable lookup, with a timeout. */
function lookupAll(
  lookup: LookupFn,
  hostname: string,
  family: number | undefined,
  timeoutMs = LOOKUP_TIMEOUT_MS,
): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    const opts: LookupOptions = { all: true }
    if (family === 4 || family === 6) opts.family = family
    const timer = setTimeout(() => {
      reject(Object.assign(new Error(`DNS lookup of ${hostname} timed out after ${timeoutMs} ms`), { code: 'ETIMEOUT' }))
    }, timeoutMs)
    timer.unref()
    lookup(hostname, opts, (err, addresses) => {
      clearTimeout(timer)
      if (err) reject(err)
      else if (Array.isArray(addresses)) resolve(addresses)
      else resolve([{ address: addresses, family: net.isIP(addresses) }])
    })
  })
}

/**
 * Resolve a dial target and check it: IP literals are checked directly (net skips `lookup` for
 * them); names are resolved and refused if ANY address is not allowed — a public service has no
 * reason to publish a private record, and refusing the whole name means the outcome cannot
 * depend on which address happy-eyeballs happens to try.
 */
export async function resolveChecked(
  hostname: string,
  port: number,
  policy: SsrfPolicy,
  permission: DialPermission | undefined,
  lookup: LookupFn = defaultLookup,
): Promise<LookupAddress[]> {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname
  const portErr = checkPort(bare, port, policy, permission)
  if (portErr) throw portErr
  const literal = net.isIP(bare)
  if (literal !== 0) {
    const err = checkAddress(bare, bare, policy, permission)
    if (err) throw err
    return [{ address: bare, family: literal }]
  }
  let addresses: LookupAddress[]
  try {
    addresses = await lookupAll(lookup, bare, undefined)
  } catch (e) {
    // Keep DNS failures distinguishable from policy refusals, but still typed.
    const err = new SsrfError('unresolvable', `could not resolve ${bare}: ${(e as Error).message}`, bare, null, 'pre-connect')
    ;(err as { cause?: unknown }).cause = e
    throw err
  }
  if (addresses.length === 0) throw new SsrfError('unresolvable', `no addresses for ${bare}`, bare, null, 'pre-connect')
  for (const a of addresses) {
    const err = checkAddress(bare, a.address, policy, permission)
    if (err) throw err
  }
  return addresses
}

export interface SafeLookupOptions {
  lookup?: LookupFn
  allowPrivate: boolean
  permission?: DialPermission
}

/**
 * A drop-in `lookup` for net/tls/http options that refuses non-public results with an `ESSRF`
 * error. Used where we don't control socket creation; the dispatcher and ws options below go
 * further and dial the checked address themselves.
 */
export function createSafeLookup(opts: SafeLookupOptions): LookupFn {
  const lookup = opts.lookup ?? defaultLookup
  const policy: SsrfPolicy = { allowPrivate: opts.allowPrivate, allowAnyPort: true }
  return (hostname, options, callback) => {
    lookupAll(lookup, hostname, typeof options === 'object' ? (options.family as number | undefined) : undefined).then(
      (addresses) => {
        for (const a of addresses) {
          const err = checkAddress(hostname, a.address, policy, opts.permission)
          if (err) return callback(err, options.all ? [] : '', 0)
        }
        if (options.all) callback(null, addresses)
        else callback(null, addresses[0]!.address, addresses[0]!.family)
      },
      (err: NodeJS.ErrnoException) => callback(err, options.all ? [] : '', 0),
    )
  }
}

/** A lookup that answers with already-checked addresses: the socket dials exactly what we checked. */
function pinnedLookup(addresses: LookupAddress[]): LookupFn {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, addresses)
    else callback(null, addresses[0]!.address, addresses[0]!.family)
  }
}

/** Second line of defence: the peer we are actually connected to. */
function checkConnected(socket: Socket, hostname: string, policy: SsrfPolicy, permission?: DialPermission): SsrfError | null {
  const remote = socket.remoteAddress
  if (remote === undefined) {
    if (policy.allowPrivate) return null
    return new SsrfError('connected-address', `cannot determine the address connected for ${hostname}`, hostname, null, 'post-connect')
  }
  return checkAddress(hostname, remote, policy, permission, 'post-connect')
}

// ---------------------------------------------------------------------------------------------
// undici

export interface SafeDispatcherOptions {
  policy: SsrfPolicy
  permission?: DialPermission
  lookup?: LookupFn
  /** TCP+TLS connect timeout; default 5 s (indigo's HostClient uses 5 s overall). */
  connectTimeoutMs?: number
  /** time to response headers; default 10 s */
  headersTimeoutMs?: number
  /** max idle time between body chunks; default 10 s */
  bodyTimeoutMs?: number
  /** Socket creator after the checks (tests inject a spy). Defaults to undici's own connector. */
  connect?: buildConnector.connector
}

/**
 * undici connector: resolve + check, then hand undici's own connector (keeping its TLS session
 * cache and ALPN) one checked IP literal at a time, with `servername` = the original name so SNI
 * and certificate verification still apply to the name; then check the connected peer. Addresses
 * are tried in resolver order until one connects.
 */
export function createSafeConnector(opts: SafeDispatcherOptions): buildConnector.connector {
  const timeout = opts.connectTimeoutMs ?? 5_000
  const lookup = opts.lookup ?? defaultLookup
  // One base connector per pinned address set would defeat session caching, so the base connector
  // is built once; the per-dial pin goes through `hostname` (an IP literal) plus `servername`.
  const base = opts.connect ?? buildConnector({ timeout })
  return (options, callback) => {
    const hostname = options.hostname
    const port = options.port ? Number(options.port) : options.protocol === 'https:' ? 443 : 80
    resolveChecked(hostname, port, opts.policy, opts.permission, lookup).then(
      (addresses) => {
        const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
        const sni = net.isIP(bare) === 0 ? bare : undefined
        dialInOrder(addresses, 0, null)
        function dialInOrder(list: LookupAddress[], i: number, lastErr: Error | null): void {
          if (i >= list.length) {
            callback(lastErr ?? new Error(`could not connect to ${hostname}`), null)
            return
          }
          base({ ...options, hostname: list[i]!.address, servername: options.servername ?? sni }, (err, socket) => {
            if (err || socket === null) {
              dialInOrder(list, i + 1, err ?? lastErr)
              return
            }
            const bad = checkConnected(socket, bare, opts.policy, opts.permission)
            if (bad) {
              socket.destroy()
              callback(bad, null)
              return
            }
            callback(null, socket)
          })
        }
      },
      (err: Error) => callback(err, null),
    )
  }
}

/**
 * An undici Agent that only dials allowed addresses/ports. Use with `request()` (never follows
 * redirects) or `fetch(url, { dispatcher, redirect: 'manual' })`. undici ≥ 7 has no
 * `maxRedirections` on Agent; redirects only happen if a caller composes the redirect interceptor
 * or uses fetch's default — don't.
 */
export function createSafeDispatcher(opts: SafeDispatcherOptions): Dispatcher {
  return new Agent({
    connect: createSafeConnector(opts),
    headersTimeout: opts.headersTimeoutMs ?? 10_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 10_000,
    // A host check is a handful of small requests; don't keep thousands of idle sockets around.
    keepAliveTimeout: 4_000,
    connections: 4,
  })
}

// ---------------------------------------------------------------------------------------------
// ws

export interface WsDialOptions {
  policy: SsrfPolicy
  permission?: DialPermission
  lookup?: LookupFn
  /** upstream frames: spec hard limit is 5 MB; the subscriber may raise this to its hard cap */
  maxPayload?: number
  /** default 5 s, as indigo */
  handshakeTimeoutMs?: number
  userAgent?: string
  headers?: Record<string, string>
  /** raw socket creator after the checks (tests inject a spy); defaults to net/tls.connect */
  connect?: (options: net.NetConnectOpts | tls.ConnectionOptions, secure: boolean) => Socket
}

/**
 * `ws` client options applying the same policy: the port is checked here up front (so a bad URL
 * fails synchronously in `new WebSocket`), and `createConnection` resolves + checks asynchronously
 * (Node's http client accepts the callback form), dials the checked addresses only, then checks
 * the connected peer. `url` is needed to know the port and scheme.
 */
export function wsDialOptions(url: string | URL, opts: WsDialOptions): ClientOptions {
  const u = typeof url === 'string' ? new URL(url) : url
  const secure = u.protocol === 'wss:' || u.protocol === 'https:'
  if (!secure && u.protocol !== 'ws:' && u.protocol !== 'http:') {
    throw new SsrfError('port', `unsupported WebSocket scheme ${u.protocol}`, u.hostname, null, 'pre-connect')
  }
  const port = u.port !== '' ? Number(u.port) : secure ? 443 : 80
  const bareHost = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  const portErr = checkPort(bareHost, port, opts.policy, opts.permission)
  if (portErr) throw portErr

  const lookup = opts.lookup ?? defaultLookup
  const rawConnect =
    opts.connect ??
    ((o: net.NetConnectOpts | tls.ConnectionOptions, isTls: boolean): Socket =>
      isTls ? tls.connect(o as tls.ConnectionOptions) : net.connect(o as net.NetConnectOpts))

  const createConnection = (options: ClientRequestArgs, oncreate: (err: Error | null, socket: Duplex) => void): undefined => {
    const host = String(options.host ?? bareHost)
    const hostBare = host.startsWith('[') ? host.slice(1, -1) : host
    const p = Number(options.port ?? port)
    resolveChecked(hostBare, p, opts.policy, opts.permission, lookup).then(
      (addresses) => {
        const sni = net.isIP(hostBare) === 0 ? hostBare : undefined
        // `path` in the http options is the request path; net.connect would read it as a unix
        // socket path, which is why ws itself clears it.
        const base = {
          ...(options as object),
          path: undefined,
          socketPath: undefined,
          host: hostBare,
          port: p,
          lookup: pinnedLookup(addresses),
        }
        const socket = secure
          ? rawConnect({ ...base, servername: sni } as tls.ConnectionOptions, true)
          : rawConnect(base as net.NetConnectOpts, false)
        socket.once(secure ? 'secureConnect' : 'connect', () => {
          const bad = checkConnected(socket, hostBare, opts.policy, opts.permission)
          if (bad) socket.destroy(bad)
        })
        oncreate(null, socket)
      },
      (err: Error) => oncreate(err, undefined as unknown as Duplex),
    )
    return undefined
  }

  return {
    // @types/ws types this as net.createConnection; ws forwards it to http.request, whose
    // createConnection supports the asynchronous (options, oncreate) form we use.
    createConnection: createConnection as unknown as ClientOptions['createConnection'],
    maxPayload: opts.maxPayload ?? 5_000_000,
    handshakeTimeout: opts.handshakeTimeoutMs ?? 5_000,
    followRedirects: false,
    maxRedirects: 0,
    // Upstream PDSs don't compress; inflate would be per-socket CPU and memory on the main thread.
    perMessageDeflate: false,
    headers: { ...(opts.userAgent ? { 'User-Agent': opts.userAgent } : {}), ...opts.headers },
  }
}

// ---------------------------------------------------------------------------------------------
// Convenience: one object per process holding the policy, handing out per-permission dispatchers.

export interface SafeDialerOptions {
  policy: SsrfPolicy
  lookup?: LookupFn
  userAgent?: string
  connectTimeoutMs?: number
  headersTimeoutMs?: number
  bodyTimeoutMs?: number
  handshakeTimeoutMs?: number
  maxPayload?: number
}

export class SafeDialer {
  private readonly opts: SafeDialerOptions
  private strict: Dispatcher | null = null
  private admin: Dispatcher | null = null

  constructor(opts: SafeDialerOptions) {
    this.opts = opts
  }

  /** undici dispatcher for one dial; the admin-localhost permission gets its own Agent. */
  dispatcher(permission: DialPermission = {}): Dispatcher {
    const make = (p: DialPermission): Dispatcher =>
      createSafeDispatcher({
        policy: this.opts.policy,
        permission: p,
        lookup: this.opts.lookup,
        connectTimeoutMs: this.opts.connectTimeoutMs,
        headersTimeoutMs: this.opts.headersTimeoutMs,
        bodyTimeoutMs: this.opts.bodyTimeoutMs,
      })
    if (permission.adminLocalhost) return (this.admin ??= make({ adminLocalhost: true }))
    return (this.strict ??= make({}))
  }

  wsOptions(url: string | URL, permission: DialPermission = {}, headers?: Record<string, string>): ClientOptions {
    return wsDialOptions(url, {
      policy: this.opts.policy,
      permission,
      lookup: this.opts.lookup,
      maxPayload: this.opts.maxPayload,
      handshakeTimeoutMs: this.opts.handshakeTimeoutMs,
      userAgent: this.opts.userAgent,
      headers,
    })
  }

  async close(): Promise<void> {
    await Promise.all([this.strict?.close(), this.admin?.close()])
    this.strict = null
    this.admin = null
  }
}
