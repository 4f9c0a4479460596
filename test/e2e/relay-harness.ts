// Shared pieces of the end-to-end tests: the relay as a child process with its admin and query
// APIs, metrics scraping, and matching the relay's output against what the upstreams emitted.

import assert from 'node:assert/strict'
import { fromBytes } from '@atcute/cbor'
import { MemoryBlockstore, def, readCarWithRoot, verifyCommitSig } from '@atproto/repo'
import type { RawEvent } from '../helpers/pds-network.ts'
import { freePort, httpGet, spawnRelay, waitFor, type RelayProcess } from '../helpers/relay-process.ts'

export const ADMIN_PASSWORD = 'e2e-admin-password'

export interface RelayHandle {
  proc: RelayProcess
  port: number
  probePort: number
  /** http://127.0.0.1:port */
  base: string
  probeBase: string
  ws: string
}

export async function startRelay(env: Record<string, string>, ports?: { port: number; probePort: number }): Promise<RelayHandle> {
  const port = ports?.port ?? (await freePort())
  const probePort = ports?.probePort ?? (await freePort())
  const proc = spawnRelay({
    RELAY_PORT: String(port),
    RELAY_PROBE_PORT: String(probePort),
    RELAY_LISTEN_HOST: '127.0.0.1',
    RELAY_ALLOW_INSECURE_HOSTS: 'true',
    RELAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    RELAY_STARTUP_CONNECT_WINDOW: '0s',
    ...env,
  })
  const probeBase = `http://127.0.0.1:${probePort}`
  try {
    await waitFor(async () => (await httpGet(`${probeBase}/_readyz`)).status === 200 || undefined, {
      what: 'relay /_readyz 200',
      timeoutMs: 60_000,
      intervalMs: 100,
    })
    // readiness covers the database; the API answers once the pipeline has started
    await proc.waitForLog(/relay started/, 60_000)
  } catch (err) {
    proc.proc.kill('SIGKILL')
    throw new Error(`${(err as Error).message}\n--- relay output ---\n${proc.output().slice(-8000)}`)
  }
  return { proc, port, probePort, base: `http://127.0.0.1:${port}`, probeBase, ws: `ws://127.0.0.1:${port}` }
}

/** SIGTERM and wait; asserts a clean exit. */
export async function stopRelay(r: RelayHandle): Promise<void> {
  if (r.proc.proc.exitCode !== null) return
  r.proc.proc.kill('SIGTERM')
  const { code, signal } = await r.proc.exited
  assert.equal(code, 0, `relay exit code ${code} signal ${signal}\n${r.proc.output().slice(-8000)}`)
}

export const adminAuth = 'Basic ' + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')

export async function adminCall(r: RelayHandle, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${r.base}${path}`, {
    method,
    headers: { authorization: adminAuth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`)
  return text ? JSON.parse(text) : undefined
}

/** Admin requestCrawl for `localhost:PORT`, then wait until the relay's subscription is open. */
export async function addHost(r: RelayHandle, hostname: string): Promise<void> {
  await adminCall(r, 'POST', '/admin/pds/requestCrawl', { hostname })
  await waitFor(
    async () => {
      const conns: string[] = await adminCall(r, 'GET', '/admin/subs/getUpstreamConns')
      return conns.includes(hostname) || undefined
    },
    { what: `relay subscribed to ${hostname}`, timeoutMs: 15_000 },
  )
}

export async function xrpc(r: RelayHandle, nsid: string, query: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const u = new URL(`/xrpc/${nsid}`, r.base)
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
  const res = await httpGet(u.toString())
  let body: any
  try {
    body = JSON.parse(res.body)
  } catch {
    body = res.body
  }
  return { status: res.status, body }
}

/** Upstream cursor the relay has persisted for a host (-1 when none). */
export async function hostSeq(r: RelayHandle, hostname: string): Promise<number> {
  const res = await xrpc(r, 'com.atproto.sync.getHostStatus', { hostname })
  if (res.status !== 200) return -1
  return typeof res.body.seq === 'number' ? res.body.seq : -1
}

// ---- metrics --------------------------------------------------------------------------------

export type Metrics = Map<string, number>

export async function scrapeMetrics(r: RelayHandle): Promise<Metrics> {
  const res = await httpGet(`${r.probeBase}/metrics`)
  assert.equal(res.status, 200)
  const out: Metrics = new Map()
  for (const line of res.body.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const m = /^(\S+?)(\{.*\})?\s+(\S+)$/.exec(line)
    if (!m) continue
    out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]))
  }
  return out
}

/** Sum of a metric over the series whose labels include all of `labels`. */
export function metricValue(m: Metrics, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const [k, v] of m) {
    const brace = k.indexOf('{')
    const n = brace < 0 ? k : k.slice(0, brace)
    if (n !== name) continue
    const lbl = brace < 0 ? '' : k.slice(brace)
    if (Object.entries(labels).every(([lk, lv]) => lbl.includes(`${lk}="${lv}"`))) sum += v
  }
  return sum
}

// ---- matching events ------------------------------------------------------------------------

export const EVENT_TYPES = new Set(['#commit', '#sync', '#identity', '#account'])

/** Identity of an event independent of which server's seq it carries. */
export function eventKey(e: { t: string; did: string; body: Record<string, any> }): string {
  const b = e.body
  switch (e.t) {
    case '#commit':
      return `commit|${e.did}|${b.rev}|${b.commit?.$link}`
    case '#sync':
      return `sync|${e.did}|${b.rev}`
    case '#identity':
      return `identity|${e.did}|${b.time}`
    case '#account':
      return `account|${e.did}|${b.time}|${b.active}|${b.status ?? ''}`
    default:
      return `${e.t}|${e.did}|${b.time}`
  }
}

/** Body without `seq`, for comparing what the relay sent with what the upstream sent. */
export function withoutSeq(b: Record<string, any>): Record<string, any> {
  const { seq: _seq, ...rest } = b
  return rest
}

/**
 * Why the relay must drop this #commit/#sync, judged independently with @atproto/repo: the signed
 * commit must name the event's DID and rev (and CID), and verify with the key in force.
 */
export async function commitProblem(e: RawEvent, didKey: string): Promise<string | null> {
  const car = await readCarWithRoot(fromBytes(e.body.blocks))
  const bs = new MemoryBlockstore(car.blocks)
  const commit = await bs.readObj(car.root, def.commit)
  if (commit.did !== e.did) return `signed commit names ${commit.did}`
  if (commit.rev !== e.body.rev) return `event rev ${e.body.rev} but the signed commit says ${commit.rev}`
  if (e.t === '#commit' && car.root.toString() !== e.body.commit?.$link) return 'commit CID is not the CAR root'
  if (!(await verifyCommitSig(commit, didKey))) return 'signature does not verify with the current key'
  return null
}

export function assertStrictlyIncreasing(events: RawEvent[], what: string): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i]!.seq > events[i - 1]!.seq, `${what}: seq ${events[i]!.seq} after ${events[i - 1]!.seq} (index ${i})`)
  }
}

/** Keys that occur more than once. */
export function duplicates(keys: string[]): string[] {
  const seen = new Set<string>()
  const dup = new Set<string>()
  for (const k of keys) (seen.has(k) ? dup : seen).add(k)
  return [...dup]
}

/** Watches /_readyz in the background; `failures` lists every non-200 answer. */
export function watchReadiness(r: RelayHandle, intervalMs = 250): { failures: string[]; stop(): void } {
  const failures: string[] = []
  let stopped = false
  const loop = async () => {
    while (!stopped) {
      try {
        const res = await httpGet(`${r.probeBase}/_readyz`)
        if (res.status !== 200) failures.push(`${new Date().toISOString()} ${res.status} ${res.body.slice(0, 200)}`)
      } catch (err) {
        if (!stopped) failures.push(`${new Date().toISOString()} ${(err as Error).message}`)
      }
      await new Promise((res) => setTimeout(res, intervalMs))
    }
  }
  void loop()
  return {
    failures,
    stop() {
      stopped = true
    },
  }
}
