// Wires the relay together and owns its lifecycle. Start order is chosen so that probes answer
// within a second (before the database is even up), and stop order so that nothing accepted is
// lost: intake stops first, then in-flight work drains into the store, then consumers are closed,
// then the database goes.

import type { Registry } from 'prom-client'
import { ApiServer, serverHeader } from './api/http.ts'
import type { Config } from './core/config.ts'
import { redactedConfig } from './core/config.ts'
import { createPool, describeConnection, type ConnectionSettings, type Pool } from './core/db.ts'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './core/embedded-postgres.ts'
import type { Logger } from './core/log.ts'
import { createRegistry, readBuildInfo, type BuildInfo } from './core/metrics.ts'
import { latestVersion, migrate } from './core/migrate.ts'
import { ProbeServer, Readiness, databaseCheck } from './core/probes.ts'

/** A part of the relay with a lifecycle; stopped in reverse start order. */
export interface Component {
  readonly name: string
  start?(): Promise<void> | void
  stop?(): Promise<void> | void
}

export interface RelayContext {
  readonly config: Config
  readonly log: Logger
  readonly registry: Registry
  readonly readiness: Readiness
  readonly build: BuildInfo
  readonly api: ApiServer
  readonly db: Pool
  readonly dbConnection: ConnectionSettings
}

/** Builds the pipeline components once the database is ready (provided by later stages). */
export type ComponentFactory = (ctx: RelayContext) => Promise<Component[]> | Component[]

export interface RelayOptions {
  config: Config
  log: Logger
  components?: ComponentFactory
  /** extra settings for an embedded cluster (tests) */
  embeddedSettings?: Record<string, string>
}

export class Relay {
  readonly config: Config
  readonly log: Logger
  readonly build: BuildInfo
  readonly registry: Registry
  readonly readiness = new Readiness()
  readonly api: ApiServer
  readonly probes: ProbeServer
  apiPort = 0
  probePort = 0
  db?: Pool
  embedded?: EmbeddedPostgres
  private components: Component[] = []
  private dbProbe?: ReturnType<typeof databaseCheck>
  private stopping?: Promise<void>
  private starting?: Promise<void>
  private stopRequested = false
  private started = false
  private readonly opts: RelayOptions

  constructor(opts: RelayOptions) {
    this.opts = opts
    this.config = opts.config
    this.log = opts.log
    this.build = readBuildInfo()
    this.registry = createRegistry(this.build)
    this.api = new ApiServer({ version: this.build.version, log: this.log })
    this.probes = new ProbeServer({
      registry: this.registry,
      readiness: this.readiness,
      serverHeader: serverHeader(this.build.version),
      log: this.log,
    })
    this.api.route('GET', '/xrpc/_health', ({ res }) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ version: this.build.version }))
    })
    this.api.route('GET', '/', ({ res }) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(`atproto relay ${this.build.version}\n\nfirehose: /xrpc/com.atproto.sync.subscribeRepos\nhealth:   /xrpc/_health\n`)
    })
  }

  /** Starts the relay; a stop requested meanwhile waits for this to settle first. */
  start(): Promise<void> {
    this.starting ??= this.doStart()
    return this.starting
  }

  private async doStart(): Promise<void> {
    const { config, log } = this
    log.info({ build: this.build, config: redactedConfig(config) }, 'relay starting')
    // Until the database is up, readiness says so explicitly.
    let dbPhase = 'database starting'
    this.readiness.add('database', () => (this.dbProbe ? this.dbProbe() : { ok: false, reason: dbPhase }))
    // Not ready until every component runs (e.g. the firehose endpoint exists).
    this.readiness.add('started', () => (this.started ? { ok: true } : { ok: false, reason: 'relay starting' }))
    this.probePort = await this.probes.listen(config.probePort, config.listenHost)
    this.apiPort = await this.api.listen(config.port, config.listenHost)
    log.info({ port: this.apiPort, probePort: this.probePort }, 'listening')

    let conn: ConnectionSettings
    if (config.databaseUrl) {
      conn = config.databaseUrl
      log.info({ database: describeConnection(conn) }, 'using external postgres (DATABASE_URL)')
    } else {
      this.embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, log, settings: this.opts.embeddedSettings })
      conn = this.embedded.connection
    }
    this.db = createPool(conn, { max: config.dbPoolSize, log })
    dbPhase = 'applying migrations'
    await migrate(this.db, log)
    this.dbProbe = databaseCheck(conn, latestVersion(), log)

    const ctx: RelayContext = {
      config,
      log,
      registry: this.registry,
      readiness: this.readiness,
      build: this.build,
      api: this.api,
      db: this.db,
      dbConnection: conn,
    }
    const components = this.opts.components ? await this.opts.components(ctx) : []
    for (const c of components) {
      // A signal during start: leave the rest unstarted; stop() takes down what did start.
      if (this.stopRequested) return
      await c.start?.()
      this.components.push(c)
    }
    this.started = true
    log.info('relay started')
  }

  /** Graceful stop; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop()
    return this.stopping
  }

  private async doStop(): Promise<void> {
    const { log } = this
    this.stopRequested = true
    // Stopping while a component is half-way through its start would race it.
    await this.starting?.catch(() => {})
    log.info('relay stopping')
    const stopAccepting = this.api.stopAccepting()
    for (const c of [...this.components].reverse()) {
      try {
        await c.stop?.()
      } catch (err) {
        log.error({ err, component: c.name }, 'component failed to stop cleanly')
      }
    }
    this.components = []
    // Upgraded consumer sockets are owned by the broadcaster component (closed above); what
    // remains are idle keep-alive HTTP connections.
    this.api.server.closeAllConnections()
    await stopAccepting
    await this.dbProbe?.close()
    await this.db?.end().catch((err) => log.warn({ err }, 'closing the postgres pool failed'))
    await this.embedded?.stop()
    await this.probes.close()
    log.info('relay stopped')
  }
}
