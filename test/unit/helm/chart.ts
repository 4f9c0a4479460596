// Renders helm/atproto-relay the way `helm template` does, with the Go-template subset in
// gotemplate.ts: values.yaml merged with overrides (null deletes a key), the built-in objects
// the chart uses (.Values, .Release, .Chart, .Template), every file under templates/ registered
// by its path (so `include (print $.Template.BasePath "/secret.yaml")` works), partials (`_*`)
// not rendered, "<no value>" removed, output split into YAML documents and parsed.

import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'
import { Renderer, type Value } from './gotemplate.ts'

export const CHART_DIR = fileURLToPath(new URL('../../../helm/atproto-relay/', import.meta.url))

export interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string; [field: string]: any }
  spec?: any
  [key: string]: any
}

export interface Rendered {
  /** every manifest, in file order */
  manifests: Manifest[]
  /** rendered text per template file (after "<no value>" removal) */
  files: Map<string, string>
  notes: string
  values: Record<string, Value>
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Helm's coalescing of user values over chart defaults: maps merge, null deletes. */
export function mergeValues(base: Record<string, Value>, over: Record<string, Value>): Record<string, Value> {
  const out: Record<string, Value> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k]
    else if (isMap(v) && isMap(out[k])) out[k] = mergeValues(out[k] as Record<string, Value>, v)
    else out[k] = v
  }
  return out
}

export function chartValues(): Record<string, Value> {
  return YAML.parse(readFileSync(CHART_DIR + 'values.yaml', 'utf8')) as Record<string, Value>
}

export function chartMeta(): Record<string, Value> {
  return YAML.parse(readFileSync(CHART_DIR + 'Chart.yaml', 'utf8')) as Record<string, Value>
}

export function renderChart(overrides: Record<string, Value> = {}, release = { name: 'relay', namespace: 'atproto' }): Rendered {
  const chart = chartMeta()
  const name = String(chart.name)
  const values = mergeValues(chartValues(), overrides)
  const renderer = new Renderer()
  const files = readdirSync(CHART_DIR + 'templates').sort()
  for (const f of files) renderer.add(`${name}/templates/${f}`, readFileSync(CHART_DIR + 'templates/' + f, 'utf8'))
  const top = (file: string) => ({
    Values: values,
    Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1n },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion, Description: chart.description },
    Template: { Name: `${name}/templates/${file}`, BasePath: `${name}/templates` },
  })
  const out = new Map<string, string>()
  const manifests: Manifest[] = []
  let notes = ''
  for (const f of files) {
    if (f.startsWith('_')) continue
    const text = renderer.render(`${name}/templates/${f}`, top(f)).replaceAll('<no value>', '')
    out.set(f, text)
    if (f === 'NOTES.txt') {
      notes = text
      continue
    }
    for (const doc of text.split(/^---\s*$/m)) {
      if (!doc.trim() || doc.split('\n').every((l) => !l.trim() || l.trim().startsWith('#'))) continue
      const parsed = YAML.parse(doc, { uniqueKeys: true, strict: true, prettyErrors: true }) as Manifest
      if (!isMap(parsed)) throw new Error(`${f}: a document is not a mapping:\n${doc}`)
      manifests.push(parsed)
    }
  }
  return { manifests, files: out, notes, values }
}

export function findAll(r: Rendered, kind: string): Manifest[] {
  return r.manifests.filter((m) => m.kind === kind)
}

export function findOne(r: Rendered, kind: string, name?: string): Manifest {
  const all = findAll(r, kind).filter((m) => name === undefined || m.metadata.name === name)
  if (all.length !== 1) throw new Error(`expected one ${kind}${name ? ` named ${name}` : ''}, found ${all.length}`)
  return all[0]!
}
