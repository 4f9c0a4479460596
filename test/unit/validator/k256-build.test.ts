// The install-time build of the K-256 addon (native/k256/build.mjs) must fail softly: a machine
// without a C compiler still installs and runs, on the fallback backend.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const BUILD = fileURLToPath(new URL('../../../native/k256/build.mjs', import.meta.url))
const OUT = fileURLToPath(new URL('../../../native/k256/build/', import.meta.url))

test('an unusable compiler fails the build with a reason and leaves the installed addon alone', () => {
  const before = statSync(OUT + 'k256.node').mtimeMs
  const r = spawnSync(process.execPath, [BUILD, '--force'], { encoding: 'utf8', env: { ...process.env, CC: '/nonexistent/cc' } })
  assert.equal(r.status, 1)
  assert.match(r.stdout, /k256: \/nonexistent\/cc failed: .*ENOENT/)
  assert.equal(statSync(OUT + 'k256.node').mtimeMs, before)
  // no temporary objects or half-written addon left behind
  assert.ok(!existsSync(OUT + `obj-${r.pid}`))
  assert.ok(!existsSync(OUT + `k256.tmp-${r.pid}.node`))
})

test('an up-to-date addon is not rebuilt', () => {
  const r = spawnSync(process.execPath, [BUILD], { encoding: 'utf8', env: { ...process.env, CC: '/nonexistent/cc' } })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /is up to date/)
})
