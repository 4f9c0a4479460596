// Child process of intake.bench.ts: N fake upstream hosts (one subscribeRepos WebSocket server per
// port on 127.0.0.1), each pushing ~1 KB #identity frames with increasing seqs as fast as its
// client reads (flow-controlled by bufferedAmount). Prints the ports as one JSON line.
//   node bench/subscriber/upstreams.ts <hosts>
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { encode } from '@atcute/cbor'
import { WebSocketServer, type WebSocket } from 'ws'

const hosts = Number(process.argv[2] ?? 1)
const HIGH_WATER = Math.max(16 * 1024, Math.min(256 * 1024, Math.floor((16 << 20) / hosts)))
const BURST = 32

const header = encode({ t: '#identity', op: 1 })
// Body built by hand so the seq can be patched in place: {did, seq: uint32, time, pad}.
function template(did: string): { bytes: Buffer; seqAt: number } {
  const te = new TextEncoder()
  const parts: number[] = [0xa4]
  const text = (s: string) => {
    const b = te.encode(s)
    if (b.length < 24) parts.push(0x60 | b.length)
    else if (b.length < 256) parts.push(0x78, b.length)
    else parts.push(0x79, b.length >> 8, b.length & 0xff)
    parts.push(...b)
  }
  text('did')
  text(did)
  text('seq')
  parts.push(0x1a)
  const seqAt = header.length + parts.length
  parts.push(0, 0, 0, 0)
  text('time')
  text(new Date().toISOString())
  text('pad')
  text('x'.repeat(900))
  return { bytes: Buffer.concat([Buffer.from(header), Buffer.from(parts)]), seqAt }
}

interface Host {
  seq: number
  clients: Set<WebSocket>
  tpls: Array<{ bytes: Buffer; seqAt: number }>
}

const ports: number[] = []
const all: Host[] = []
for (let i = 0; i < hosts; i++) {
  const host: Host = { seq: 0, clients: new Set(), tpls: [] }
  for (let d = 0; d < 8; d++) host.tpls.push(template(`did:plc:h${i.toString(36).padStart(4, '0')}d${d}${'x'.repeat(14)}`))
  const server = http.createServer((_req, res) => {
    res.writeHead(404)
    res.end()
  })
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  wss.on('connection', (ws) => {
    host.clients.add(ws)
    ws.on('close', () => host.clients.delete(ws))
    ws.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  ports.push((server.address() as AddressInfo).port)
  all.push(host)
}
process.stdout.write(JSON.stringify({ ports }) + '\n')

function pump(): void {
  let sent = 0
  for (const h of all) {
    for (const ws of h.clients) {
      let n = 0
      while (ws.bufferedAmount < HIGH_WATER && n < BURST) {
        h.seq++
        const t = h.tpls[h.seq % h.tpls.length]!
        const f = Buffer.from(t.bytes)
        f.writeUInt32BE(h.seq, t.seqAt)
        ws.send(f, { binary: true })
        n++
      }
      sent += n
    }
  }
  // Spin only while clients are reading; otherwise poll gently (2 cores are shared with the relay).
  if (sent > 0) setImmediate(pump)
  else setTimeout(pump, 1)
}
pump()
process.on('disconnect', () => process.exit(0))
