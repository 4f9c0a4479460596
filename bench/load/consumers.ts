// Downstream consumers of the relay, run as their own process (forked by run.ts): N WebSocket
// clients on subscribeRepos, either our raw-socket reader (ws-reader.ts, default: frames every
// message without a per-message allocation, ~1.9 µs of consumer CPU per message) or the `ws`
// package (`--consumer-client ws`, ~3.4 µs). Every message is counted; a rotating sample (bounded
// to about DECODES_PER_SEC in total, so 250 consumers don't spend the CPU the relay needs on
// decoding) is decoded with @atcute/cbor for its seq (checked strictly increasing per consumer)
// and `time` (the fleet's send time) → ingest→consumer latency.
import WebSocket from 'ws'
import { decodeFirst } from '@atcute/cbor'
import { connectWsReader } from './ws-reader.ts'

export type ConsumerClient = 'raw' | 'ws'

export type ConsumerCommand = { cmd: 'reset' } | { cmd: 'report'; id: number } | { cmd: 'stop' }

export interface ConsumerReport {
  connected: number
  messages: number
  bytes: number
  samples: number
  p50: number
  p99: number
  max: number
  seqViolations: number
  closes: number
}

const url = process.argv[2]
const count = Number(process.argv[3])
const expectedRate = Number(process.argv[4] ?? 2000)
const client = (process.argv[5] ?? 'raw') as ConsumerClient
if (client !== 'raw' && client !== 'ws') throw new Error(`unknown consumer client ${client}`)
const DECODES_PER_SEC = 10_000
const sampleEvery = Math.max(1, Math.ceil((expectedRate * count) / DECODES_PER_SEC))

let messages = 0
let bytes = 0
let latencies: number[] = []
let seqViolations = 0
let closes = 0
let connected = 0
let stopping = false

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]
}

function open(i: number): void {
  let n = i
  let lastSeq = 0
  const sampled = () => ++n % sampleEvery === 0
  const onMessage = (length: number, data: Uint8Array | undefined) => {
    messages++
    bytes += length
    if (data === undefined) return
    const recv = Date.now()
    try {
      const [, rest] = decodeFirst(data)
      const [body] = decodeFirst(rest) as [Record<string, unknown>, Uint8Array]
      const seq = body.seq as number
      if (typeof seq === 'number') {
        if (seq <= lastSeq) seqViolations++
        lastSeq = seq
      }
      if (typeof body.time === 'string') latencies.push(recv - Date.parse(body.time))
    } catch {
      // error frames etc.: counted only
    }
  }
  let isOpen = false
  const onOpen = () => {
    isOpen = true
    connected++
  }
  const onClose = () => {
    if (isOpen) connected--
    isOpen = false
    closes++
    if (!stopping) setTimeout(() => open(i), 500)
  }
  if (client === 'raw') {
    connectWsReader(url, { open: onOpen, close: onClose, wantPayload: sampled, message: onMessage })
    return
  }
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 8 * 1024 * 1024 })
  ws.on('open', onOpen)
  ws.on('message', (data: Buffer) => onMessage(data.length, sampled() ? data : undefined))
  ws.on('close', onClose)
  ws.on('error', () => {})
}

for (let i = 0; i < count; i++) open(i)

process.on('message', (m: ConsumerCommand) => {
  if (m.cmd === 'reset') {
    latencies = []
    messages = 0
    bytes = 0
  } else if (m.cmd === 'report') {
    const sorted = latencies.slice().sort((a, b) => a - b)
    const r: ConsumerReport = {
      connected,
      messages,
      bytes,
      samples: sorted.length,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted.length ? sorted[sorted.length - 1] : NaN,
      seqViolations,
      closes,
    }
    process.send?.({ type: 'report', id: m.id, report: r })
  } else if (m.cmd === 'stop') {
    stopping = true
    process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
process.send?.({ type: 'ready' })
