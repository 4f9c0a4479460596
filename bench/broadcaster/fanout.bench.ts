/**
 * Fan-out benchmark: events/s delivered to 1, 10, 100, 500 local consumers by the Broadcaster,
 * next to the raw limit of corked writes of pre-framed messages to the same sockets, in the same
 * run. Consumers live in a child process (raw TCP after a real WebSocket handshake, counting
 * bytes) so client CPU is not charged to the server; both CPUs are reported.
 *
 *   node_modules/.bin/node bench/broadcaster/fanout.bench.ts [seconds-per-case] [counts...]
 *
 * Producer: broadcasts batches of ~1.1 KB frames as fast as the slowest consumer allows (it waits
 * while any consumer lags by more than half the ring), so the figure is a sustainable rate with
 * no consumer lapped or kicked.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { encode, toBytes } from '@atcute/cbor'
import { Registry } from 'prom-client'
import { Broadcaster, SUBSCRIBE_REPOS_PATH } from '../../src/broadcaster/broadcaster.ts'
import { wsBinaryMessage } from '../../src/broadcaster/frames.ts'
import type { BroadcastFrame } from '../../src/broadcaster/types.ts'

const PAYLOAD_PAD = 1000 // ~1.1 KB frames, like an average PDS #commit
const BATCH = 200
const RING_FRAMES = 50_000

// ---------------------------------------------------------------- client (child process)

async function runClient(port: number, path: string, count: number): Promise<void> {
  let bytes = 0
  const sockets: net.Socket[] = []
  const key = Buffer.from('0123456789abcdef').toString('base64')
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1')
          sockets.push(s)
          let upgraded = false
          let head = ''
          s.on('error', reject)
          s.on('connect', () => {
            s.write(
              `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
            )
          })
          s.on('data', (d: Buffer) => {
            if (upgraded) {
              bytes += d.length
              return
            }
            head += d.toString('latin1')
            const end = head.indexOf('\r\n\r\n')
            if (end < 0) return
            if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head.split('\r\n')[0]))
            upgraded = true
            bytes += head.length - end - 4
            resolve()
          })
        }),
    ),
  )
  process.send!({ type: 'ready' })
  process.on('message', (m: { type: string }) => {
    if (m.type === 'snapshot') process.send!({ type: 'snapshot', bytes, cpu: process.cpuUsage() })
    if (m.type === 'exit') {
      for (const s of sockets) s.destroy()
      process.exit(0)
    }
  })
}

// ---------------------------------------------------------------- server side

function makeFrame(seq: number): BroadcastFrame {
  const header = encode({ t: '#commit', op: 1 })
  const body = encode({
    seq,
    repo: 'did:plc:abcdefghijklmnopqrstuvwx',
    time: '2026-01-01T00:00:00.000Z',
    blocks: toBytes(new Uint8Array(PAYLOAD_PAD)),
  })
  const frame = new Uint8Array(header.length + body.length)
  frame.set(header)
  frame.set(body, header.length)
  return { seq, did: 'did:plc:abcdefghijklmnopqrstuvwx', frame, time: Date.now() }
}

function request(child: ChildProcess, type: string): Promise<any> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type === type) {
        child.off('message', on)
        resolve(m)
      }
    }
    child.on('message', on)
    if (type === 'snapshot') child.send({ type })
  })
}

const tick = () => new Promise<void>((r) => setImmediate(r))

interface CaseResult {
  mode: string
  consumers: number
  produced: number // events/s
  delivered: number // messages/s received by all consumers together
  serverUsPerMsg: number
  serverCpu: number // fraction of one core
  clientCpu: number
  rssMiB: number
}

async function runCase(mode: 'broadcaster' | 'raw', consumers: number, seconds: number): Promise<CaseResult> {
  const b = new Broadcaster({ registry: new Registry(), ringMaxFrames: RING_FRAMES, ringMaxBytes: 1 << 30, pingIntervalMs: 3_600_000 })
  const rawSockets: net.Socket[] = []
  const server = http.createServer((_req, res) => res.end())
  server.on('upgrade', (req, socket, head) => {
    if (req.url?.startsWith(SUBSCRIBE_REPOS_PATH)) return b.handleUpgrade(req, socket, head)
    // raw: hand-made handshake, then pre-framed corked writes by the loop below
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
    ;(socket as net.Socket).setNoDelay(true)
    socket.on('error', () => {})
    rawSockets.push(socket as net.Socket)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  const path = mode === 'broadcaster' ? SUBSCRIBE_REPOS_PATH : '/raw'
  const child = fork(fileURLToPath(import.meta.url), ['client', String(port), path, String(consumers)], { stdio: 'inherit' })
  await request(child, 'ready')

  const frames = Array.from({ length: 4096 }, (_, i) => makeFrame(i + 1))
  const wires = frames.map((f) => wsBinaryMessage(f.frame))
  const wireSize = wires[0]!.length
  let seq = 0
  let running = true
  const rawPos = new Array<number>(consumers).fill(0)

  const producer = (async () => {
    while (running) {
      if (mode === 'broadcaster') {
        if (b.lagSummary().max > RING_FRAMES / 2) {
          await tick()
          continue
        }
        for (let i = 0; i < BATCH; i++) {
          const f = frames[seq % frames.length]!
          seq++
          b.broadcast({ seq, did: f.did, frame: f.frame, time: f.time })
        }
      } else {
        // raw ceiling: each socket gets a corked batch when it has room; producer bounded by the slowest
        let minPos = Infinity
        for (let k = 0; k < rawSockets.length; k++) {
          const s = rawSockets[k]!
          if (s.writableLength < 1 << 20) {
            s.cork()
            const to = rawPos[k]! + BATCH
            for (let p = rawPos[k]!; p < to; p++) s.write(wires[p % wires.length]!)
            s.uncork()
            rawPos[k] = to
          }
          if (rawPos[k]! < minPos) minPos = rawPos[k]!
        }
        seq = Math.max(seq, Number.isFinite(minPos) ? minPos : 0)
      }
      await tick()
    }
  })()

  await new Promise((r) => setTimeout(r, 500)) // warm-up
  const c0 = await request(child, 'snapshot')
  const s0 = process.cpuUsage()
  const seq0 = seq
  const t0 = performance.now()
  let rssMax = 0
  const rssTimer = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage.rss())), 100)
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const c1 = await request(child, 'snapshot')
  const s1 = process.cpuUsage(s0)
  const seq1 = seq
  const elapsed = (performance.now() - t0) / 1000
  clearInterval(rssTimer)
  running = false
  await producer

  const msgs = (c1.bytes - c0.bytes) / wireSize
  const serverUs = s1.user + s1.system
  const clientUs = c1.cpu.user + c1.cpu.system - (c0.cpu.user + c0.cpu.system)
  child.send({ type: 'exit' })
  await new Promise((r) => child.once('exit', r))
  await b.closeAll()
  for (const s of rawSockets) s.destroy()
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
  return {
    mode,
    consumers,
    produced: (seq1 - seq0) / elapsed,
    delivered: msgs / elapsed,
    serverUsPerMsg: serverUs / Math.max(1, msgs),
    serverCpu: serverUs / 1e6 / elapsed,
    clientCpu: clientUs / 1e6 / elapsed,
    rssMiB: rssMax / 2 ** 20,
  }
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 3)
  const counts = process.argv.length > 3 ? process.argv.slice(3).map(Number) : [1, 10, 100, 500]
  const rows: CaseResult[] = []
  for (const n of counts) {
    for (const mode of ['broadcaster', 'raw'] as const) {
      const r = await runCase(mode, n, seconds)
      rows.push(r)
      process.stderr.write(`done ${mode} x${n}\n`)
    }
  }
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US')
  console.log(
    `frame ${makeFrame(1).frame.length} B payload, ${seconds}s per case, node ${process.version}, ${(await import('node:os')).cpus().length} cores`,
  )
  console.log(
    '| consumers | path | events/s per consumer | delivered msg/s (all) | vs raw | server CPU | server µs/msg | client CPU | server RSS MiB |',
  )
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) {
    const raw = rows.find((x) => x.mode === 'raw' && x.consumers === r.consumers)
    const perConsumer = r.delivered / r.consumers
    console.log(
      `| ${r.consumers} | ${r.mode} | ${fmt(perConsumer)} | ${fmt(r.delivered)} | ${raw ? ((100 * r.delivered) / raw.delivered).toFixed(0) + '%' : ''} | ${(100 * r.serverCpu).toFixed(0)}% | ${r.serverUsPerMsg.toFixed(2)} | ${(100 * r.clientCpu).toFixed(0)}% | ${r.rssMiB.toFixed(0)} |`,
    )
  }
}

if (process.argv[2] === 'client') {
  await runClient(Number(process.argv[3]), process.argv[4]!, Number(process.argv[5]))
} else {
  await main()
}
