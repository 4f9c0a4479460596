// DID-sharded worker pool. Every frame of a DID goes to the same shard (hash(DID) % shards), and
// each shard is a single-thread piscina pool running one task at a time, so per-DID order is the
// order of submission. A task carries a batch of frames packed into one transferred ArrayBuffer:
// piscina's per-task cost (~20 µs) is paid once per batch instead of once per frame.
//
// Queues are bounded in bytes per shard. A subscriber that finds its shard full waits on
// `waitForRoom` with its socket paused — blocking backpressure, never a drop.

import { Piscina } from 'piscina'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Logger } from '../core/log.ts'
import { TurnAdmission } from '../core/turn-admission.ts'

/** What a worker receives: frames back to back in `buffer`, frame i at [offsets[2i], offsets[2i+1]). */
export interface ShardTask<Meta> {
  buffer: ArrayBuffer
  offsets: Uint32Array
  metas: Meta[]
}

/** A worker module's default export: one result per frame, in order. Must not throw per frame. */
export type ShardWorker<Meta, Result> = (task: ShardTask<Meta>) => Promise<Result[]> | Result[]

export interface ShardedPoolOptions<Meta, Result> {
  /** worker module (file URL or path) whose default export is a ShardWorker */
  filename: string
  shards: number
  /** cap on bytes queued or in flight per shard */
  maxQueueBytes: number
  maxBatchFrames: number
  maxBatchBytes: number
  workerData?: unknown
  registry: Registry
  log: Logger
  /** the result reported for a frame whose worker crashed twice */
  crashResult: (meta: Meta, err: Error) => Result
  /** young generation per worker in MiB (default YOUNG_GENERATION_MB) */
  maxYoungGenerationMb?: number
}

interface Pending<Meta, Result> {
  bytes: Uint8Array
  meta: Meta
  resolve: (r: Result) => void
  /** already retried once alone after a crash */
  retried: boolean
}

interface Waiter {
  need: number
  resolve: () => void
}

class Shard<Meta, Result> {
  readonly index: number
  readonly piscina: Piscina
  queued: Pending<Meta, Result>[] = []
  queuedBytes = 0 // queued + in flight
  inFlight = false
  /** a dispatch is scheduled for the end of this event-loop turn */
  dispatchPending = false
  /** submitters waiting for room, woken by the bytes their frames need */
  readonly waiters: TurnAdmission<Waiter>
  idleWaiters: Array<() => void> = []

  constructor(index: number, piscina: Piscina, maxQueueBytes: number) {
    this.index = index
    this.piscina = piscina
    this.waiters = new TurnAdmission<Waiter>(
      (head, reserved) => fits({ queuedBytes: this.queuedBytes + reserved }, head.need, maxQueueBytes),
      (w) => w.need,
    )
  }
}

/** FNV-1a over the DID's UTF-16 code units; stable across restarts and processes. */
export function shardOf(did: string, shards: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < did.length; i++) {
    h ^= did.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % shards
}

/** Young generation per worker (V8 splits it into two semi-spaces and a promotion area). */
export const YOUNG_GENERATION_MB = 12

export class ShardedPool<Meta, Result> {
  private readonly shards: Shard<Meta, Result>[]
  private readonly opts: ShardedPoolOptions<Meta, Result>
  private closed = false
  private readonly metrics

  constructor(opts: ShardedPoolOptions<Meta, Result>) {
    if (opts.shards < 1) throw new Error('pool needs at least one shard')
    this.opts = opts
    this.shards = Array.from({ length: opts.shards }, (_, i) => {
      const piscina = new Piscina({
        filename: opts.filename,
        minThreads: 1,
        maxThreads: 1,
        // One task at a time per worker: tasks are ordered batches, and an async task interleaving
        // with the next one would break per-DID order.
        concurrentTasksPerWorker: 1,
        // Workers do network I/O (DID resolution, getRepoStatus). With piscina's default
        // Atomics.wait between tasks the worker's event loop is frozen, so undici never sees a
        // server closing an idle keep-alive socket and the next resolution fails on it.
        atomics: 'disabled',
        idleTimeout: Number.MAX_SAFE_INTEGER,
        workerData: { shard: i, shards: opts.shards, data: opts.workerData },
        // A validation worker allocates fast and keeps little (frames die within a batch). V8 would
        // grow the young generation to its maximum anyway and keep it; a small one is scavenged
        // more often, which also frees the dead frames' ArrayBuffers sooner. The heap stays
        // unlimited otherwise (old generation: V8's default).
        resourceLimits: { maxYoungGenerationSizeMb: opts.maxYoungGenerationMb ?? YOUNG_GENERATION_MB },
      })
      piscina.on('error', (err) => opts.log.error({ err, shard: i }, 'worker pool error'))
      return new Shard<Meta, Result>(i, piscina, opts.maxQueueBytes)
    })
    const r = opts.registry
    const shards = this.shards
    this.metrics = {
      queueBytes: new Gauge({
        name: 'relay_pool_queue_bytes',
        help: 'Frame bytes queued or in flight per worker shard',
        labelNames: ['shard'],
        registers: [r],
        collect() {
          for (const s of shards) this.set({ shard: String(s.index) }, s.queuedBytes)
        },
      }),
      queueFrames: new Gauge({
        name: 'relay_pool_queue_frames',
        help: 'Frames waiting for a worker per shard (excluding the batch in flight)',
        labelNames: ['shard'],
        registers: [r],
        collect() {
          for (const s of shards) this.set({ shard: String(s.index) }, s.queued.length)
        },
      }),
      queueLimit: new Gauge({ name: 'relay_pool_queue_limit_bytes', help: 'Byte cap per worker shard', registers: [r] }),
      backpressure: new Counter({
        name: 'relay_pool_backpressure_total',
        help: 'Times a submitter had to wait for room in a full shard queue',
        labelNames: ['shard'],
        registers: [r],
      }),
      batchFrames: new Histogram({
        name: 'relay_pool_batch_frames',
        help: 'Frames per worker task',
        buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
        registers: [r],
      }),
      taskSeconds: new Histogram({
        name: 'relay_pool_task_seconds',
        help: 'Worker task duration',
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [r],
      }),
      crashes: new Counter({
        name: 'relay_pool_task_failures_total',
        help: 'Worker tasks that failed (crash or thrown error); frames are retried alone once',
        registers: [r],
      }),
    }
    this.metrics.queueLimit.set(opts.maxQueueBytes)
  }

  get shardCount(): number {
    return this.shards.length
  }

  shardFor(did: string): number {
    return shardOf(did, this.shards.length)
  }

  /** Whether a frame of `bytes` fits in the DID's shard now. */
  hasRoom(did: string, bytes: number): boolean {
    const s = this.shards[this.shardFor(did)]!
    return fits(s, bytes, this.opts.maxQueueBytes)
  }

  /** Resolves once a frame of `bytes` fits in the DID's shard (counted as backpressure). */
  waitForRoom(did: string, bytes: number): Promise<void> {
    const s = this.shards[this.shardFor(did)]!
    if (fits(s, bytes, this.opts.maxQueueBytes)) return Promise.resolve()
    this.metrics.backpressure.inc({ shard: String(s.index) })
    return new Promise((resolve) => s.waiters.push({ need: bytes, resolve }))
  }

  /**
   * Queues a frame. Callers are expected to respect hasRoom/waitForRoom; the queue accepts the
   * frame regardless (a single oversized frame must still make progress on an empty shard).
   * The bytes are copied at dispatch, so the caller's buffer may be reused afterwards only once
   * the promise resolves.
   */
  submit(did: string, bytes: Uint8Array, meta: Meta): Promise<Result> {
    if (this.closed) return Promise.reject(new Error('pool is closed'))
    const s = this.shards[this.shardFor(did)]!
    return new Promise<Result>((resolve) => {
      s.queued.push({ bytes, meta, resolve, retried: false })
      s.queuedBytes += bytes.byteLength
      // An idle worker gets its next batch at the end of this event-loop turn rather than now:
      // frames read from other sockets in the same turn then share one task. A task costs the main
      // thread ~100 µs (postMessage, waking the worker, the reply) whatever its size, and at
      // moderate rates one task per frame was the main thread's largest cost.
      if (!s.inFlight && !s.dispatchPending) {
        s.dispatchPending = true
        setImmediate(() => {
          s.dispatchPending = false
          this.pump(s)
        })
      }
    })
  }

  /**
   * Runs a control message once on every shard, after the work already queued there (cache
   * invalidation). The worker receives `{control: message}`; its answers are returned per shard.
   */
  async broadcast(message: unknown): Promise<unknown[]> {
    return Promise.all(this.shards.map((s) => s.piscina.run({ control: message })))
  }

  /** Resolves when every queued frame has been processed. */
  async drain(): Promise<void> {
    await Promise.all(
      this.shards.map((s) => (s.queued.length === 0 && !s.inFlight ? undefined : new Promise<void>((r) => s.idleWaiters.push(r)))),
    )
  }

  async close(): Promise<void> {
    await this.drain()
    this.closed = true
    await Promise.all(this.shards.map((s) => s.piscina.destroy()))
  }

  private pump(s: Shard<Meta, Result>): void {
    if (s.inFlight || s.queued.length === 0) return
    // A frame that failed inside a batch is retried alone, so one poison frame can't take its
    // batch neighbours down with it.
    // Take the batch with one splice: shifting frame by frame is O(queue) each and showed up as
    // a third of main-thread CPU with deep queues.
    let n = 0
    if (s.queued[0]!.retried) n = 1
    else {
      let bytes = 0
      while (n < s.queued.length && n < this.opts.maxBatchFrames && !s.queued[n]!.retried) {
        const size = s.queued[n]!.bytes.byteLength
        if (n > 0 && bytes + size > this.opts.maxBatchBytes) break
        bytes += size
        n++
      }
    }
    const batch = s.queued.splice(0, n)
    s.inFlight = true
    void this.runBatch(s, batch)
  }

  private async runBatch(s: Shard<Meta, Result>, batch: Pending<Meta, Result>[]): Promise<void> {
    // Copy into a buffer we own and transfer it: frames from `ws` may be views into a pooled
    // ArrayBuffer shared with other data, which must never be transferred.
    let total = 0
    for (const p of batch) total += p.bytes.byteLength
    const buffer = new ArrayBuffer(total)
    const view = new Uint8Array(buffer)
    const offsets = new Uint32Array(batch.length * 2)
    let at = 0
    for (let i = 0; i < batch.length; i++) {
      const b = batch[i]!.bytes
      view.set(b, at)
      offsets[2 * i] = at
      at += b.byteLength
      offsets[2 * i + 1] = at
    }
    const task: ShardTask<Meta> = { buffer, offsets, metas: batch.map((p) => p.meta) }
    this.metrics.batchFrames.observe(batch.length)
    const end = this.metrics.taskSeconds.startTimer()
    let results: Result[] | undefined
    let failure: Error | undefined
    try {
      results = (await s.piscina.run(task, { transferList: [buffer] })) as Result[]
      if (!Array.isArray(results) || results.length !== batch.length) {
        throw new Error(`worker returned ${Array.isArray(results) ? results.length : typeof results} results for ${batch.length} frames`)
      }
    } catch (err) {
      failure = err as Error
    }
    end()
    if (failure) {
      this.metrics.crashes.inc()
      this.opts.log.error({ err: failure, shard: s.index, frames: batch.length }, 'worker task failed')
      if (batch.length === 1 && batch[0]!.retried) {
        const p = batch[0]!
        this.finish(s, p, this.opts.crashResult(p.meta, failure))
      } else {
        // Put them back at the head, in order, to be retried one by one.
        for (const p of batch) p.retried = true
        s.queued.unshift(...batch)
      }
    } else {
      for (let i = 0; i < batch.length; i++) this.finish(s, batch[i]!, results![i]!)
    }
    s.inFlight = false
    if (s.queued.length > 0) this.pump(s)
    else for (const w of s.idleWaiters.splice(0)) w()
  }

  private finish(s: Shard<Meta, Result>, p: Pending<Meta, Result>, result: Result): void {
    s.queuedBytes -= p.bytes.byteLength
    p.resolve(result)
    s.waiters.admit()
  }
}

function fits(s: { queuedBytes: number }, bytes: number, cap: number): boolean {
  // An empty shard always admits one frame, however large, so progress is guaranteed.
  return s.queuedBytes === 0 || s.queuedBytes + bytes <= cap
}
