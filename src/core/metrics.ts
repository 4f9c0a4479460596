import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'

export interface BuildInfo {
  version: string
  commit: string
  node: string
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Version from package.json; commit from RELAY_BUILD_COMMIT (set by image builds) or .git. */
export function readBuildInfo(): BuildInfo {
  let version = '0.0.0'
  try {
    version = JSON.parse(readFileSync(ROOT + 'package.json', 'utf8')).version ?? version
  } catch {}
  return { version, commit: process.env.RELAY_BUILD_COMMIT || gitCommit() || 'unknown', node: process.version }
}

function gitCommit(): string | undefined {
  try {
    const head = readFileSync(ROOT + '.git/HEAD', 'utf8').trim()
    if (!head.startsWith('ref: ')) return head.slice(0, 12)
    const ref = head.slice(5)
    try {
      return readFileSync(ROOT + '.git/' + ref, 'utf8')
        .trim()
        .slice(0, 12)
    } catch {
      const packed = readFileSync(ROOT + '.git/packed-refs', 'utf8')
      const line = packed.split('\n').find((l) => l.endsWith(' ' + ref))
      return line?.slice(0, 12)
    }
  } catch {
    return undefined
  }
}

/**
 * One registry per relay instance (tests run several in one process). Default process metrics
 * include event-loop lag, heap, RSS and external memory; array buffers are added because frames
 * live there, outside the V8 heap, and a leak would be invisible in heap metrics.
 */
export function createRegistry(build: BuildInfo): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 })
  new Gauge({
    name: 'relay_build_info',
    help: 'Build of the running relay (always 1)',
    labelNames: ['version', 'commit', 'node'],
    registers: [registry],
  }).set({ version: build.version, commit: build.commit, node: build.node }, 1)
  new Gauge({
    name: 'relay_memory_array_buffers_bytes',
    help: 'Bytes held in ArrayBuffers and Buffers (process.memoryUsage().arrayBuffers)',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().arrayBuffers)
    },
  })
  return registry
}
