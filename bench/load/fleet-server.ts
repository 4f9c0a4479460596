// The simulated PDS fleet, run as its own process (forked by run.ts, controlled over IPC):
// - a PLC directory on loopback serving every account's DID document;
// - H fake PDS hosts, one HTTP/WebSocket server per port (basePort + i), serving
//   com.atproto.sync.subscribeRepos (cursor honoured) and com.atproto.server.describeServer;
// - one send loop emitting the pre-generated frames across all hosts at a target aggregate rate
//   (token bucket) or, in saturation mode, as fast as each socket drains. A socket with more than
//   HIGH_WATER bytes buffered is skipped until it drains: nothing is ever buffered unboundedly.
// Each frame's `time` is overwritten in place with its send time just before it is sent, so a
// consumer measures ingest→consumer latency as receive time minus `time`.
import http from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import { CborWriter } from '../../src/validator/cbor-writer.ts'
import { sha256 } from '../../src/validator/bytes.ts'
import { loadFleetMeta, loadHostFrames, plcDidDoc, KIND_COMMIT, type FleetParams, type HostFrames } from './fleet.ts'

export type PlcMode = 'did-plc-server' | 'static'

export type FleetCommand =
  { cmd: 'release'; phase: 'warm' | 'all' } | { cmd: 'rate'; eventsPerSec: number | null } | { cmd: 'stats'; id: number } | { cmd: 'stop' }

export interface FleetStats {
  sent: number
  sentCommits: number
  released: number
  total: number
  connectedHosts: number
  connections: number
  /** frames released but not yet sent */
  pending: number
  blockedSockets: number
}

const HIGH_WATER = 256 * 1024
const MAX_PER_TICK = 4000

interface Host {
  index: number
  frames: HostFrames
  /** next frame index the live stream sends */
  sent: number
  /** frames the runner has released */
  limit: number
  conn: { ws: WebSocket; next: number } | null
  server: http.Server
}

function send(msg: unknown): void {
  process.send?.(msg)
}

async function startPlc(
  mode: PlcMode,
  accounts: Array<{ did: string; plcOp: unknown }>,
): Promise<{ url: string; close: () => Promise<void> }> {
  if (mode === 'did-plc-server') {
    const plc = (await import('@did-plc/server')) as unknown as {
      Database: { mock(): { contents: Record<string, unknown[]> } }
      PlcServer: { create(o: { db: unknown; port: number }): { start(): Promise<http.Server>; destroy(): Promise<void> } }
    }
    const db = plc.Database.mock()
    // Seeded directly with the real signed genesis ops: validateAndAddOp verifies each with
    // @atproto/crypto (~10 ms/op here), far too slow for 100k accounts. verify-fleet.ts runs a
    // sample through validateAndAddOp; the server still validates the log on every GET.
    const createdAt = new Date()
    for (const a of accounts) {
      const w = new CborWriter(512)
      w.value(a.plcOp)
      const cid = CID.createV1(0x71, createDigest(0x12, sha256(w.finish())))
      db.contents[a.did] = [{ did: a.did, operation: a.plcOp, cid, nullified: false, createdAt }]
    }
    const server = plc.PlcServer.create({ db, port: 0 })
    const s = await server.start()
    const port = (s.address() as { port: number }).port
    return { url: `http://127.0.0.1:${port}`, close: () => server.destroy() }
  }
  // static: the same documents, pre-formatted (what a caching front of a PLC directory serves)
  const docs = new Map<string, string>()
  for (const a of accounts) docs.set('/' + a.did, JSON.stringify(plcDidDoc(a.did, a.plcOp as never)))
  const s = http.createServer((req, res) => {
    const doc = docs.get(decodeURIComponent((req.url ?? '').split('?')[0]))
    if (!doc) {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"message":"DID not registered"}')
      return
    }
    res.writeHead(200, { 'content-type': 'application/did+ld+json' })
    res.end(doc)
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}`, close: () => new Promise((r) => s.close(() => r())) }
}

async function main(): Promise<void> {
  const params = JSON.parse(process.argv[2]) as FleetParams
  const plcMode = (process.argv[3] ?? 'static') as PlcMode
  const fleet = loadFleetMeta(params)
  if (!fleet) throw new Error('fleet not generated')
  const t0 = performance.now()
  const hostFrames = loadHostFrames(fleet)
  const plc = await startPlc(plcMode, fleet.meta.accounts)

  const hosts: Host[] = []
  let connections = 0
  for (let i = 0; i < hostFrames.length; i++) {
    const port = params.basePort + i
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 })
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (url.pathname === '/xrpc/com.atproto.server.describeServer') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ did: `did:web:localhost%3A${port}`, availableUserDomains: ['.test'], inviteCodeRequired: false }))
      } else if (url.pathname === '/xrpc/_health') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"version":"bench-fleet"}')
      } else {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end('{"error":"MethodNotImplemented"}')
      }
    })
    const host: Host = { index: i, frames: hostFrames[i], sent: 0, limit: 0, conn: null, server }
    server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (url.pathname !== '/xrpc/com.atproto.sync.subscribeRepos') {
        socket.destroy()
        return
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const c = url.searchParams.get('cursor')
        // cursor = last seq seen; seq = index + 1, so replay starts at index `cursor`
        const cursor = c !== null && c !== '' && /^\d+$/.test(c) ? Math.min(Number(c), host.limit) : null
        host.conn?.ws.terminate()
        const conn = { ws, next: cursor ?? host.sent }
        host.conn = conn
        connections++
        ws.on('close', () => {
          if (host.conn === conn) host.conn = null
        })
        ws.on('error', () => {})
        wake()
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    hosts.push(host)
  }

  // ---- send loop
  let rate: number | null = null
  let tokens = 0
  let lastRefill = performance.now()
  let sent = 0
  let sentCommits = 0
  let rr = 0
  let scheduled = false
  let stopped = false
  let isoMs = 0
  let iso = ''
  let blocked = 0

  function wake(): void {
    if (scheduled || stopped) return
    scheduled = true
    setImmediate(loop)
  }

  function loop(): void {
    scheduled = false
    if (stopped) return
    const now = performance.now()
    if (rate !== null) {
      tokens = Math.min(Math.max(rate / 50, 1), tokens + ((now - lastRefill) * rate) / 1000)
    }
    lastRefill = now
    let budget = rate === null ? MAX_PER_TICK : Math.min(MAX_PER_TICK, Math.floor(tokens))
    if (budget === 0) {
      // out of tokens: come back when the bucket has refilled by at least one
      setTimeout(loop, Math.max(1, Math.ceil(1000 / (rate as number))))
      scheduled = true
      return
    }
    let progressed = false
    let pendingAny = false
    blocked = 0
    const n = hosts.length
    // Round-robin, one frame per host per pass, so every host progresses evenly.
    while (budget > 0) {
      let sentThisPass = false
      for (let k = 0; k < n && budget > 0; k++) {
        const h = hosts[(rr + k) % n]
        const c = h.conn
        if (c === null || c.next >= h.limit) continue
        pendingAny = true
        if (c.ws.bufferedAmount > HIGH_WATER) {
          blocked++
          continue
        }
        const i = c.next++
        if (c.next > h.sent) h.sent = c.next
        const frame = h.frames.frames[i]
        const ms = Date.now()
        if (ms !== isoMs) {
          isoMs = ms
          iso = new Date(ms).toISOString()
        }
        frame.write(iso, h.frames.timeOffsets[i], 'latin1')
        c.ws.send(frame, { binary: true })
        sent++
        if (h.frames.kinds[i] === KIND_COMMIT) sentCommits++
        budget--
        if (rate !== null) tokens--
        sentThisPass = true
        progressed = true
      }
      rr = (rr + 1) % Math.max(1, n)
      if (!sentThisPass) break
    }
    if (!pendingAny) return // woken again by release / connection
    if (rate !== null && tokens < 1) {
      setTimeout(loop, Math.max(1, Math.ceil(1000 / rate)))
      scheduled = true
    } else if (!progressed) {
      // every socket with pending frames is over the high-water mark: wait for the relay to read
      setTimeout(loop, 1)
      scheduled = true
    } else {
      wake()
    }
  }

  const total = hosts.reduce((a, h) => a + h.frames.frames.length, 0)
  function stats(): FleetStats {
    let released = 0
    let pending = 0
    let connectedHosts = 0
    for (const h of hosts) {
      released += h.limit
      pending += h.limit - (h.conn ? h.conn.next : h.sent)
      if (h.conn) connectedHosts++
    }
    return { sent, sentCommits, released, total, connectedHosts, connections, pending, blockedSockets: blocked }
  }

  process.on('message', async (m: FleetCommand) => {
    switch (m.cmd) {
      case 'release':
        for (const h of hosts) h.limit = m.phase === 'warm' ? h.frames.warm : h.frames.frames.length
        wake()
        break
      case 'rate':
        rate = m.eventsPerSec
        tokens = 0
        lastRefill = performance.now()
        wake()
        break
      case 'stats':
        send({ type: 'stats', id: m.id, stats: stats() })
        break
      case 'stop':
        stopped = true
        for (const h of hosts) {
          h.conn?.ws.terminate()
          h.server.closeAllConnections()
          h.server.close()
        }
        await plc.close().catch(() => {})
        process.exit(0)
    }
  })
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', plcUrl: plc.url, hosts: hosts.length, frames: total, loadSeconds: (performance.now() - t0) / 1000 })
}

main().catch((err) => {
  send({ type: 'error', error: String(err?.stack ?? err) })
  process.exit(1)
})
