// The relay's whole configuration surface. Every option is declared once here with its
// environment name, CLI flag, default and documentation; docs/configuration.md is generated from
// this table (`npm run docs:config`) and a test fails if the two drift apart.

import { API_OPTIONS } from '../api/options.ts'
import { BROADCASTER_OPTIONS } from '../broadcaster/options.ts'
import { POOL_OPTIONS } from '../pool/options.ts'
import { STORE_OPTIONS } from '../store/options.ts'
import { SUBSCRIBER_OPTIONS } from '../subscriber/options.ts'
import { VALIDATOR_OPTIONS } from '../validator/options.ts'

export type OptionKind = 'string' | 'int' | 'bool' | 'duration' | 'bytes' | 'url' | 'list' | 'enum'

export interface OptionSpec {
  /** property name on the parsed Config object */
  readonly key: string
  /** primary environment variable */
  readonly env: string
  /** further accepted environment names (compatibility) */
  readonly envAliases?: readonly string[]
  readonly kind: OptionKind
  /** default as the user would type it; undefined = unset */
  readonly default?: string
  readonly doc: string
  readonly group: string
  readonly min?: number
  readonly max?: number
  readonly choices?: readonly string[]
  /** secrets are never logged */
  readonly secret?: boolean
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const CORE_OPTIONS = [
  // --- server
  {
    key: 'port',
    env: 'RELAY_PORT',
    kind: 'int',
    default: '2470',
    min: 0,
    max: 65535,
    group: 'Server',
    doc: 'Port of the XRPC API, admin API and consumer WebSocket (`subscribeRepos`). 0 picks a free port.',
  },
  {
    key: 'probePort',
    env: 'RELAY_PROBE_PORT',
    kind: 'int',
    default: '2471',
    min: 0,
    max: 65535,
    group: 'Server',
    doc: 'Port of `/_healthz`, `/_readyz` and `/metrics`. A separate listener so probes and scrapes never queue behind consumer traffic.',
  },
  {
    key: 'listenHost',
    env: 'RELAY_LISTEN_HOST',
    kind: 'string',
    default: '0.0.0.0',
    group: 'Server',
    doc: 'Address both listeners bind to (`::` for dual-stack, `127.0.0.1` for local only).',
  },
  {
    key: 'shutdownTimeout',
    env: 'RELAY_SHUTDOWN_TIMEOUT',
    kind: 'duration',
    default: '20s',
    min: 1000,
    group: 'Server',
    doc: 'Upper bound for a graceful shutdown (flush accepted events and cursors, close consumers, stop embedded Postgres) before the process exits anyway.',
  },
  {
    key: 'logLevel',
    env: 'RELAY_LOG_LEVEL',
    kind: 'enum',
    default: 'info',
    choices: LOG_LEVELS,
    group: 'Server',
    doc: 'Log level. Logs are JSON lines on stdout, human-readable when stdout is a terminal.',
  },
  // --- storage
  {
    key: 'databaseUrl',
    env: 'DATABASE_URL',
    envAliases: ['RELAY_DATABASE_URL'],
    kind: 'url',
    group: 'Storage',
    secret: true,
    doc: 'PostgreSQL connection URL (`postgres://user:pass@host:5432/db`). When unset the relay starts an embedded PostgreSQL under `RELAY_DATA_DIR` and stops it on exit.',
  },
  {
    key: 'dataDir',
    env: 'RELAY_DATA_DIR',
    kind: 'string',
    default: './data',
    group: 'Storage',
    doc: 'Directory for the embedded PostgreSQL cluster (`<dir>/postgres`). Unused when `DATABASE_URL` is set. Must be on a persistent volume: losing it loses the event log and the relay seq.',
  },
  {
    key: 'dbPoolSize',
    env: 'RELAY_DB_POOL_SIZE',
    kind: 'int',
    default: '10',
    min: 2,
    max: 500,
    group: 'Storage',
    doc: "Maximum connections in the main thread's Postgres pool (probes use one more connection of their own).",
  },
  // --- identity and hosts
  {
    key: 'plcUrl',
    env: 'RELAY_PLC_URL',
    kind: 'url',
    default: 'https://plc.directory',
    group: 'Identity and hosts',
    doc: 'PLC directory used to resolve `did:plc` identities.',
  },
  {
    key: 'allowInsecureHosts',
    env: 'RELAY_ALLOW_INSECURE_HOSTS',
    kind: 'bool',
    default: 'false',
    group: 'Identity and hosts',
    doc: 'Development mode: allow `ws://`/`http://` upstreams, `localhost:PORT` hosts and loopback/private addresses for every outbound dial. Never enable in production: it disables SSRF protection.',
  },
  // --- admin
  {
    key: 'adminPassword',
    env: 'RELAY_ADMIN_PASSWORD',
    kind: 'string',
    group: 'Admin',
    secret: true,
    doc: 'Password of the admin API (HTTP Basic user `admin`, or `Authorization: Bearer <password>`). When unset the admin API is disabled.',
  },
] as const satisfies readonly OptionSpec[]

/** Every option, in documentation order; each stage declares its own in src/<stage>/options.ts. */
export const OPTIONS = [
  ...CORE_OPTIONS,
  ...SUBSCRIBER_OPTIONS,
  ...POOL_OPTIONS,
  ...VALIDATOR_OPTIONS,
  ...STORE_OPTIONS,
  ...BROADCASTER_OPTIONS,
  ...API_OPTIONS,
] as const

type Spec = (typeof OPTIONS)[number]
type ValueOf<S extends OptionSpec> = S['kind'] extends 'int' | 'duration' | 'bytes'
  ? number
  : S['kind'] extends 'bool'
    ? boolean
    : S['kind'] extends 'list'
      ? string[]
      : string

type Required<S extends OptionSpec> = S extends { default: string } ? ValueOf<S> : ValueOf<S> | undefined

export type Config = { readonly [S in Spec as S['key']]: Required<S> }

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
}

/** "90s", "1h30m", "250ms", or a bare number of milliseconds. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim().toLowerCase()
  if (/^\d+$/.test(t)) return Number(t)
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy
  let total = 0
  let consumed = 0
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!
    consumed = re.lastIndex
  }
  if (consumed === 0 || consumed !== t.length) return undefined
  return Math.round(total)
}

/** "32MiB", "5MB", "1048576". */
export function parseBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim())
  if (!m) return undefined
  const unit = BYTE_UNITS[m[2]!.toLowerCase()]
  if (unit === undefined) return undefined
  return Math.round(Number(m[1]) * unit)
}

function describeForm(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'int':
      return `an integer${range(spec)}`
    case 'bool':
      return 'true or false'
    case 'duration':
      return `a duration such as 500ms, 30s, 5m, 72h${spec.min !== undefined ? ` (at least ${spec.min} ms)` : ''}`
    case 'bytes':
      return `a size such as 65536, 512KiB, 32MiB${range(spec)}`
    case 'url':
      return 'an absolute URL'
    case 'list':
      return 'a comma-separated list'
    case 'enum':
      return `one of ${spec.choices!.join(', ')}`
    default:
      return 'a string'
  }
}

function range(spec: OptionSpec): string {
  if (spec.min !== undefined && spec.max !== undefined) return ` between ${spec.min} and ${spec.max}`
  if (spec.min !== undefined) return ` ≥ ${spec.min}`
  if (spec.max !== undefined) return ` ≤ ${spec.max}`
  return ''
}

function parseValue(spec: OptionSpec, raw: string, source: string): unknown {
  const fail = (): never => {
    throw new ConfigError(
      `invalid value for ${spec.env} (${flagName(spec.key)}) from ${source}: ${spec.secret ? '<redacted>' : JSON.stringify(raw)}; expected ${describeForm(spec)}`,
    )
  }
  const inRange = (n: number) =>
    Number.isFinite(n) && (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max)
  switch (spec.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) return fail()
      const n = Number(raw)
      return Number.isSafeInteger(n) && inRange(n) ? n : fail()
    }
    case 'duration': {
      const n = parseDuration(raw)
      return n !== undefined && inRange(n) ? n : fail()
    }
    case 'bytes': {
      const n = parseBytes(raw)
      return n !== undefined && inRange(n) ? n : fail()
    }
    case 'bool': {
      const t = raw.trim().toLowerCase()
      if (['true', '1', 'yes', 'on'].includes(t)) return true
      if (['false', '0', 'no', 'off'].includes(t)) return false
      return fail()
    }
    case 'url': {
      try {
        const u = new URL(raw)
        return u.protocol ? raw : fail()
      } catch {
        return fail()
      }
    }
    case 'enum':
      return spec.choices!.includes(raw.trim()) ? raw.trim() : fail()
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    default:
      return raw
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv
  argv?: readonly string[]
}

/**
 * Builds the Config from defaults, then the environment, then CLI flags (highest precedence).
 * Returns the positional arguments too (the subcommand). Throws ConfigError naming the option and
 * the accepted form for any bad value or unknown flag.
 */
export function loadConfig(opts: LoadOptions = {}): { config: Config; positionals: string[] } {
  const env = opts.env ?? process.env
  const argv = opts.argv ?? []
  const specs: readonly OptionSpec[] = OPTIONS
  const byFlag = new Map(specs.map((s) => [flagName(s.key), s]))
  const values: Record<string, unknown> = {}

  for (const spec of specs) {
    if (spec.default !== undefined) values[spec.key] = parseValue(spec, spec.default, 'default')
  }
  for (const spec of specs) {
    for (const name of [spec.env, ...(spec.envAliases ?? [])]) {
      const raw = env[name]
      if (raw !== undefined && raw !== '') {
        values[spec.key] = parseValue(spec, raw, `environment ${name}`)
        break
      }
    }
  }
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const negated = name.startsWith('--no-') ? byFlag.get('--' + name.slice(5)) : undefined
    const spec = byFlag.get(name) ?? negated
    if (!spec) throw new ConfigError(`unknown flag ${name}; run \`relay help\` for the list of options`)
    let raw: string
    if (negated && negated.kind === 'bool' && eq === -1) raw = 'false'
    else if (eq !== -1) raw = arg.slice(eq + 1)
    else if (spec.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) raw = 'true'
    else {
      const next = argv[++i]
      if (next === undefined) throw new ConfigError(`flag ${name} needs a value: ${describeForm(spec)}`)
      raw = next
    }
    values[spec.key] = parseValue(spec, raw, `flag ${name}`)
  }
  return { config: Object.freeze(values) as Config, positionals }
}

/** A log-safe view of the configuration (secrets redacted, URLs stripped of passwords). */
export function redactedConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const v = (config as Record<string, unknown>)[spec.key]
    out[spec.key] = spec.secret && v !== undefined ? '<set>' : v
  }
  return out
}

/** Markdown for docs/configuration.md; generated so the docs cannot drift from the code. */
export function renderConfigDocs(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/core/config.ts by `npm run docs:config`; do not edit by hand. -->',
    '',
    'Every option can be set with an environment variable or a command-line flag (flags win).',
    'Invalid values stop the relay at startup with a message naming the option and the accepted form.',
    'Durations accept `ms`, `s`, `m`, `h`, `d` (e.g. `72h`, `1h30m`); sizes accept `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`.',
    'Boolean flags may be given bare (`--allow-insecure-hosts`) or negated (`--no-allow-insecure-hosts`).',
    '',
  ]
  const groups = new Map<string, OptionSpec[]>()
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const g = groups.get(spec.group) ?? []
    g.push(spec)
    groups.set(spec.group, g)
  }
  for (const [group, specs] of groups) {
    lines.push(`## ${group}`, '', '| Environment | Flag | Default | Description |', '|---|---|---|---|')
    for (const s of specs) {
      const envs = [s.env, ...(s.envAliases ?? [])].map((e) => `\`${e}\``).join(', ')
      const def = s.default === undefined ? '(unset)' : `\`${s.default}\``
      const form = s.kind === 'string' ? '' : ` Accepts ${describeForm(s)}.`
      lines.push(`| ${envs} | \`${flagName(s.key)}\` | ${def} | ${s.doc.replace(/\|/g, '\\|')}${form} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}
