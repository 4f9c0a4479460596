// Benchmark fixtures: real signed #commit frames built with @atproto/repo, cached on disk
// (.tmp/validator-bench/) so that runs before and after a change measure the very same frames.
// Two workloads per curve:
//   create  single-create commits on a 300-record repo (the historical headline figure)
//   mixed   a firehose-like mix on a 1,000-record repo: ~80% single create, ~7% update, ~5% delete,
//           ~8% multi-op (2-8 creates/updates/deletes)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildCommit, create, createRepo, del, makeKeypair, update, type Curve } from '../../test/unit/validator/helpers.ts'
import type { RecordWriteOp } from '@atproto/repo'

export type Workload = 'create' | 'mixed'

export interface FixtureSet {
  curve: Curve
  workload: Workload
  /** did:key of the signing key */
  didKey: string
  frames: Uint8Array[]
}

const DIR = fileURLToPath(new URL('../../.tmp/validator-bench/', import.meta.url))
// Bump when the generator changes, so stale caches are not reused.
const VERSION = 1

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function generate(curve: Curve, workload: Workload, n: number): Promise<FixtureSet> {
  const kp = await makeKeypair(curve)
  const initial = workload === 'create' ? 300 : 1000
  let repo = await createRepo(kp, `did:plc:bench${curve}${workload}0000000000000000`.slice(0, 32), initial)
  const rkeys: string[] = []
  for await (const e of repo.walkRecords()) rkeys.push(e.rkey)
  const rand = rng(curve === 'k256' ? 1 : 2)
  const pick = (): string => rkeys.splice(Math.floor(rand() * rkeys.length), 1)[0]
  const frames: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    let writes: RecordWriteOp[]
    const r = workload === 'create' ? 0 : rand()
    if (r < 0.8) writes = [create()]
    else if (r < 0.87) {
      const k = pick()
      rkeys.push(k)
      writes = [update(k, `edited ${i}`)]
    } else if (r < 0.92) writes = [del(pick())]
    else {
      writes = []
      const m = 2 + Math.floor(rand() * 7)
      for (let j = 0; j < m; j++) {
        const x = rand()
        if (x < 0.6) writes.push(create())
        else if (x < 0.8) writes.push(update(pick(), `edited ${i}.${j}`))
        else writes.push(del(pick()))
      }
      // an update's rkey stays in the pool for later picks
      for (const w of writes) if (w.action === 'update') rkeys.push(w.rkey)
    }
    for (const w of writes) if (w.action === 'create') rkeys.push(w.rkey)
    const b = await buildCommit(repo, kp, writes, { seq: i + 1 })
    frames.push(b.frame)
    repo = b.repo
  }
  return { curve, workload, didKey: kp.did(), frames }
}

/** Cached fixtures (generated on first use). */
export async function loadFixtures(curve: Curve, workload: Workload, n: number): Promise<FixtureSet> {
  const file = path.join(DIR, `v${VERSION}-${curve}-${workload}-${n}.json`)
  if (existsSync(file)) {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { didKey: string; frames: string[] }
    return { curve, workload, didKey: j.didKey, frames: j.frames.map((f) => new Uint8Array(Buffer.from(f, 'base64'))) }
  }
  const set = await generate(curve, workload, n)
  mkdirSync(DIR, { recursive: true })
  writeFileSync(file, JSON.stringify({ didKey: set.didKey, frames: set.frames.map((f) => Buffer.from(f).toString('base64')) }))
  return set
}
