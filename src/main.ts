// The `relay` command line: `relay serve` (default), `relay migrate`, `relay help`.
//
// The relay owns signal handling: the first SIGTERM/SIGINT starts a graceful stop bounded by
// RELAY_SHUTDOWN_TIMEOUT, a second one forces the exit (after telling an embedded Postgres to
// shut down, so no orphan is left behind).

import { ConfigError, OPTIONS, flagName, loadConfig, type Config, type OptionSpec } from './core/config.ts'
import { createPool } from './core/db.ts'
import { startEmbeddedPostgres } from './core/embedded-postgres.ts'
import { createLogger, type Logger } from './core/log.ts'
import { migrate } from './core/migrate.ts'
import { Relay } from './relay.ts'
import { pipelineComponents } from './pipeline.ts'

const USAGE = `usage: relay [serve|migrate|help] [--flag value ...]

  serve     run the relay (default)
  migrate   apply database migrations and exit
  help      print this text and the options

Options (environment variable / flag / default):
`

function help(): string {
  const rows = (OPTIONS as readonly OptionSpec[]).map((s) => `  ${s.env.padEnd(28)} ${flagName(s.key).padEnd(26)} ${s.default ?? ''}`)
  return USAGE + rows.join('\n') + '\n\nSee docs/configuration.md for descriptions.\n'
}

async function serve(config: Config, log: Logger): Promise<number> {
  const relay = new Relay({ config, log, components: pipelineComponents })
  let signals = 0
  const exitCode = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++
      if (signals === 1) {
        log.info({ signal }, 'shutting down (send the signal again to force)')
        const timer = setTimeout(() => {
          log.error({ timeoutMs: config.shutdownTimeout }, 'graceful shutdown timed out; forcing exit')
          forceExit(relay, 1)
        }, config.shutdownTimeout)
        timer.unref()
        relay.stop().then(
          () => resolve(0),
          (err) => {
            log.error({ err }, 'error during shutdown')
            resolve(1)
          },
        )
      } else {
        log.warn({ signal }, 'second signal: forcing exit')
        forceExit(relay, 130)
      }
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; stopping')
    void relay.stop().finally(() => process.exit(1))
  })
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled promise rejection; stopping')
    void relay.stop().finally(() => process.exit(1))
  })
  try {
    await relay.start()
  } catch (err) {
    log.fatal({ err }, 'relay failed to start')
    await relay.stop().catch(() => {})
    return 1
  }
  return exitCode
}

function forceExit(relay: Relay, code: number): never {
  // Fast shutdown for an embedded cluster so the next start doesn't find an orphan.
  const pid = relay.embedded?.pid
  if (pid) {
    try {
      process.kill(pid, 'SIGINT')
    } catch {}
  }
  process.exit(code)
}

async function migrateOnly(config: Config, log: Logger): Promise<number> {
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres({ dataDir: config.dataDir, log })
  const pool = createPool(config.databaseUrl ?? embedded!.connection, { max: 2, log })
  try {
    const applied = await migrate(pool, log)
    log.info({ applied }, applied.length ? 'migrations applied' : 'no pending migrations')
    return 0
  } finally {
    await pool.end()
    await embedded?.stop()
  }
}

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(help())
    return 0
  }
  let config: Config
  let positionals: string[]
  try {
    ;({ config, positionals } = loadConfig({ argv: process.argv.slice(2) }))
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`relay: configuration error: ${err.message}\n`)
      return 2
    }
    throw err
  }
  const command = positionals[0] ?? 'serve'
  if (command === 'help') {
    process.stdout.write(help())
    return 0
  }
  const log = createLogger(config.logLevel)
  switch (command) {
    case 'serve':
      return serve(config, log)
    case 'migrate':
      return migrateOnly(config, log)
    default:
      process.stderr.write(`relay: unknown command "${command}"\n\n${help()}`)
      return 2
  }
}

main().then(
  (code) => {
    // Let pino flush, then exit explicitly: lingering handles (e.g. a half-open upstream dial)
    // must not keep a stopped relay alive.
    setImmediate(() => process.exit(code))
  },
  (err) => {
    process.stderr.write(`relay: fatal: ${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
