import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { ConfigError, loadConfig, parseBytes, parseDuration, renderConfigDocs } from '../../../src/core/config.ts'

test('defaults match the interface contract', () => {
  const { config, positionals } = loadConfig({ env: {}, argv: [] })
  assert.equal(config.port, 2470)
  assert.equal(config.probePort, 2471)
  assert.equal(config.plcUrl, 'https://plc.directory')
  assert.equal(config.allowInsecureHosts, false)
  assert.equal(config.dataDir, './data')
  assert.equal(config.databaseUrl, undefined)
  assert.equal(config.adminPassword, undefined)
  assert.equal(config.logLevel, 'info')
  assert.deepEqual(positionals, [])
})

test('environment overrides defaults and flags override the environment', () => {
  const env = { RELAY_PORT: '3000', RELAY_ALLOW_INSECURE_HOSTS: 'true', DATABASE_URL: 'postgres://u:p@db/relay' }
  const a = loadConfig({ env, argv: [] }).config
  assert.equal(a.port, 3000)
  assert.equal(a.allowInsecureHosts, true)
  assert.equal(a.databaseUrl, 'postgres://u:p@db/relay')
  const b = loadConfig({ env, argv: ['serve', '--port', '4000', '--no-allow-insecure-hosts', '--log-level=debug'] })
  assert.equal(b.config.port, 4000)
  assert.equal(b.config.allowInsecureHosts, false)
  assert.equal(b.config.logLevel, 'debug')
  assert.deepEqual(b.positionals, ['serve'])
})

test('RELAY_DATABASE_URL is accepted as an alias of DATABASE_URL', () => {
  assert.equal(loadConfig({ env: { RELAY_DATABASE_URL: 'postgres://x/y' } }).config.databaseUrl, 'postgres://x/y')
})

test('bare boolean flag means true', () => {
  assert.equal(loadConfig({ env: {}, argv: ['--allow-insecure-hosts'] }).config.allowInsecureHosts, true)
  assert.equal(loadConfig({ env: {}, argv: ['--allow-insecure-hosts', '--port', '1'] }).config.allowInsecureHosts, true)
})

test('bad values name the option and the accepted form', () => {
  const cases: Array<[Record<string, string>, string[], RegExp]> = [
    [{ RELAY_PORT: 'abc' }, [], /RELAY_PORT \(--port\).*"abc".*integer between 0 and 65535/],
    [{ RELAY_PORT: '70000' }, [], /RELAY_PORT/],
    [{}, ['--probe-port', '-1'], /RELAY_PROBE_PORT \(--probe-port\) from flag --probe-port/],
    [{ RELAY_ALLOW_INSECURE_HOSTS: 'maybe' }, [], /RELAY_ALLOW_INSECURE_HOSTS.*true or false/],
    [{ RELAY_LOG_LEVEL: 'loud' }, [], /RELAY_LOG_LEVEL.*one of trace, debug, info/],
    [{ RELAY_PLC_URL: 'not a url' }, [], /RELAY_PLC_URL.*absolute URL/],
    [{ RELAY_SHUTDOWN_TIMEOUT: '10 parsecs' }, [], /RELAY_SHUTDOWN_TIMEOUT.*duration/],
    [{}, ['--no-such-flag'], /unknown flag --no-such-flag/],
    [{}, ['--port'], /--port needs a value/],
  ]
  for (const [env, argv, re] of cases) {
    assert.throws(
      () => loadConfig({ env, argv }),
      (err: unknown) => err instanceof ConfigError && re.test(err.message),
      `${JSON.stringify(env)} ${argv}`,
    )
  }
})

test('secrets are redacted from error messages', () => {
  assert.throws(
    () => loadConfig({ env: { DATABASE_URL: 'hunter2 not a url' } }),
    (err: Error) => !err.message.includes('hunter2'),
  )
})

test('duration and size parsing', () => {
  assert.equal(parseDuration('250ms'), 250)
  assert.equal(parseDuration('30s'), 30_000)
  assert.equal(parseDuration('1h30m'), 5_400_000)
  assert.equal(parseDuration('72h'), 259_200_000)
  assert.equal(parseDuration('1500'), 1500)
  assert.equal(parseDuration('1.5s'), 1500)
  assert.equal(parseDuration('5x'), undefined)
  assert.equal(parseDuration('s'), undefined)
  assert.equal(parseDuration('5s junk'), undefined)
  assert.equal(parseBytes('32MiB'), 32 * 1024 * 1024)
  assert.equal(parseBytes('5MB'), 5_000_000)
  assert.equal(parseBytes('4096'), 4096)
  assert.equal(parseBytes('12 parsecs'), undefined)
})

test('docs/configuration.md is generated from the config module (no drift)', () => {
  const docs = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8')
  assert.equal(docs, renderConfigDocs(), 'run `npm run docs:config` to regenerate docs/configuration.md')
})
