// `npm run bench`: the end-to-end load benchmark. For each scenario (H upstream hosts, C consumers):
// a fresh database on one embedded Postgres, the simulated fleet (own process), the relay
// (`node src/main.ts serve`, own process), the consumers (own process). Phases:
//   warm        each account's #identity, #account and first commit (fills the relay's key cache)
//   latency     each rate of LAT_RATES (ascending) for LAT_SECONDS; consumers measure receive time − frame `time`
//   saturation  the rest as fast as the relay reads; validated commits/s from the relay's metrics
// Relay RSS/heap/CPU are sampled every second from /metrics, every process's CPU from /proc.
// Afterwards the same frames go through @atproto/sync's validation path alone for the ratio.
// Results are printed and written to the "Load benchmark" section of docs/benchmarks.md.
//
//   node bench/load/run.ts                 quick: H=10 with 100 consumers
//   node bench/load/run.ts --full          H ∈ {10, 1000, 3000} × C ∈ {1, 100, 250}
//   options: --hosts 10,1000 --consumers 1,100 --accounts 1000 (total) --commits 100000
//            --lat-rate 1000,2000 --lat-seconds 10 --sat-seconds 30 --plc static|did-plc-server
//            --relay-env KEY=VALUE (repeatable) --relay-node-arg --optimize-for-size (repeatable) --no-docs
//            --soak-minutes 30 --soak-rate 300   a fixed-rate phase between latency and saturation:
//                                                RSS drift over time (needs enough --commits)
//            --soak-at 3000x250 --soak-commits 650000   soak in that scenario only, with a bigger fleet
//            --consumer-client raw|ws   consumers on our raw-socket reader (default) or the `ws` package
//            --harness-nice 10          nice value of the fleet and consumers processes (default 10, 0 = same
//                                       priority as the relay); Postgres and the relay stay at 0
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../src/core/embedded-postgres.ts'
import { createLogger } from '../../src/core/log.ts'
import { spawnRelay, freePort, type RelayProcess } from '../../test/helpers/relay-process.ts'
import { ensureFleet, DEFAULT_PARAMS, ROOT, type Fleet, type FleetParams } from './fleet.ts'
import type { FleetCommand, FleetStats, PlcMode } from './fleet-server.ts'
import type { ConsumerClient, ConsumerReport } from './consumers.ts'
import { measureReference, type ReferenceResult } from './reference.ts'

// ---- relay metric names (first one present wins; commit-only samples are preferred when labelled)
const ACCEPTED_METRICS = ['relay_events_accepted_total', 'relay_validator_events_accepted_total', 'relay_store_events_persisted_total']
const COMMIT_LABEL = /(kind|type|t)="#?commit"/
const RSS_METRIC = 'process_resident_memory_bytes'
const HEAP_METRIC = 'nodejs_heap_size_used_bytes'
const CPU_METRIC = 'process_cpu_seconds_total'
/** counters listed at the end of each scenario when non-zero (why events were not accepted) */
const DROP_METRIC_RE = /^relay_\w*(drop|reject|invalid|fail|error|rate_limit_wait_seconds)\w*_total$/
const ADMIN_PASSWORD = 'bench-admin'

// ---- arguments
const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const list = (name: string, def: number[]): number[] => (flag(name) ? flag(name)!.split(',').map(Number) : def)
const FULL = argv.includes('--full')
const HOSTS = list('--hosts', FULL ? [10, 1000, 3000] : [10])
const CONSUMERS = list('--consumers', FULL ? [1, 100, 250] : [100])
const ACCOUNTS_TOTAL = Number(flag('--accounts') ?? 1000)
const COMMITS = Number(flag('--commits') ?? 100_000)
const LAT_RATES = list('--lat-rate', [1000, 2000]).sort((a, b) => a - b)
/** the rate issue 7's latency target is stated at, reported in the summary table */
const LAT_RATE = LAT_RATES.includes(2000) ? 2000 : LAT_RATES[LAT_RATES.length - 1]!
const LAT_SECONDS = Number(flag('--lat-seconds') ?? 10)
const SAT_SECONDS = Number(flag('--sat-seconds') ?? 30)
const WARM_TIMEOUT_S = Number(flag('--warm-timeout') ?? 180)
const SOAK_MINUTES = Number(flag('--soak-minutes') ?? 0)
const SOAK_RATE = Number(flag('--soak-rate') ?? 300)
/** "HxC": soak only in that scenario (default: every scenario soaks when --soak-minutes is set) */
const SOAK_AT = flag('--soak-at')
/** fleet size for the soaking scenario's host count (a soak needs rate × minutes × 60 more commits) */
const SOAK_COMMITS = Number(flag('--soak-commits') ?? 0)
const soaksIn = (H: number, C: number) => SOAK_MINUTES > 0 && (!SOAK_AT || SOAK_AT === `${H}x${C}`)
const commitsFor = (H: number) => (SOAK_AT && SOAK_AT.startsWith(`${H}x`) ? Math.max(COMMITS, SOAK_COMMITS) : COMMITS)
const WRITE_DOCS = !argv.includes('--no-docs')
/**
 * The fleet and the consumers stand in for other machines. At equal priority on 2 cores, every
 * write the relay makes wakes one of them and the kernel often runs it on the relay's core right
 * away (wakeup preemption): the relay's threads then queue behind its own load generator.
 */
const HARNESS_NICE = Number(flag('--harness-nice') ?? 10)
if (!(Number.isInteger(HARNESS_NICE) && HARNESS_NICE >= 0 && HARNESS_NICE <= 19)) throw new Error('--harness-nice is 0-19')
const CONSUMER_CLIENT = (flag('--consumer-client') ?? 'raw') as ConsumerClient
if (CONSUMER_CLIENT !== 'raw' && CONSUMER_CLIENT !== 'ws') throw new Error('--consumer-client is raw or ws')
const RELAY_ENV: Record<string, string> = {}
/** extra flags on the relay's node command line (V8 flags cannot go through --relay-env NODE_OPTIONS) */
const RELAY_NODE_ARGS: string[] = []
argv.forEach((a, i) => {
  if (a === '--relay-node-arg') RELAY_NODE_ARGS.push(argv[i + 1]!)
  if (a === '--relay-env') {
    const [k, ...v] = argv[i + 1].split('=')
    RELAY_ENV[k] = v.join('=')
  }
})

const log = (s: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// ---- children are always stopped, whatever happens
const children = new Set<ChildProcess>()
function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null) c.kill('SIGKILL')
  }
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll()
    process.exit(130)
  })
}

// ---- /proc and /metrics helpers
const CLK_TCK = 100
function procCpu(pid: number | undefined): number {
  if (!pid) return 0
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** setpriority applies per thread on Linux: renice each one (later threads inherit from their creator). */
function niceProcess(pid: number | undefined, nice: number): void {
  if (!pid || nice === 0) return
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      os.setPriority(Number(tid), nice)
    } catch {
      // the thread exited since the listing
    }
  }
}

function childrenOf(ppid: number): number[] {
  const out: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8')
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
      if (Number(f[1]) === ppid) out.push(Number(d))
    } catch {
      // exited
    }
  }
  return out
}

/** CPU seconds per thread name of a process (worker threads vs main thread vs libuv pool). */
function threadCpu(pid: number): Map<string, number> {
  const m = new Map<string, number>()
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')
      const name = Number(t) === pid ? 'main' : s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'))
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
      m.set(name, (m.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / CLK_TCK)
    }
  } catch {
    // exited
  }
  return m
}

/**
 * Where a process's resident memory is, from /proc/PID/smaps: file-backed (the node binary's code
 * and ICU data, shared libraries) vs anonymous, and anonymous mappings by size class. Anonymous
 * classes are heuristics: glibc's per-thread malloc arenas are 64 MiB reservations, thread stacks
 * 8 MiB, V8 maps its heap in 256 KiB pages and large objects in their own mappings, and glibc mmaps
 * allocations over 128 KiB (e.g. large frames) one by one.
 */
/** The relay's own memory gauges next to the mapping view (V8 heaps, array buffers, capped buffers). */
function relayMemoryGauges(p: Prom | null): Array<[string, number]> {
  if (!p) return []
  const g = (name: string, filter?: RegExp): number => sum(p, name, filter)
  return [
    ['V8 heap, main (total)', g('nodejs_heap_size_total_bytes')],
    ['V8 heaps, validation workers (total)', g('relay_validator_heap_total_bytes')],
    ['array buffers, main', g('relay_memory_array_buffers_bytes')],
    ['of which ring', g('relay_firehose_ring_bytes')],
    ['of which pending commits', g('relay_store_pending_bytes')],
    ['of which pool queues', g('relay_pool_queue_bytes')],
    ['consumer socket backlog (sum)', g('relay_firehose_socket_backlog_bytes', /stat="total"/)],
  ]
}

function rssByMapping(pid: number | undefined): Array<[string, number]> {
  if (!pid) return []
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8')
  } catch {
    return []
  }
  const totals = new Map<string, number>()
  let kind = ''
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head) {
      const sizeKiB = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024
      const name = head[3]!
      if (name === '[heap]') kind = 'anon: brk heap (main arena)'
      else if (name.startsWith('[stack')) kind = 'anon: main stack'
      else if (name.startsWith('[')) kind = `other ${name}`
      else if (name.endsWith('/node') || /\/bin\/node$/.test(name)) kind = 'file: node binary (code, ICU data)'
      else if (name !== '') kind = 'file: shared libraries and other files'
      else if (sizeKiB >= 32 * 1024) kind = 'anon: ≥ 32 MiB mappings (malloc arenas, V8 reservations)'
      else if (sizeKiB >= 8 * 1024) kind = 'anon: 8-32 MiB mappings (thread stacks, V8 spaces)'
      else if (sizeKiB >= 256) kind = 'anon: 256 KiB-8 MiB mappings (V8 pages, large mallocs)'
      else kind = 'anon: < 256 KiB mappings'
      continue
    }
    if (line.startsWith('Rss:')) totals.set(kind, (totals.get(kind) ?? 0) + Number(line.split(/\s+/)[1]) * 1024)
  }
  return [...totals].sort((a, b) => b[1] - a[1])
}

type Prom = Map<string, Array<{ labels: string; value: number }>>
function parseProm(text: string): Prom {
  const m: Prom = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#') continue
    const sp = line.lastIndexOf(' ')
    const key = line.slice(0, sp)
    const value = Number(line.slice(sp + 1))
    const b = key.indexOf('{')
    const name = b < 0 ? key : key.slice(0, b)
    const labels = b < 0 ? '' : key.slice(b)
    let arr = m.get(name)
    if (!arr) m.set(name, (arr = []))
    arr.push({ labels, value })
  }
  return m
}
const sum = (p: Prom, name: string, filter?: RegExp) =>
  (p.get(name) ?? []).filter((s) => !filter || filter.test(s.labels)).reduce((a, s) => a + s.value, 0)

async function scrape(url: string): Promise<Prom | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
    return parseProm(await res.text())
  } catch {
    return null
  }
}

/**
 * p50/p99 of a relay histogram between two scrapes, per value of `label` (or '' when unlabelled),
 * interpolated within buckets as Prometheus does.
 */
type Quantiles = Record<string, { p50: number; p99: number; count: number }>
function histogramQuantiles(p0: Prom | null, p1: Prom | null, name: string, label?: string): Quantiles {
  const out: Quantiles = {}
  if (!p0 || !p1) return out
  const buckets = (p: Prom) => {
    const m = new Map<string, Map<number, number>>()
    for (const s of p.get(`${name}_bucket`) ?? []) {
      const key = label ? new RegExp(`${label}="([^"]+)"`).exec(s.labels)?.[1] : ''
      const le = /le="([^"]+)"/.exec(s.labels)?.[1]
      if (key === undefined || !le) continue
      if (!m.has(key)) m.set(key, new Map())
      m.get(key)!.set(le === '+Inf' ? Infinity : Number(le), s.value)
    }
    return m
  }
  const b0 = buckets(p0)
  for (const [key, b] of buckets(p1)) {
    const les = [...b.keys()].sort((x, y) => x - y)
    const cum = les.map((le) => b.get(le)! - (b0.get(key)?.get(le) ?? 0))
    const total = cum[cum.length - 1] ?? 0
    if (total <= 0) continue
    const q = (f: number) => {
      const rank = f * total
      const i = cum.findIndex((c) => c >= rank)
      const hi = les[i]!
      const lo = i > 0 ? les[i - 1]! : 0
      if (hi === Infinity) return lo
      const below = i > 0 ? cum[i - 1]! : 0
      const inBucket = cum[i]! - below
      return lo + (hi - lo) * (inBucket > 0 ? (rank - below) / inBucket : 1)
    }
    out[key] = { p50: q(0.5), p99: q(0.99), count: total }
  }
  return out
}

/**
 * Where the time goes inside the relay during a phase: since the subscriber read the frame
 * (validated = worker result back, broadcast = persisted and sent), worker task time and batch
 * size, group-commit time and size, and the main thread's event-loop delay at the end.
 */
function relayInternals(p0: Prom | null, p1: Prom | null): string {
  const ms = (v: number) => (v * 1000).toFixed(1)
  const parts: string[] = []
  const stages = histogramQuantiles(p0, p1, 'relay_ingest_latency_seconds', 'stage')
  for (const [k, v] of Object.entries(stages)) parts.push(`${k} p50 ${ms(v.p50)} / p99 ${ms(v.p99)} ms`)
  const one = (name: string, what: string, fmt: (v: number) => string) => {
    const v = histogramQuantiles(p0, p1, name)['']
    if (v) parts.push(`${what} p50 ${fmt(v.p50)} / p99 ${fmt(v.p99)}`)
  }
  one('relay_pool_task_seconds', 'worker task ms', ms)
  one('relay_pool_batch_frames', 'frames/task', (v) => v.toFixed(0))
  one('relay_store_commit_seconds', 'commit ms', ms)
  one('relay_store_batch_events', 'events/commit', (v) => v.toFixed(0))
  const lag = p1?.get('nodejs_eventloop_lag_p99_seconds')?.[0]?.value
  if (lag !== undefined) parts.push(`main event-loop delay p99 ${ms(lag)} ms`)
  return parts.join(', ')
}

interface Accepted {
  metric: string | null
  commitsOnly: boolean
  value: number
}
function accepted(p: Prom): Accepted {
  for (const name of ACCEPTED_METRICS) {
    const samples = p.get(name)
    if (!samples) continue
    const commitsOnly = samples.some((s) => COMMIT_LABEL.test(s.labels))
    return { metric: name, commitsOnly, value: sum(p, name, commitsOnly ? COMMIT_LABEL : undefined) }
  }
  return { metric: null, commitsOnly: false, value: 0 }
}

// ---- IPC helpers
function forkChild(file: string, args: string[]): ChildProcess {
  const c = fork(path.join(ROOT, file), args, { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: ROOT })
  children.add(c)
  c.on('exit', () => children.delete(c))
  return c
}
function waitMessage<T>(c: ChildProcess, pred: (m: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer)
      c.off('message', on)
      c.off('exit', onExit)
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`timed out waiting for ${what}`))
    }, timeoutMs)
    const on = (m: Record<string, unknown>) => {
      if (m.type === 'error') {
        done()
        reject(new Error(`${what}: ${m.error}`))
      } else if (pred(m)) {
        done()
        resolve(m as T)
      }
    }
    const onExit = (code: number | null) => {
      done()
      reject(new Error(`${what}: child exited ${code}`))
    }
    c.on('message', on)
    c.on('exit', onExit)
  })
}
let reqId = 0
async function fleetStats(c: ChildProcess): Promise<FleetStats> {
  const id = ++reqId
  c.send({ cmd: 'stats', id } satisfies FleetCommand)
  return (await waitMessage<{ stats: FleetStats }>(c, (m) => m.type === 'stats' && m.id === id, 10_000, 'fleet stats')).stats
}
async function consumerReport(c: ChildProcess): Promise<ConsumerReport> {
  const id = ++reqId
  c.send({ cmd: 'report', id })
  return (await waitMessage<{ report: ConsumerReport }>(c, (m) => m.type === 'report' && m.id === id, 10_000, 'consumer report')).report
}

// ---- scenario
interface Sample {
  t: number
  accepted: number
  rss: number
  heap: number
  relayCpu: number
  fleetCpu: number
  consumersCpu: number
  pgCpu: number
  fleetSent: number
  fleetPending: number
}

interface SoakResult {
  minutes: number
  rate: number
  relayRate: number
  consumer: ConsumerReport
  /** medians over minutes 1-3 and over the last 3 minutes, and the max */
  rssEarly: number
  rssLate: number
  rssMax: number
  heapEarly: number
  heapLate: number
  /** least-squares slope of RSS after the first 3 minutes */
  rssSlopePerHour: number
  fleetExhausted: boolean
}

function medianOf(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b)
  return s.length ? s[s.length >> 1] : NaN
}

function slope(points: Array<[number, number]>): number {
  const n = points.length
  if (n < 2) return NaN
  const mx = points.reduce((a, p) => a + p[0], 0) / n
  const my = points.reduce((a, p) => a + p[1], 0) / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den > 0 ? num / den : NaN
}

interface ScenarioResult {
  hosts: number
  consumers: number
  accounts: number
  fleet: Fleet
  acceptedMetric: string | null
  commitsOnly: boolean
  registerSeconds: number
  registerErrors: number
  connectedHosts: number
  warmSeconds: number | null
  warmAccepted: number
  latency: (ConsumerReport & { rate: number; relayRate: number }) | null
  /** every latency phase, ascending rate (the one above is the LAT_RATE one) */
  latencies: Array<ConsumerReport & { target: number; rate: number; relayRate: number; internals: string }>
  soak: SoakResult | null
  saturation: {
    commitsPerSec: number
    seconds: number
    commits: number
    relayCores: number
    perRelayCpuSecond: number
    fleetCores: number
    consumersCores: number
    pgCores: number
    exhausted: boolean
    consumerMessagesPerSec: number
  } | null
  memory: { rssMax: number; rssLast: number; heapMax: number; heapLast: number; series: Array<[number, number, number]> }
  threads: Array<[string, number]>
  /** resident memory by mapping kind, at the end of the soak (when there is one) and at the end */
  rssMaps: { soak: Array<[string, number]>; end: Array<[string, number]> }
  drops: Array<[string, number]>
  notes: string[]
}

async function runScenario(H: number, C: number, pgAdmin: pg.Pool, connBase: string, pgPid: number): Promise<ScenarioResult> {
  const notes: string[] = []
  const params: FleetParams = {
    ...DEFAULT_PARAMS,
    hosts: H,
    accountsPerHost: Math.max(1, Math.ceil(ACCOUNTS_TOTAL / H)),
    commits: commitsFor(H),
  }
  params.commits = Math.max(params.commits, params.hosts * params.accountsPerHost)
  const fleet = await ensureFleet(params, log)
  const accounts = fleet.meta.accounts.length
  const plcMode: PlcMode = (flag('--plc') as PlcMode | undefined) ?? (accounts <= 2000 ? 'did-plc-server' : 'static')

  const db = `bench_load_${Date.now()}`
  await pgAdmin.query(`CREATE DATABASE ${db}`)
  const fleetProc = forkChild('bench/load/fleet-server.ts', [JSON.stringify(params), plcMode])
  const ready = await waitMessage<{ plcUrl: string; loadSeconds: number }>(fleetProc, (m) => m.type === 'ready', 300_000, 'fleet server')
  niceProcess(fleetProc.pid, HARNESS_NICE)
  log(
    `fleet: ${H} hosts on ports ${params.basePort}-${params.basePort + H - 1}, ${accounts} accounts, PLC (${plcMode}) at ${ready.plcUrl}, frames loaded in ${ready.loadSeconds.toFixed(1)} s`,
  )

  const port = await freePort()
  const probePort = await freePort()
  const relay: RelayProcess = spawnRelay(
    {
      DATABASE_URL: `${connBase.replace('/postgres?', `/${db}?`)}`,
      RELAY_PORT: String(port),
      RELAY_PROBE_PORT: String(probePort),
      RELAY_LISTEN_HOST: '127.0.0.1',
      RELAY_PLC_URL: ready.plcUrl,
      RELAY_ALLOW_INSECURE_HOSTS: 'true',
      RELAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RELAY_LOG_LEVEL: 'warn',
      RELAY_DATA_DIR: path.join(ROOT, '.tmp', 'bench-load-relay'),
      ...RELAY_ENV,
    },
    [],
    RELAY_NODE_ARGS,
  )
  children.add(relay.proc)
  const metricsUrl = `http://127.0.0.1:${probePort}/metrics`
  const api = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${probePort}/_readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (relay.proc.exitCode !== null || Date.now() > deadline) throw new Error(`relay not ready:\n${relay.output().slice(-4000)}`)
    await sleep(200)
  }
  log(`relay ready (pid ${relay.proc.pid}, api ${port}, probes ${probePort})`)

  const consumersProc = forkChild('bench/load/consumers.ts', [
    `ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos`,
    String(C),
    String(LAT_RATE),
    CONSUMER_CLIENT,
  ])
  await waitMessage(consumersProc, (m) => m.type === 'ready', 30_000, 'consumers')
  niceProcess(consumersProc.pid, HARNESS_NICE)
  for (let i = 0; i < 100; i++) {
    if ((await consumerReport(consumersProc)).connected >= C) break
    await sleep(100)
  }

  // register every host and lift its limits
  const auth = 'Basic ' + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')
  const tr = performance.now()
  let registerErrors = 0
  const firstErrors: string[] = []
  const post = async (p: string, body: unknown) => {
    const res = await fetch(api + p, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).catch((e: Error) => ({ ok: false, status: 0, text: async () => e.message }))
    if (!res.ok) {
      registerErrors++
      if (firstErrors.length < 3) firstErrors.push(`${p} ${res.status} ${(await res.text()).slice(0, 200)}`)
    }
  }
  let next = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < H) {
        const h = next++
        const hostname = `localhost:${params.basePort + h}`
        await post('/admin/pds/requestCrawl', { hostname })
        await post('/admin/pds/changeLimits', { host: hostname, repo_limit: 10_000_000 })
      }
    }),
  )
  const registerSeconds = (performance.now() - tr) / 1000
  if (registerErrors) notes.push(`admin API errors: ${registerErrors} (${firstErrors.join('; ')})`)
  log(
    `registered ${H} hosts in ${registerSeconds.toFixed(1)} s (${registerErrors} errors${firstErrors.length ? ': ' + firstErrors.join('; ') : ''})`,
  )

  // sampler
  const samples: Sample[] = []
  let acceptedInfo: Accepted = { metric: null, commitsOnly: false, value: 0 }
  let lastProm: Prom | null = null
  const t0 = performance.now()
  let stopSampling = false
  const sampleOnce = async () => {
    const p = await scrape(metricsUrl)
    if (p) {
      lastProm = p
      acceptedInfo = accepted(p)
    }
    const fs = await fleetStats(fleetProc).catch(() => null)
    const pgCpu = procCpu(pgPid) + childrenOf(pgPid).reduce((a, pid) => a + procCpu(pid), 0)
    const s: Sample = {
      t: (performance.now() - t0) / 1000,
      accepted: acceptedInfo.value,
      rss: p ? sum(p, RSS_METRIC) : NaN,
      heap: p ? sum(p, HEAP_METRIC) : NaN,
      relayCpu: p ? sum(p, CPU_METRIC) : procCpu(relay.proc.pid),
      fleetCpu: procCpu(fleetProc.pid),
      consumersCpu: procCpu(consumersProc.pid),
      pgCpu,
      fleetSent: fs?.sentCommits ?? NaN,
      fleetPending: fs?.pending ?? NaN,
    }
    samples.push(s)
    return s
  }
  const sampler = (async () => {
    while (!stopSampling) {
      await sampleOnce()
      await sleep(1000)
    }
  })()
  const latest = () => samples[samples.length - 1]
  await sleep(1100)

  // ---- warm
  const warmFrames = fleet.meta.hosts.reduce((a, h) => a + h[3], 0)
  const base = latest().accepted
  fleetProc.send({ cmd: 'rate', eventsPerSec: null } satisfies FleetCommand)
  fleetProc.send({ cmd: 'release', phase: 'warm' } satisfies FleetCommand)
  const tw = performance.now()
  let warmSeconds: number | null = null
  let lastGrowth = performance.now()
  let lastVal = base
  for (;;) {
    await sleep(500)
    const s = latest()
    const want = acceptedInfo.commitsOnly ? accounts : warmFrames
    if (s.accepted - base >= want) {
      warmSeconds = (performance.now() - tw) / 1000
      break
    }
    if (s.accepted !== lastVal) {
      lastVal = s.accepted
      lastGrowth = performance.now()
    }
    if (performance.now() - lastGrowth > 20_000 || performance.now() - tw > WARM_TIMEOUT_S * 1000) {
      notes.push(`warm phase incomplete: ${s.accepted - base} of ${want} accepted (${acceptedInfo.metric ?? 'no accepted metric'})`)
      break
    }
  }
  const warmAccepted = latest().accepted - base
  log(
    `warm: ${warmAccepted} accepted in ${warmSeconds?.toFixed(1) ?? 'n/a'} s (metric ${acceptedInfo.metric ?? 'none'}${acceptedInfo.commitsOnly ? ', commits' : ''})`,
  )

  // ---- latency at each rate, lowest first (a rate the relay cannot sustain leaves a backlog)
  let latency: ScenarioResult['latency'] = null
  const latencies: ScenarioResult['latencies'] = []
  for (const rate of LAT_SECONDS > 0 ? LAT_RATES : []) {
    consumersProc.send({ cmd: 'reset' })
    fleetProc.send({ cmd: 'rate', eventsPerSec: rate } satisfies FleetCommand)
    fleetProc.send({ cmd: 'release', phase: 'all' } satisfies FleetCommand)
    const a0 = latest()
    const f0 = await fleetStats(fleetProc)
    const m0 = await scrape(metricsUrl)
    const tl = performance.now()
    await sleep(LAT_SECONDS * 1000)
    const rep = await consumerReport(consumersProc)
    const f1 = await fleetStats(fleetProc)
    const internals = relayInternals(m0, await scrape(metricsUrl))
    const a1 = latest()
    const secs = (performance.now() - tl) / 1000
    const l = {
      ...rep,
      target: rate,
      rate: (f1.sent - f0.sent) / secs,
      relayRate: (a1.accepted - a0.accepted) / Math.max(0.001, a1.t - a0.t),
      internals,
    }
    latencies.push(l)
    if (rate === LAT_RATE) latency = l
    log(
      `latency @${rate}/s (${C} consumers): p50 ${rep.p50} ms, p99 ${rep.p99} ms, max ${rep.max} ms over ${rep.samples} samples; fleet sent ${l.rate.toFixed(0)}/s, relay accepted ${l.relayRate.toFixed(0)}/s; inside the relay: ${internals || 'n/a'}`,
    )
  }

  // ---- soak: a fixed rate for a long time; does memory stay flat?
  let soak: SoakResult | null = null
  let soakRssMap: Array<[string, number]> = []
  if (soaksIn(H, C)) {
    consumersProc.send({ cmd: 'reset' })
    fleetProc.send({ cmd: 'rate', eventsPerSec: SOAK_RATE } satisfies FleetCommand)
    fleetProc.send({ cmd: 'release', phase: 'all' } satisfies FleetCommand)
    const i0 = samples.length
    const a0 = latest()
    const tk = performance.now()
    let lastLog = tk
    let latencyReset = false
    while (performance.now() - tk < SOAK_MINUTES * 60_000) {
      await sleep(5000)
      // Latency is the steady state's: the first minute drains what earlier phases left queued.
      if (!latencyReset && performance.now() - tk >= 60_000) {
        latencyReset = true
        consumersProc.send({ cmd: 'reset' })
      }
      if (performance.now() - lastLog >= 60_000) {
        lastLog = performance.now()
        const s = latest()
        log(
          `soak ${((s.t - a0.t) / 60).toFixed(0)} min: RSS ${MiB(s.rss)} MiB, heap ${MiB(s.heap)} MiB, accepted ${s.accepted - a0.accepted}`,
        )
      }
    }
    soakRssMap = [
      ...rssByMapping(relay.proc.pid),
      ...relayMemoryGauges(lastProm as Prom | null).map(([k, v]): [string, number] => [`(gauge) ${k}`, v]),
    ]
    const consumer = await consumerReport(consumersProc)
    const a1 = latest()
    const ss = samples.slice(i0).filter((x) => Number.isFinite(x.rss))
    const rel = (x: Sample) => x.t - a0.t
    const early = ss.filter((x) => rel(x) >= 60 && rel(x) < 180)
    const late = ss.filter((x) => rel(x) >= SOAK_MINUTES * 60 - 180)
    const settled = ss.filter((x) => rel(x) >= 180)
    const relayRate = (a1.accepted - a0.accepted) / Math.max(0.001, a1.t - a0.t)
    soak = {
      minutes: SOAK_MINUTES,
      rate: SOAK_RATE,
      relayRate,
      consumer,
      rssEarly: medianOf(early.map((x) => x.rss)),
      rssLate: medianOf(late.map((x) => x.rss)),
      rssMax: Math.max(...ss.map((x) => x.rss)),
      heapEarly: medianOf(early.map((x) => x.heap)),
      heapLate: medianOf(late.map((x) => x.heap)),
      rssSlopePerHour: slope(settled.map((x) => [rel(x) / 3600, x.rss])),
      fleetExhausted: a1.fleetPending === 0 && relayRate < SOAK_RATE * 0.9,
    }
    if (soak.fleetExhausted) notes.push('the fleet ran out of frames during the soak: pass a larger --commits')
    log(
      `soak ${SOAK_MINUTES} min @${SOAK_RATE}/s: relay accepted ${relayRate.toFixed(0)}/s; RSS ${MiB(soak.rssEarly)} → ${MiB(soak.rssLate)} MiB (max ${MiB(soak.rssMax)}, slope ${MiB(soak.rssSlopePerHour)} MiB/h); latency p50 ${consumer.p50} / p99 ${consumer.p99} ms`,
    )
  }

  // ---- saturation
  consumersProc.send({ cmd: 'reset' })
  fleetProc.send({ cmd: 'rate', eventsPerSec: null } satisfies FleetCommand)
  fleetProc.send({ cmd: 'release', phase: 'all' } satisfies FleetCommand)
  await sleep(1000)
  const s0 = latest()
  const ts = performance.now()
  let growth = s0
  let exhausted = false
  while (performance.now() - ts < SAT_SECONDS * 1000) {
    await sleep(1000)
    const s = latest()
    if (s.accepted > growth.accepted) growth = s
    if (s.fleetPending === 0 && s.t - growth.t >= 3) {
      exhausted = true
      break
    }
  }
  const satRep = await consumerReport(consumersProc)
  const end = growth.t > s0.t ? growth : latest()
  const dt = Math.max(0.001, end.t - s0.t)
  const commits = end.accepted - s0.accepted
  const saturation = {
    commitsPerSec: commits / dt,
    seconds: dt,
    commits,
    relayCores: (end.relayCpu - s0.relayCpu) / dt,
    perRelayCpuSecond: commits / Math.max(0.001, end.relayCpu - s0.relayCpu),
    fleetCores: (end.fleetCpu - s0.fleetCpu) / dt,
    consumersCores: (end.consumersCpu - s0.consumersCpu) / dt,
    pgCores: (end.pgCpu - s0.pgCpu) / dt,
    exhausted,
    consumerMessagesPerSec: satRep.messages / ((performance.now() - ts) / 1000),
  }
  if (exhausted)
    notes.push(
      `the fleet ran out of frames during saturation (${fleet.meta.commitFrames} commits); rate measured up to the last accepted commit`,
    )
  log(
    `saturation: ${saturation.commitsPerSec.toFixed(0)} commits/s over ${dt.toFixed(1)} s; relay ${saturation.relayCores.toFixed(2)} cores (${saturation.perRelayCpuSecond.toFixed(0)} commits per relay CPU-s), fleet ${saturation.fleetCores.toFixed(2)}, consumers ${saturation.consumersCores.toFixed(2)}, postgres ${saturation.pgCores.toFixed(2)}`,
  )

  const threads = [...threadCpu(relay.proc.pid!)].sort((a, b) => b[1] - a[1]).slice(0, 8)
  const endRssMap = [
    ...rssByMapping(relay.proc.pid),
    ...relayMemoryGauges(lastProm as Prom | null).map(([k, v]): [string, number] => [`(gauge) ${k}`, v]),
  ]
  stopSampling = true
  await sampler
  const drops: Array<[string, number]> = []
  const finalProm = lastProm as Prom | null
  if (finalProm) {
    for (const [name, arr] of finalProm) {
      if (!DROP_METRIC_RE.test(name)) continue
      for (const s of arr) if (s.value > 0) drops.push([name + s.labels, s.value])
    }
  }
  const fsFinal = await fleetStats(fleetProc).catch(() => null)

  // ---- stop
  consumersProc.send({ cmd: 'stop' })
  fleetProc.send({ cmd: 'stop' } satisfies FleetCommand)
  relay.proc.kill('SIGTERM')
  const exited = await Promise.race([relay.exited, sleep(30_000).then(() => null)])
  if (!exited) {
    notes.push('relay did not stop within 30 s of SIGTERM (killed)')
    relay.proc.kill('SIGKILL')
  }
  await sleep(300)
  await pgAdmin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {})

  const rs = samples.filter((s) => Number.isFinite(s.rss))
  // about 60 points whatever the run's length
  const every = Math.max(5, Math.ceil(rs.length / 60))
  const series: Array<[number, number, number]> = rs.filter((_, i) => i % every === 0).map((s) => [Math.round(s.t), s.rss, s.heap])
  return {
    hosts: H,
    consumers: C,
    accounts,
    fleet,
    acceptedMetric: acceptedInfo.metric,
    commitsOnly: acceptedInfo.commitsOnly,
    registerSeconds,
    registerErrors,
    connectedHosts: fsFinal?.connectedHosts ?? 0,
    warmSeconds,
    warmAccepted,
    latency,
    latencies,
    soak,
    saturation,
    memory: {
      rssMax: Math.max(...rs.map((s) => s.rss)),
      rssLast: rs.length ? rs[rs.length - 1].rss : NaN,
      heapMax: Math.max(...rs.map((s) => s.heap)),
      heapLast: rs.length ? rs[rs.length - 1].heap : NaN,
      series,
    },
    threads,
    rssMaps: { soak: soakRssMap, end: endRssMap },
    drops: drops.sort((a, b) => b[1] - a[1]).slice(0, 10),
    notes,
  }
}

// ---- report
const MiB = (b: number) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(0)}` : 'n/a')
const n0 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US')
const n2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a')

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function render(results: ScenarioResult[], ref: ReferenceResult | null, env: Record<string, string>): string {
  const lines: string[] = []
  lines.push('## Load benchmark')
  lines.push('')
  lines.push(
    `Generated by \`npm run bench\` (bench/load/run.ts${argv.length ? ' ' + argv.join(' ') : ''}) on ${env.date}. Do not edit by hand: re-run the command.`,
  )
  lines.push('')
  lines.push(
    `Machine: ${env.cpus} × ${env.model}, ${env.mem} RAM, Node ${process.version}, load average at start ${env.load}. The relay, the simulated fleet, the consumers and Postgres all share these cores.`,
  )
  lines.push('')
  lines.push(
    "Setup: simulated PDS fleet on loopback (bench/load/fleet.ts): real K-256 keys (10% P-256), real did:plc genesis ops, correctly chained signed commits (creates, ~7% updates, ~5% deletes, ~3% multi-op of 2-8 ops), MST covering proofs as a PDS sends them; records ~0.2-3.5 KB, 1% 10-100 KB, 0.1% 100 KB-1 MB. Relay as its own process (`node src/main.ts serve`) on a fresh database of one embedded Postgres (default settings); hosts added with admin requestCrawl and changeLimits. Phases: warm (each account's #identity, #account, first commit), latency (fixed rate), saturation (fleet sends as fast as the relay reads, bounded by ws backpressure). " +
      (CONSUMER_CLIENT === 'raw'
        ? 'Consumers: one process of raw-socket WebSocket readers (bench/load/ws-reader.ts) that frame every message and decode a sample of ~10,000/s for seq order and latency.'
        : 'Consumers: one process of `ws` package clients that count every message and decode a sample of ~10,000/s for seq order and latency.') +
      (HARNESS_NICE > 0
        ? ` The fleet and consumers processes run at nice ${HARNESS_NICE} (they stand in for other machines; the relay and Postgres at 0).`
        : ' Every process at the same priority.'),
  )
  lines.push('')
  lines.push(
    table(
      [
        'hosts',
        'accounts',
        'consumers',
        'commits/s at saturation',
        'commits per relay CPU-s',
        'relay cores',
        'fleet cores',
        'consumer cores',
        'Postgres cores',
        ...LAT_RATES.map((rate) => `latency p50 / p99 / max @${rate}/s (ms)`),
        'relay RSS max / end (MiB)',
        'heap max (MiB)',
      ],
      results.map((r) => [
        String(r.hosts),
        n0(r.accounts),
        String(r.consumers),
        r.saturation ? n0(r.saturation.commitsPerSec) : 'n/a',
        r.saturation ? n0(r.saturation.perRelayCpuSecond) : 'n/a',
        r.saturation ? n2(r.saturation.relayCores) : 'n/a',
        r.saturation ? n2(r.saturation.fleetCores) : 'n/a',
        r.saturation ? n2(r.saturation.consumersCores) : 'n/a',
        r.saturation ? n2(r.saturation.pgCores) : 'n/a',
        ...LAT_RATES.map((rate) => {
          const l = r.latencies.find((x) => x.target === rate)
          return l ? `${n0(l.p50)} / ${n0(l.p99)} / ${n0(l.max)}` : 'n/a'
        }),
        `${MiB(r.memory.rssMax)} / ${MiB(r.memory.rssLast)}`,
        MiB(r.memory.heapMax),
      ]),
    ),
  )
  lines.push('')
  if (ref) {
    const best = Math.max(...results.map((r) => r.saturation?.commitsPerSec ?? 0))
    lines.push(
      `Reference, same frames (${ref.commits} commits, mean ${ref.meanFrameBytes} B), one thread: @atproto/sync path (Frame.fromBytes + subscribeRepos lexicon + parseCommitAuthenticated/verifyProofs, warm key cache) **${n0(ref.atprotoSyncPerSec)} commits/s**; the relay's pure validator (decode + CAR + inversion + signature + re-encode) ${n0(ref.relayValidatorPerSec)} commits/s. End-to-end relay (best scenario, ${n0(best)}/s) ÷ @atproto/sync single thread = **${(best / ref.atprotoSyncPerSec).toFixed(1)}x** (÷ an ideal 2-thread @atproto/sync: ${(best / ref.atprotoSyncPerSec / 2).toFixed(1)}x). The @atproto/sync path does less work (no MST inversion, no rev/chain checks, no persistence).`,
    )
    lines.push('')
  }
  lines.push(
    'Targets (issue 7): ≥ 15,000 validated commits/s end to end and ≥ 20x @atproto/sync; p99 < 50 ms at 2,000 ev/s with 100 consumers; RSS < 512 MiB with 3,000 hosts and 250 consumers.',
  )
  lines.push('')
  const soaks = results.filter((r) => r.soak)
  if (soaks.length) {
    lines.push(
      table(
        [
          'soak: hosts',
          'consumers',
          'minutes',
          'rate sent / accepted (ev/s)',
          'RSS min 1-3 → last 3 min (MiB)',
          'RSS max (MiB)',
          'RSS slope after min 3 (MiB/h)',
          'heap min 1-3 → last 3 min (MiB)',
          'latency p50 / p99 / max after min 1 (ms)',
          'consumer disconnects',
        ],
        soaks.map((r) => {
          const k = r.soak!
          return [
            String(r.hosts),
            String(r.consumers),
            String(k.minutes),
            `${n0(k.rate)} / ${n0(k.relayRate)}`,
            `${MiB(k.rssEarly)} → ${MiB(k.rssLate)}`,
            MiB(k.rssMax),
            MiB(k.rssSlopePerHour),
            `${MiB(k.heapEarly)} → ${MiB(k.heapLate)}`,
            `${n0(k.consumer.p50)} / ${n0(k.consumer.p99)} / ${n0(k.consumer.max)}`,
            String(k.consumer.closes),
          ]
        }),
      ),
    )
    lines.push('')
  }
  lines.push('<details><summary>Details per scenario</summary>')
  lines.push('')
  for (const r of results) {
    const m = r.fleet.meta
    lines.push(
      `**H=${r.hosts}, C=${r.consumers}**: fleet ${m.commitFrames.toLocaleString('en-US')} commits (mean frame ${m.sizes.meanCommitFrame} B, p50 ${m.sizes.p50} B, p99 ${m.sizes.p99} B, max ${m.sizes.max} B; generated in ${m.generateSeconds.toFixed(1)} s), accepted metric \`${r.acceptedMetric ?? 'none'}\`${r.commitsOnly ? ' (commits)' : ' (all kinds)'}; hosts registered in ${r.registerSeconds.toFixed(1)} s, ${r.connectedHosts} connected at the end; warm ${r.warmAccepted} accepted in ${r.warmSeconds?.toFixed(1) ?? 'n/a'} s.`,
    )
    for (const l of r.latencies)
      lines.push(
        `- latency phase @${l.target}/s: p50 / p99 / max ${n0(l.p50)} / ${n0(l.p99)} / ${n0(l.max)} ms; fleet sent ${n0(l.rate)}/s, relay accepted ${n0(l.relayRate)}/s, ${l.samples} latency samples, ${l.seqViolations} seq violations, ${l.closes} consumer disconnects (cumulative); inside the relay (since the frame was read): ${l.internals || 'n/a'}.`,
      )
    if (r.saturation)
      lines.push(
        `- saturation: ${n0(r.saturation.commits)} commits in ${r.saturation.seconds.toFixed(1)} s${r.saturation.exhausted ? ' (fleet exhausted)' : ''}; consumers received ${n0(r.saturation.consumerMessagesPerSec)} msg/s in total.`,
      )
    lines.push(`- relay CPU by thread (s): ${r.threads.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`)
    lines.push(`- RSS / heap over time (s: MiB/MiB): ${r.memory.series.map(([t, a, b]) => `${t}: ${MiB(a)}/${MiB(b)}`).join(', ')}`)
    const maps = (m: Array<[string, number]>) => m.map(([k, v]) => `${k} ${MiB(v)}`).join(', ')
    if (r.rssMaps.soak.length) lines.push(`- RSS by mapping at the end of the soak (MiB): ${maps(r.rssMaps.soak)}`)
    if (r.rssMaps.end.length) lines.push(`- RSS by mapping at the end of saturation (MiB): ${maps(r.rssMaps.end)}`)
    if (r.drops.length) lines.push(`- non-zero drop/error counters: ${r.drops.map(([k, v]) => `\`${k}\` ${v}`).join(', ')}`)
    for (const n of r.notes) lines.push(`- note: ${n}`)
    lines.push('')
  }
  lines.push('</details>')
  lines.push('')
  return lines.join('\n')
}

function writeDocs(section: string): void {
  const file = path.join(ROOT, 'docs', 'benchmarks.md')
  let text = existsSync(file)
    ? readFileSync(file, 'utf8')
    : "# Benchmarks\n\nFigures measured on the team's 2-core machine; each section is owned by the benchmark that writes it.\n\n"
  const start = text.indexOf('## Load benchmark')
  if (start < 0) {
    text = text.replace(/\s*$/, '\n\n') + section
  } else {
    const rest = text.slice(start + 3)
    const next = rest.search(/\n## /)
    const end = next < 0 ? text.length : start + 3 + next + 1
    text = text.slice(0, start) + section + (end < text.length ? '\n' + text.slice(end) : '')
  }
  writeFileSync(file, text.replace(/\n{3,}/g, '\n\n'))
  log(`wrote ${path.relative(ROOT, file)}`)
}

// ---- main
const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? 'unknown'
const env = {
  date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
  cpus: String(os.availableParallelism()),
  model: cpuModel,
  mem: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
  load: os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' '),
}
log(`scenarios: hosts ${HOSTS.join(',')} × consumers ${CONSUMERS.join(',')}; ${ACCOUNTS_TOTAL} accounts, ${COMMITS} commits per fleet`)

// Generate every fleet first (cached), so generation never overlaps a measurement.
for (const H of HOSTS)
  await ensureFleet(
    { ...DEFAULT_PARAMS, hosts: H, accountsPerHost: Math.max(1, Math.ceil(ACCOUNTS_TOTAL / H)), commits: commitsFor(H) },
    log,
  )

let connBase = process.env.DATABASE_URL
let pgPid = 0
let stopPg: (() => Promise<void>) | undefined
if (!connBase) {
  mkdirSync(path.join(ROOT, '.tmp'), { recursive: true })
  const pgLog = createLogger('error', { pretty: false })
  const epg = await startEmbeddedPostgres({
    dataDir: path.join(ROOT, '.tmp', 'bench-load-pg'),
    log: pgLog,
    database: 'postgres',
    settings: { max_connections: '300' },
  })
  const c = epg.connection
  connBase = `postgresql://${c.user}@localhost/postgres?host=${encodeURIComponent(String(c.host))}`
  pgPid = epg.pid
  stopPg = () => epg.stop()
} else if (!connBase.includes('/postgres?')) {
  connBase = connBase.replace(/\/[^/?]*(\?|$)/, '/postgres?')
}
const pgAdmin = new pg.Pool({ connectionString: connBase, max: 2 })

const results: ScenarioResult[] = []
const watchdog = setTimeout(
  () => {
    console.error('bench: global time limit reached; stopping')
    killAll()
    process.exit(1)
  },
  (HOSTS.length * CONSUMERS.length * (WARM_TIMEOUT_S + LAT_SECONDS * LAT_RATES.length + SOAK_MINUTES * 60 + SAT_SECONDS + 180) + 600) *
    1000,
)
watchdog.unref()
try {
  for (const H of HOSTS) {
    for (const C of CONSUMERS) {
      log(`=== scenario: ${H} hosts, ${C} consumers ===`)
      try {
        results.push(await runScenario(H, C, pgAdmin, connBase, pgPid))
      } catch (err) {
        log(`scenario failed: ${(err as Error).stack ?? err}`)
        killAll()
        await sleep(500)
      }
    }
  }
} finally {
  await pgAdmin.end()
  await stopPg?.()
}

let ref: ReferenceResult | null = null
if (results.length) {
  log('reference: @atproto/sync validation path on the same frames...')
  ref = await measureReference(results[0].fleet)
  log(
    `reference: @atproto/sync ${ref.atprotoSyncPerSec.toFixed(0)} commits/s (1 thread), relay validator ${ref.relayValidatorPerSec.toFixed(0)} commits/s (1 thread)`,
  )
}
const section = render(results, ref, env)
console.log('\n' + section)
if (WRITE_DOCS && results.length) writeDocs(section)
process.exit(results.length === HOSTS.length * CONSUMERS.length ? 0 : 1)
