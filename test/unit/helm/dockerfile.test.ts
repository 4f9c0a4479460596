// Static checks of the Dockerfile (no Docker engine here), plus the parts that can run without
// one: the HEALTHCHECK one-liner against a real HTTP server, and the production no-op of the
// postinstall script.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

interface Instruction {
  cmd: string
  args: string
  stage: number
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let stage = -1
  const joined = text.replace(/\\\n/g, ' ')
  for (const raw of joined.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const m = /^(\w+)\s+(.*)$/.exec(line)
    assert.ok(m, `unparsable line: ${line}`)
    const cmd = m[1]!.toUpperCase()
    if (cmd === 'FROM') stage++
    out.push({ cmd, args: m[2]!.replace(/\s+/g, ' '), stage })
  }
  return out
}

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))
const finalStage = Math.max(...dockerfile.map((i) => i.stage))
const final = dockerfile.filter((i) => i.stage === finalStage)
const one = (cmd: string) => {
  const all = final.filter((i) => i.cmd === cmd)
  assert.equal(all.length, 1, `one ${cmd} in the final stage`)
  return all[0]!.args
}

test('base image is Node 24 slim at the version the project pins', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const arg = dockerfile.find((i) => i.cmd === 'ARG' && i.args.startsWith('NODE_VERSION='))
  assert.equal(arg?.args, `NODE_VERSION=${pkg.devDependencies.node}`)
  assert.match(pkg.devDependencies.node, /^24\./)
  const froms = dockerfile.filter((i) => i.cmd === 'FROM')
  assert.ok(froms.length >= 2, 'multi-stage')
  for (const f of froms) assert.match(f.args, /^node:\$\{NODE_VERSION\}-bookworm-slim AS \w+$/)
})

test('production dependencies only, installed from the lockfile', () => {
  const installs = dockerfile.filter((i) => i.cmd === 'RUN' && /\bnpm (ci|install)\b/.test(i.args))
  assert.equal(installs.length, 1)
  assert.match(installs[0]!.args, /npm ci --omit=dev/)
  assert.ok(installs[0]!.stage < finalStage, 'installed in a build stage')
  assert.ok(final.some((i) => i.cmd === 'COPY' && /^--from=deps \/app\/node_modules /.test(i.args)))
  assert.ok(!final.some((i) => i.cmd === 'RUN' && /\bnpm\b/.test(i.args)), 'no npm in the final stage')
})

test('the K-256 addon is built in the deps stage (install fails without it) and copied to the runtime', () => {
  const install = dockerfile.find((i) => i.cmd === 'RUN' && /\bnpm ci\b/.test(i.args))!
  const sources = dockerfile.findIndex((i) => i.cmd === 'COPY' && i.args === 'native/k256 native/k256')
  assert.ok(sources >= 0 && sources < dockerfile.indexOf(install), 'addon sources are in place before npm ci runs the postinstall build')
  assert.match(install.args, /test -f native\/k256\/build\/k256\.node/, 'a silent fallback to the slower backend would fail the image build')
  assert.ok(final.some((i) => i.cmd === 'COPY' && i.args === '--from=deps /app/native/k256/build/k256.node ./native/k256/build/k256.node'))
  const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim())
  assert.ok(ignore.includes('native/k256/build'), 'a local build is never copied into the image')
})

test('the postinstall script is a no-op without the dev-only Node package', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'relay-postinstall-'))
  try {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/postinstall.mjs')], { cwd: dir, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /nothing to rebuild/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  assert.ok(dockerfile.some((i) => i.cmd === 'COPY' && i.args === 'scripts/postinstall.mjs scripts/postinstall.mjs'))
})

test('everything the relay reads at run time is copied, and .dockerignore keeps it', () => {
  const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  for (const needed of ['package.json', 'src', 'workers', 'migrations']) {
    assert.ok(existsSync(path.join(ROOT, needed)), needed)
    assert.ok(final.some((i) => i.cmd === 'COPY' && !i.args.startsWith('--from') && i.args.split(' ').slice(0, -1).includes(needed)), `COPY ${needed}`)
    assert.ok(!ignore.includes(needed), `.dockerignore excludes ${needed}`)
  }
  for (const copy of dockerfile.filter((i) => i.cmd === 'COPY' && !i.args.startsWith('--from'))) {
    for (const src of copy.args.split(' ').slice(0, -1)) assert.ok(existsSync(path.join(ROOT, src)), `COPY source ${src}`)
  }
})

test('runtime contract: non-root, ports, data volume, env, exec-form entry point', () => {
  const user = one('USER')
  assert.ok(!/^(root|0)(:|$)/.test(user), `USER ${user}`)
  assert.deepEqual(one('EXPOSE').split(' ').sort(), ['2470', '2471'])
  assert.match(one('VOLUME'), /"\/data"/)
  const env = final.filter((i) => i.cmd === 'ENV').map((i) => i.args).join(' ')
  assert.match(env, /RELAY_DATA_DIR=\/data\b/)
  assert.match(env, /RELAY_LISTEN_HOST=0\.0\.0\.0\b/)
  assert.match(env, /NODE_OPTIONS=--max-semi-space-size=\d+\b/, 'the main thread runs with a small young generation')
  assert.match(env, /RELAY_BUILD_COMMIT=\$\{RELAY_BUILD_COMMIT\}/)
  assert.ok(final.some((i) => i.cmd === 'ARG' && /^RELAY_BUILD_COMMIT\b/.test(i.args)))
  const entry = JSON.parse(one('ENTRYPOINT')) as string[]
  const cmd = JSON.parse(one('CMD')) as string[]
  assert.deepEqual([...entry, ...cmd].slice(-3), ['node', 'src/main.ts', 'serve'])
  assert.ok(!entry.includes('npm'), 'not npm start: npm does not wait for the relay on SIGTERM')
})

test('HEALTHCHECK probes /_healthz and reflects its status', async () => {
  const hc = one('HEALTHCHECK')
  const json = /CMD (\[.*\])$/.exec(hc)
  assert.ok(json, 'exec-form HEALTHCHECK')
  const argv = JSON.parse(json[1]!) as string[]
  assert.equal(argv[0], 'node')
  let status = 200
  const paths: string[] = []
  const server = http.createServer((req, res) => {
    paths.push(req.url!)
    res.writeHead(status).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  const run = () => runNode(argv.slice(1), { RELAY_PROBE_PORT: String(port) })
  try {
    assert.equal(await run(), 0)
    status = 503
    assert.equal(await run(), 1)
    assert.deepEqual(paths, ['/_healthz', '/_healthz'])
  } finally {
    server.close()
  }
  // nothing listening: unhealthy, not a crash with another code
  assert.equal(await run(), 1)
})

function runNode(args: string[], env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: 'ignore' })
    child.on('exit', (code) => resolve(code))
  })
}
