import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { createLogger } from '../../../src/core/log.ts'
import { ShardedPool, shardOf } from '../../../src/pool/sharded-pool.ts'
import type { EchoMeta } from '../../fixtures/workers/echo.worker.ts'

type Result = { did: string; text: string; shard: number; batch: number } | { crashed: true; did: string }
const filename = new URL('../../fixtures/workers/echo.worker.ts', import.meta.url).href
const enc = new TextEncoder()

function makePool(opts: Partial<{ shards: number; maxQueueBytes: number; maxBatchFrames: number }> = {}) {
  const registry = new Registry()
  const pool = new ShardedPool<EchoMeta, Result>({
    filename,
    shards: opts.shards ?? 3,
    maxQueueBytes: opts.maxQueueBytes ?? 1 << 20,
    maxBatchFrames: opts.maxBatchFrames ?? 64,
    maxBatchBytes: 1 << 20,
    registry,
    log: createLogger('silent'),
    crashResult: (meta) => ({ crashed: true, did: meta.did }),
  })
  return { pool, registry }
}

test('shardOf is stable and spreads DIDs', () => {
  assert.equal(shardOf('did:plc:abc', 4), shardOf('did:plc:abc', 4))
  const counts = [0, 0, 0, 0]
  for (let i = 0; i < 4000; i++) counts[shardOf(`did:plc:${i.toString(36)}xyz`, 4)]!++
  for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven spread ${counts}`)
})

test('every DID stays on one worker and keeps its submission order across 3 shards', async () => {
  const { pool } = makePool({ shards: 3, maxBatchFrames: 7 })
  try {
    const dids = Array.from({ length: 40 }, (_, i) => `did:plc:order${i}`)
    const next = new Map(dids.map((d) => [d, 0]))
    const seen = new Map<string, number[]>()
    const shardsSeen = new Map<string, Set<number>>()
    const done: Promise<void>[] = []
    for (let k = 0; k < 2000; k++) {
      const did = dids[(k * 7919) % dids.length]!
      const n = next.get(did)!
      next.set(did, n + 1)
      done.push(
        pool.submit(did, enc.encode(`${did}#${n}`), { did, delayMs: k % 97 === 0 ? 3 : 0 }).then((r) => {
          assert.ok(!('crashed' in r))
          assert.equal(r.text, `${did}#${n}`)
          seen.set(did, [...(seen.get(did) ?? []), n])
          shardsSeen.set(did, (shardsSeen.get(did) ?? new Set()).add(r.shard))
        }),
      )
    }
    await Promise.all(done)
    for (const did of dids) {
      const ns = seen.get(did)!
      assert.deepEqual(
        ns,
        [...ns].sort((a, b) => a - b),
        `order broken for ${did}`,
      )
      assert.equal(ns.length, next.get(did))
      assert.equal(shardsSeen.get(did)!.size, 1)
    }
    assert.equal(new Set([...shardsSeen.values()].map((s) => [...s][0])).size, 3, 'all shards used')
  } finally {
    await pool.close()
  }
})

test('a full shard makes submitters wait (bounded bytes) and nothing is lost', async () => {
  const cap = 4096
  const { pool, registry } = makePool({ shards: 1, maxQueueBytes: cap, maxBatchFrames: 4 })
  try {
    const did = 'did:plc:slow'
    const frame = enc.encode('x'.repeat(1000))
    let maxQueued = 0
    let waits = 0
    const results: Promise<Result>[] = []
    for (let i = 0; i < 40; i++) {
      if (!pool.hasRoom(did, frame.byteLength)) {
        waits++
        await pool.waitForRoom(did, frame.byteLength)
      }
      results.push(pool.submit(did, frame, { did, delayMs: 2 }))
      const metric = await registry.getSingleMetric('relay_pool_queue_bytes')!.get()
      maxQueued = Math.max(maxQueued, metric.values[0]!.value)
    }
    const all = await Promise.all(results)
    assert.equal(all.length, 40)
    assert.ok(waits > 0, 'the submitter had to wait')
    assert.ok(maxQueued <= cap, `queue bytes ${maxQueued} exceeded the cap ${cap}`)
    const bp = await registry.getSingleMetric('relay_pool_backpressure_total')!.get()
    assert.equal(
      bp.values.reduce((a, v) => a + v.value, 0),
      waits,
    )
  } finally {
    await pool.close()
  }
})

test('a worker crash is survived: the batch is retried frame by frame, only the poison frame is lost', async () => {
  const { pool, registry } = makePool({ shards: 1, maxBatchFrames: 16 })
  try {
    const did = 'did:plc:crashy'
    // Fill a batch behind a slow frame so the poison frame shares a batch with innocent ones.
    const first = pool.submit(did, enc.encode('slow'), { did, delayMs: 30 })
    const batch = Array.from({ length: 10 }, (_, i) => pool.submit(did, enc.encode(`f${i}`), { did, crash: i === 4 }))
    const results = await Promise.all([first, ...batch])
    const crashed = results.filter((r) => 'crashed' in r)
    assert.equal(crashed.length, 1)
    assert.deepEqual(
      results.filter((r): r is Extract<Result, { text: string }> => 'text' in r).map((r) => r.text),
      ['slow', 'f0', 'f1', 'f2', 'f3', 'f5', 'f6', 'f7', 'f8', 'f9'],
    )
    const failures = await registry.getSingleMetric('relay_pool_task_failures_total')!.get()
    assert.ok(failures.values[0]!.value >= 2)
    // and the pool still works
    const after = await pool.submit(did, enc.encode('after'), { did })
    assert.ok('text' in after && after.text === 'after')
  } finally {
    await pool.close()
  }
})

test('broadcast reaches every shard after queued work; drain waits for everything', async () => {
  const { pool } = makePool({ shards: 2 })
  try {
    const pending = pool.submit('did:plc:a', enc.encode('a'), { did: 'did:plc:a', delayMs: 20 })
    await pool.broadcast({ purge: 'did:plc:a' })
    await pool.drain()
    assert.ok('text' in (await pending))
  } finally {
    await pool.close()
  }
})

test('frames submitted to an idle shard in one event-loop turn share one task', async () => {
  const { pool } = makePool({ shards: 1, maxBatchFrames: 64 })
  try {
    const turn = (n: number, tag: string) =>
      Promise.all(Array.from({ length: n }, (_, i) => pool.submit('did:plc:turn', enc.encode(`${tag}${i}`), { did: 'did:plc:turn' })))
    const first = await turn(10, 'a')
    assert.deepEqual(
      first.map((r) => ('batch' in r ? r.batch : -1)),
      Array(10).fill(10),
    )
    // more than one batch's worth: the first task takes maxBatchFrames, the rest follow in order
    const second = await turn(100, 'b')
    assert.deepEqual(
      second.map((r) => ('text' in r ? r.text : '')),
      Array.from({ length: 100 }, (_, i) => `b${i}`),
    )
    assert.equal('batch' in second[0]! ? second[0].batch : -1, 64)
  } finally {
    await pool.close()
  }
})

test('waitForRoom: waiters wake in arrival order, only as many per turn as the freed bytes take, and all of them in the end', async () => {
  const frame = new Uint8Array(100)
  const { pool } = makePool({ shards: 1, maxQueueBytes: 1000, maxBatchFrames: 64 })
  const microtasks = async () => {
    for (let i = 0; i < 10; i++) await null
  }
  try {
    const did = 'did:plc:room'
    const first = Array.from({ length: 10 }, () => pool.submit(did, frame, { did, delayMs: 20 }))
    assert.equal(pool.hasRoom(did, frame.byteLength), false)
    const woken: number[] = []
    const waits = Array.from({ length: 50 }, (_, i) => pool.waitForRoom(did, frame.byteLength).then(() => woken.push(i)))
    await microtasks()
    assert.deepEqual(woken, [])
    // the batch's 1,000 bytes come back: ten 100-byte waiters, the first ten, and no more this turn
    await Promise.all(first)
    await microtasks()
    assert.deepEqual(woken, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    // they take the room: nobody else wakes until their frames are done
    const second = woken.map(() => pool.submit(did, frame, { did, delayMs: 20 }))
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setImmediate(r))
    assert.equal(woken.length, 10)
    await Promise.all(second)
    await microtasks()
    assert.deepEqual(woken.slice(10), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    // woken waiters that submit nothing: the rest follow turn by turn without any further result
    await Promise.all(waits)
    assert.deepEqual(
      woken,
      Array.from({ length: 50 }, (_, i) => i),
    )
  } finally {
    await pool.close()
  }
})
