// Single-thread validator cost on real signed commits (warm key cache), split per stage, side by
// side with @atproto/repo's validation path on the same frames.
//
// Figures are CPU time (process.cpuUsage: user + system, GC threads included), not wall time, so
// other jobs on a shared machine inflate them much less; every stage is measured in `rounds`
// interleaved rounds and the median is reported. Fixtures are cached in .tmp/validator-bench/ (see
// fixtures.ts) so before/after runs use identical frames.
//
// Run: node_modules/.bin/node bench/validator/validate.bench.ts [commitsPerSet=300] [rounds=7] [msPerRound=250] [--no-atproto] [--json]
//        [--k256=libsecp256k1|native-secp256k1|node-crypto]
import { MST, MemoryBlockstore, readCarWithRoot, def, verifyCommitSig, verifyProofs } from '@atproto/repo'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeFirst } from '@atcute/cbor'
import { CID } from 'multiformats/cid'
import { decodeEvent, validateCommit } from '../../src/validator/validate.ts'
import { parseCar, getBlock, type ParsedCar } from '../../src/validator/car.ts'
import { decodeCommit, unsignedCommitBytes, type CommitObject } from '../../src/validator/commit.ts'
import { invertOps, normalizeOps, checkRecordBlocks, type NormalizedOp } from '../../src/validator/invert.ts'
import { verifySignature } from '../../src/validator/signature.ts'
import { encodeCommitFrame } from '../../src/validator/encode.ts'
import { createVerifier, k256Backend, k256NativeBackends, parseDidKey, type Verifier } from '../../src/validator/keys.ts'
import { sha256, sha256Backend } from '../../src/validator/sha256.ts'
import type { CommitEvent } from '../../src/validator/schema.ts'
import { loadFixtures, type Workload } from './fixtures.ts'

const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const N = Number(positional[0] ?? 300)
const ROUNDS = Number(positional[1] ?? 7)
const MS = Number(positional[2] ?? 250)
const ATPROTO = !process.argv.includes('--no-atproto')
const JSON_OUT = process.argv.includes('--json')
// --k256=<backend>: the K-256 backend for the main table (default: the one the relay uses)
const K256_NAME = process.argv.find((a) => a.startsWith('--k256='))?.slice(7) ?? k256Backend
const K256 = k256NativeBackends().find((b) => b.name === K256_NAME) ?? null
if (!K256 && K256_NAME !== 'node-crypto')
  throw new Error(
    `--k256=${K256_NAME}: not loaded (have ${k256NativeBackends()
      .map((b) => b.name)
      .join(', ')})`,
  )

function cpuMicros(): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** CPU µs per call of fn(i) over i in [0, count), looping until at least MS ms of CPU. */
function cpuPerOp(fn: (i: number) => void, count: number): number {
  let ops = 0
  const t0 = cpuMicros()
  let t = t0
  while (t - t0 < MS * 1000) {
    for (let i = 0; i < count; i++) fn(i)
    ops += count
    t = cpuMicros()
  }
  return (t - t0) / ops
}

async function cpuPerOpAsync(fn: (i: number) => Promise<unknown>, count: number): Promise<number> {
  let ops = 0
  const t0 = cpuMicros()
  let t = t0
  while (t - t0 < MS * 1000) {
    for (let i = 0; i < count; i++) await fn(i)
    ops += count
    t = cpuMicros()
  }
  return (t - t0) / ops
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

type Stage = 'decode' | 'car' | 'inversion' | 'signature' | 'encode' | 'full'
const STAGES: Stage[] = ['decode', 'car', 'inversion', 'signature', 'encode', 'full']
interface Row {
  curve: string
  workload: Workload
  frameBytes: number
  ops: number
  us: Record<Stage, number>
  atprotoInvertUs: number | null
  atprotoProofsUs: number | null
}
const rows: Row[] = []

// The K-256 backends that loaded, verifying the same signatures in interleaved rounds (the
// machine's speed drifts between runs). First, before the workloads below fill the heap: CPU time
// counts GC threads, and their background work would be added to both. The whole validation per
// backend is the main table run once per backend with --k256 (the tables of two libraries in one
// process compete for the same L2, so in-process A/B of the full path understates the difference).
const backendRows: { name: string; verifyUs: number }[] = []
{
  const fx = await loadFixtures('k256', 'create', N)
  const key = parseDidKey(fx.didKey)!
  const sigs: { digest: Uint8Array; sig: Uint8Array }[] = []
  for (const f of fx.frames) {
    const d = decodeEvent(f)
    if (d.kind !== 'event' || d.event.type !== '#commit') throw new Error('bad fixture')
    const car = (parseCar((d.event as CommitEvent).blocks) as { ok: true; car: ParsedCar }).car
    const commit = (decodeCommit(getBlock(car.blocks, car.root)!) as { ok: true; commit: CommitObject }).commit
    sigs.push({ digest: sha256(unsignedCommitBytes(commit)), sig: commit.sig })
  }
  const backends = k256NativeBackends().map((b) => ({ name: b.name, verify: b.prepare(key.compressed)! }))
  const verifyFn = backends.map((b) => (i: number) => {
    if (!b.verify(sigs[i].digest, sigs[i].sig)) throw new Error(`${b.name} rejected a valid signature`)
  })
  for (const fn of verifyFn) for (let i = 0; i < N; i++) fn(i)
  const samples = backends.map(() => [] as number[])
  for (let r = 0; r < ROUNDS; r++) backends.forEach((_, j) => samples[j].push(cpuPerOp(verifyFn[j], N)))
  backends.forEach((b, j) => backendRows.push({ name: b.name, verifyUs: median(samples[j]) }))
}

for (const workload of ['create', 'mixed'] as const) {
  for (const curve of ['k256', 'p256'] as const) {
    const fx = await loadFixtures(curve, workload, N)
    const frames = fx.frames
    const verifier: Verifier = createVerifier(parseDidKey(fx.didKey)!, K256)
    const events = frames.map((f) => {
      const d = decodeEvent(f)
      if (d.kind !== 'event' || d.event.type !== '#commit') throw new Error('bad fixture')
      return d.event as CommitEvent
    })
    const nowMs = Date.now()
    for (const e of events) {
      const r = validateCommit(e, null, verifier, { nowMs })
      if (!r.ok) throw new Error(`fixture invalid: ${r.reason} ${r.detail}`)
      // the encode stage copies the source frame (commit-frame.ts): it must be what the field by
      // field encoder writes
      const direct = encodeCommitFrame({ ...e, source: undefined })
      if (r.seqOffset !== direct.seqOffset || Buffer.compare(r.frame, direct.frame) !== 0) throw new Error('verbatim frame differs')
    }
    const cars = events.map((e) => (parseCar(e.blocks) as { ok: true; car: ParsedCar }).car)
    const commits = cars.map((c) => (decodeCommit(getBlock(c.blocks, c.root)!) as { ok: true; commit: CommitObject }).commit)
    const unsigned = commits.map(unsignedCommitBytes)
    const ops = events.map((e) => normalizeOps(e.ops) as NormalizedOp[])

    const fns: Record<Stage, (i: number) => void> = {
      decode: (i) => decodeEvent(frames[i]),
      car: (i) => {
        const c = parseCar(events[i].blocks)
        if (!c.ok) throw new Error('car')
        const dc = decodeCommit(getBlock(c.car.blocks, c.car.root)!)
        if (!dc.ok) throw new Error('commit')
        // (`unsigned` is cut out of the block by decodeCommit when possible)
        if ((dc as { unsigned?: Uint8Array }).unsigned === undefined) unsignedCommitBytes(dc.commit)
      },
      inversion: (i) => {
        const n = normalizeOps(events[i].ops) as NormalizedOp[]
        if (!invertOps(cars[i].blocks, commits[i].data, n, events[i].prevData!).ok) throw new Error('inversion')
        if (checkRecordBlocks(cars[i].blocks, ops[i]) !== null) throw new Error('record')
      },
      signature: (i) => {
        if (!verifySignature(verifier, unsigned[i], commits[i].sig)) throw new Error('sig')
      },
      encode: (i) => encodeCommitFrame(events[i]),
      full: (i) => {
        const d = decodeEvent(frames[i])
        if (d.kind !== 'event' || d.event.type !== '#commit' || !validateCommit(d.event, null, verifier, { nowMs }).ok)
          throw new Error('full')
      },
    }
    // warm-up: JIT every path once before measuring
    for (const s of STAGES) for (let i = 0; i < N; i++) fns[s](i)
    const samples: Record<Stage, number[]> = { decode: [], car: [], inversion: [], signature: [], encode: [], full: [] }
    for (let r = 0; r < ROUNDS; r++) for (const s of STAGES) samples[s].push(cpuPerOp(fns[s], N))

    let atprotoInvertUs: number | null = null
    let atprotoProofsUs: number | null = null
    if (ATPROTO) {
      const bodies = frames.map((f) => {
        const [, rest] = decodeFirst(f)
        return dagCbor.decode(rest) as Record<string, unknown>
      })
      const didKey = fx.didKey
      const a: number[] = []
      const b: number[] = []
      for (let r = 0; r < 3; r++) {
        a.push(
          await cpuPerOpAsync(async (i) => {
            const body = bodies[i]
            const parsed = await readCarWithRoot(body.blocks as Uint8Array)
            const bs = new MemoryBlockstore(parsed.blocks)
            const commit = await bs.readObj(parsed.root, def.commit)
            if (!(await verifyCommitSig(commit, didKey))) throw new Error('sig')
            let mst = MST.load(bs, commit.data)
            for (const op of body.ops as { action: string; path: string; prev?: CID }[]) {
              if (op.action === 'create') mst = await mst.delete(op.path)
              else if (op.action === 'update') mst = await mst.update(op.path, op.prev!)
              else mst = await mst.add(op.path, op.prev!)
            }
            const ptr = await mst.getPointer()
            if (!CID.decode(ptr.bytes).equals(body.prevData as CID)) throw new Error('inv')
          }, N),
        )
        b.push(
          await cpuPerOpAsync(async (i) => {
            const body = bodies[i]
            const claims = (body.ops as { path: string; cid: CID | null }[]).map((op) => {
              const [collection, rkey] = op.path.split('/')
              return { collection, rkey, cid: op.cid as never }
            })
            await verifyProofs(body.blocks as Uint8Array, claims, body.repo as string, didKey)
          }, N),
        )
      }
      atprotoInvertUs = median(a)
      atprotoProofsUs = median(b)
    }

    rows.push({
      curve,
      workload,
      frameBytes: frames.reduce((a, f) => a + f.length, 0) / N,
      ops: events.reduce((a, e) => a + e.ops.length, 0) / N,
      us: Object.fromEntries(STAGES.map((s) => [s, median(samples[s])])) as Record<Stage, number>,
      atprotoInvertUs,
      atprotoProofsUs,
    })
  }
}

if (JSON_OUT) {
  console.log(JSON.stringify({ rows, k256Backends: backendRows }))
} else {
  console.log(
    `K-256 backend: ${K256_NAME}; SHA-256: ${sha256Backend}; Node ${process.version}; ${N} commits per set; CPU µs per commit, median of ${ROUNDS} rounds of ≥ ${MS} ms CPU each`,
  )
  const f1 = (n: number) => n.toFixed(1)
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US')
  const header = [
    'workload',
    'curve',
    'frame B',
    'ops',
    'full µs',
    'full commits/s/core',
    'decode',
    'CAR+commit',
    'inversion',
    'signature',
    'encode',
    '@atproto/repo car+sig+invert /s',
    '@atproto/repo verifyProofs /s',
  ]
  const table = rows.map((r) => [
    r.workload,
    r.curve,
    fmt(r.frameBytes),
    r.ops.toFixed(2),
    f1(r.us.full),
    fmt(1e6 / r.us.full),
    f1(r.us.decode),
    f1(r.us.car),
    f1(r.us.inversion),
    f1(r.us.signature),
    f1(r.us.encode),
    r.atprotoInvertUs === null ? '-' : fmt(1e6 / r.atprotoInvertUs),
    r.atprotoProofsUs === null ? '-' : fmt(1e6 / r.atprotoProofsUs),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)))
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |'
  console.log(line(header))
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
  for (const r of table) console.log(line(r))
  console.log('')
  console.log('K-256 verify alone (digest precomputed), same signatures, interleaved rounds:')
  console.log('| backend | µs per verify | verifies/s/core |')
  console.log('|---|---|---|')
  for (const b of backendRows)
    console.log(`| ${b.name}${b.name === K256_NAME ? ' (main table)' : ''} | ${f1(b.verifyUs)} | ${fmt(1e6 / b.verifyUs)} |`)
}
