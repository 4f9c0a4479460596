// Writes the `config:` section of helm/atproto-relay/values.yaml from the option table in
// src/core/config.ts, so that every option reaches the chart (values → env) and the chart cannot
// drift from the code: test/unit/helm/chart.test.ts fails when the file differs from this output.
//
//   node scripts/helm-values.ts          rewrite the section in place
//   node scripts/helm-values.ts --check  exit 1 if it is out of date

import { readFileSync, writeFileSync } from 'node:fs'
import { OPTIONS, flagName, type OptionSpec } from '../src/core/config.ts'

export const VALUES_FILE = new URL('../helm/atproto-relay/values.yaml', import.meta.url)

const BEGIN = '# BEGIN GENERATED config'
const END = '# END GENERATED config'

/**
 * Chart defaults that differ from the relay's own: the data dir is the mount path of the chart's
 * volume (the relay's `./data` would sit on the container's ephemeral filesystem).
 */
export const CHART_DEFAULTS: Readonly<Record<string, string>> = {
  RELAY_DATA_DIR: '/data',
  RELAY_LISTEN_HOST: '0.0.0.0',
}

/** Secret options with a dedicated values block (the others go through `secretConfig`). */
export const DEDICATED_SECRETS: Readonly<Record<string, string>> = {
  DATABASE_URL: 'database.existingSecret / database.url',
  RELAY_ADMIN_PASSWORD: 'admin.existingSecret / admin.password',
}

function wrap(text: string, prefix: string, width = 100): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && prefix.length + line.length + 1 + word.length > width) {
      lines.push(prefix + line)
      line = word
    } else {
      line = line ? `${line} ${word}` : word
    }
  }
  if (line) lines.push(prefix + line)
  return lines
}

/** The generated section, markers included, ending with a newline. */
export function renderConfigSection(options: readonly OptionSpec[] = OPTIONS): string {
  const plain = options.filter((o) => !o.secret)
  const secret = options.filter((o) => o.secret)
  const out = [
    '# ' + '-'.repeat(98),
    `${BEGIN} (\`node scripts/helm-values.ts\`, from src/core/config.ts). Do not edit by`,
    '# hand: a test fails when this section and the option table drift apart.',
    '#',
    ...wrap(
      'Every relay option, keyed by its environment variable and passed to the container as that ' +
        'variable (docs/configuration.md describes each). Write values as strings: YAML numbers reach ' +
        'the templates as floats (the chart converts whole numbers back). An empty value leaves the ' +
        "option unset, so the relay's built-in default applies. Secret options are not set here: " +
        secret.map((o) => `${o.env} (${DEDICATED_SECRETS[o.env] ?? 'secretConfig'})`).join(', ') +
        '.',
      '# ',
    ),
    'config:',
  ]
  let group = ''
  for (const o of plain) {
    if (o.group !== group) {
      group = o.group
      out.push(`  ## ${group}`)
    }
    const chart = CHART_DEFAULTS[o.env]
    const note = chart !== undefined && chart !== o.default ? ` Chart default; the relay's own is ${JSON.stringify(o.default ?? '')}.` : ''
    out.push(...wrap(`${o.doc} Flag ${flagName(o.key)}.${note}`, '  # '))
    out.push(`  ${o.env}: ${JSON.stringify(chart ?? o.default ?? '')}`)
  }
  out.push(END, '')
  return out.join('\n')
}

/** values.yaml with its generated section replaced (or appended when missing). */
export function updateValues(text: string, section = renderConfigSection()): string {
  const start = text.indexOf('# ' + '-'.repeat(98) + '\n' + BEGIN)
  if (start === -1) return text.replace(/\n*$/, '\n\n') + section
  const end = text.indexOf(END, start)
  if (end === -1) throw new Error(`${VALUES_FILE.pathname}: "${BEGIN}" without "${END}"`)
  return text.slice(0, start) + section + text.slice(end + END.length).replace(/^\n/, '')
}

if (import.meta.main) {
  const current = readFileSync(VALUES_FILE, 'utf8')
  const next = updateValues(current)
  if (process.argv.includes('--check')) {
    if (next !== current) {
      process.stderr.write('helm/atproto-relay/values.yaml is out of date: run `node scripts/helm-values.ts`\n')
      process.exit(1)
    }
  } else if (next !== current) {
    writeFileSync(VALUES_FILE, next)
  }
}
