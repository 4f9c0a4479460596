// A small renderer for the subset of Go text/template + Sprig that helm/atproto-relay uses, so the
// chart can be rendered and checked without a helm binary (none is installable here).
//
// Scope, deliberately narrow: text, comments, trim markers; if / else if / else, range (lists and
// maps, sorted keys, with one or two variables), with / else, define, template, variables (:= and
// =); pipelines, parenthesised pipelines, field chains on `.`, `$`, variables and parentheses;
// string, number, bool and nil literals; and the functions in FUNCS below. Anything else is an
// error, which keeps the chart inside what this file checks.
//
// Go semantics it keeps because they cause real `helm template` failures: a field lookup on nil
// fails ("nil pointer evaluating interface {}.x"); values from YAML are float64 while template
// integer literals and `int` results are ints, and comparing the two fails ("incompatible types
// for comparison"); float64 prints with %v (1e+06); missing map keys are nil and print as
// "<no value>", which Helm then removes. Stricter than Go: printing a map or a list is an error
// (the chart always goes through toYaml).

import { createHash } from 'node:crypto'
import YAML from 'yaml'

export class TemplateError extends Error {
  override name = 'TemplateError'
}

/** Raised by `fail` and `required`: Helm's "execution error" (a refused values combination). */
export class TemplateFailure extends TemplateError {
  override name = 'TemplateFailure'
}

// ---------------------------------------------------------------- values

// Go kinds: string, float64 (JS number: YAML numbers), int (JS bigint: literals, `int`), bool,
// map (plain object), slice (array), invalid (null / undefined).
export type Value = unknown

function isMap(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isNil(v: Value): v is null | undefined {
  return v === null || v === undefined
}

export function kindOf(v: Value): string {
  if (isNil(v)) return 'invalid'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'number') return 'float64'
  if (typeof v === 'bigint') return 'int'
  if (typeof v === 'boolean') return 'bool'
  if (Array.isArray(v)) return 'slice'
  if (isMap(v)) return 'map'
  throw new TemplateError(`unsupported value of JS type ${typeof v}`)
}

function truthy(v: Value): boolean {
  if (isNil(v)) return false
  if (typeof v === 'string') return v.length > 0
  if (typeof v === 'number') return v !== 0
  if (typeof v === 'bigint') return v !== 0n
  if (typeof v === 'boolean') return v
  if (Array.isArray(v)) return v.length > 0
  if (isMap(v)) return Object.keys(v).length > 0
  return true
}

/** Go's %v for a float64: strconv 'g' with the shortest digits, exponent form when exp < -4 or >= 6. */
export function goFloat(n: number): string {
  if (Number.isNaN(n)) return 'NaN'
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf'
  if (n === 0) return Object.is(n, -0) ? '-0' : '0'
  const [mant, expStr] = n.toExponential().split('e') as [string, string]
  const exp = Number(expStr)
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
  return String(n)
}

/** Sprig's strval / Go's %v for the kinds the chart prints. */
function str(v: Value, what = 'value'): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number') return goFloat(v)
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v)
  if (isNil(v)) return '<nil>'
  throw new TemplateError(`cannot print a ${kindOf(v)} as a ${what}; use toYaml`)
}

/** Go's %q (for the characters a chart's values plausibly contain). */
function goQuote(s: string): string {
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (ch === '"' || ch === '\\') out += '\\' + ch
    else if (ch === '\n') out += '\\n'
    else if (ch === '\t') out += '\\t'
    else if (ch === '\r') out += '\\r'
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0')
    else out += ch
  }
  return out + '"'
}

function toInt(v: Value): bigint {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number') return BigInt(Math.trunc(v))
  if (typeof v === 'boolean') return v ? 1n : 0n
  if (typeof v === 'string') {
    // cast.ToInt: strconv.ParseInt(s, 0, 0); unparsable strings become 0
    const t = v.trim().replace(/\.0*$/, '')
    const m = /^([+-]?)(0x[0-9a-f]+|0o[0-7]+|0b[01]+|0[0-7]*|[1-9]\d*)$/i.exec(t)
    if (!m) return 0n
    const body = m[2]!
    const n = /^0[0-7]+$/.test(body) ? BigInt('0o' + body.slice(1)) : BigInt(body)
    return m[1] === '-' ? -n : n
  }
  return 0n
}

function compare(a: Value, b: Value, op: string): number {
  const ka = kindOf(a)
  const kb = kindOf(b)
  if (ka !== kb) throw new TemplateError(`${op}: incompatible types for comparison (${ka} and ${kb})`)
  if (ka === 'map' || ka === 'slice' || ka === 'invalid') throw new TemplateError(`${op}: non-comparable type ${ka}`)
  if (ka === 'bool' && op !== 'eq' && op !== 'ne') throw new TemplateError(`${op}: invalid type for comparison`)
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0
}

function lengthOf(v: Value): bigint {
  if (typeof v === 'string') return BigInt(Buffer.byteLength(v))
  if (Array.isArray(v)) return BigInt(v.length)
  if (isMap(v)) return BigInt(Object.keys(v).length)
  throw new TemplateError(`len of type ${kindOf(v)}`)
}

function indentText(n: Value, s: Value): string {
  const pad = ' '.repeat(Number(toInt(n)))
  return pad + str(s).replaceAll('\n', '\n' + pad)
}

/** Sprig's printf subset: %s %d %v %q %%. */
function printf(format: string, args: Value[]): string {
  let i = 0
  return format.replace(/%([%sdvq])/g, (_, verb: string) => {
    if (verb === '%') return '%'
    if (i >= args.length) return `%!${verb}(MISSING)`
    const a = args[i++]
    if (verb === 'q') return goQuote(str(a))
    if (verb === 'd') {
      if (typeof a !== 'bigint') return `%!d(${kindOf(a)}=${str(a)})`
      return a.toString()
    }
    return str(a)
  })
}

/** Helm's toYaml: sigs.k8s.io/yaml output (sorted keys, sequences not indented), trailing newline trimmed. */
export function toYaml(v: Value): string {
  const plain = JSON.parse(JSON.stringify(v ?? null, (_k, x) => (typeof x === 'bigint' ? Number(x) : x)))
  return YAML.stringify(plain, { sortMapEntries: true, indentSeq: false, lineWidth: 0 }).replace(/\n$/, '')
}

// ---------------------------------------------------------------- lexer and parser

type Term =
  | { t: 'dot'; fields: string[] }
  | { t: 'var'; name: string; fields: string[] }
  | { t: 'lit'; value: Value }
  | { t: 'ident'; name: string }
  | { t: 'paren'; pipe: Pipe; fields: string[] }

interface Command {
  terms: Term[]
}

interface Pipe {
  decl: string[]
  assign: boolean // `=` rather than `:=`
  cmds: Command[]
}

type Node =
  | { n: 'text'; text: string }
  | { n: 'action'; pipe: Pipe; pos: string }
  | { n: 'if'; branches: Array<{ pipe: Pipe; body: Node[] }>; else?: Node[]; pos: string }
  | { n: 'range'; pipe: Pipe; body: Node[]; else?: Node[]; pos: string }
  | { n: 'with'; pipe: Pipe; body: Node[]; else?: Node[]; pos: string }
  | { n: 'template'; name: string; pipe?: Pipe; pos: string }

interface Tok {
  // chain: a field chain directly after `)`, as in `(index .list 0).name`
  k: 'field' | 'chain' | 'var' | 'str' | 'num' | 'ident' | '(' | ')' | '|' | ':=' | '=' | ','
  v: string
}

function lexAction(src: string, pos: string): Tok[] {
  const toks: Tok[] = []
  let i = 0
  const fieldChain = (start: number): [string, number] => {
    let j = start
    while (j < src.length && src[j] === '.' && /[A-Za-z_]/.test(src[j + 1] ?? '')) {
      j++
      while (j < src.length && /\w/.test(src[j]!)) j++
    }
    return [src.slice(start, j), j]
  }
  while (i < src.length) {
    const c = src[i]!
    if (/\s/.test(c)) {
      i++
    } else if (c === '"') {
      let j = i + 1
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1
      if (j >= src.length) throw new TemplateError(`${pos}: unterminated string`)
      toks.push({ k: 'str', v: JSON.parse(src.slice(i, j + 1)) as string })
      i = j + 1
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1)
      if (j === -1) throw new TemplateError(`${pos}: unterminated raw string`)
      toks.push({ k: 'str', v: src.slice(i + 1, j) })
      i = j + 1
    } else if (c === '.') {
      const [chain, j] = fieldChain(i)
      toks.push({ k: 'field', v: chain === '' ? '.' : chain })
      i = chain === '' ? i + 1 : j
    } else if (c === '$') {
      let j = i + 1
      while (j < src.length && /\w/.test(src[j]!)) j++
      const [chain, k] = fieldChain(j)
      toks.push({ k: 'var', v: src.slice(i, j) + chain })
      i = k
    } else if (/\d/.test(c) || (/[-+]/.test(c) && /[\d.]/.test(src[i + 1] ?? ''))) {
      const m = /^[-+]?(0x[\da-f]+|\d+(\.\d+)?(e[-+]?\d+)?)/i.exec(src.slice(i))
      if (!m) throw new TemplateError(`${pos}: bad number`)
      toks.push({ k: 'num', v: m[0] })
      i += m[0].length
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i
      while (j < src.length && /\w/.test(src[j]!)) j++
      toks.push({ k: 'ident', v: src.slice(i, j) })
      i = j
    } else if (c === ':' && src[i + 1] === '=') {
      toks.push({ k: ':=', v: ':=' })
      i += 2
    } else if (c === '(' || c === ')' || c === '|' || c === '=' || c === ',') {
      toks.push({ k: c, v: c })
      i++
      if (c === ')' && src[i] === '.') {
        const [chain, j] = fieldChain(i)
        if (chain) {
          toks.push({ k: 'chain', v: chain })
          i = j
        }
      }
    } else {
      throw new TemplateError(`${pos}: unexpected character ${JSON.stringify(c)} in action`)
    }
  }
  return toks
}

class PipeParser {
  private i = 0
  private readonly toks: Tok[]
  private readonly pos: string
  constructor(toks: Tok[], pos: string) {
    this.toks = toks
    this.pos = pos
  }

  done(): boolean {
    return this.i >= this.toks.length
  }

  parsePipe(allowDecl: boolean): Pipe {
    const decl: string[] = []
    let assign = false
    if (allowDecl && this.toks[this.i]?.k === 'var') {
      // `$x :=`, `$x =`, `$i, $v :=`
      const save = this.i
      const names = [this.toks[this.i]!.v]
      let j = this.i + 1
      if (this.toks[j]?.k === ',' && this.toks[j + 1]?.k === 'var') {
        names.push(this.toks[j + 1]!.v)
        j += 2
      }
      const op = this.toks[j]?.k
      if (op === ':=' || op === '=') {
        if (names.some((n) => n.includes('.'))) throw new TemplateError(`${this.pos}: cannot declare a field`)
        decl.push(...names)
        assign = op === '='
        this.i = j + 1
      } else {
        this.i = save
      }
    }
    const cmds: Command[] = []
    for (;;) {
      const terms: Term[] = []
      while (!this.done() && this.toks[this.i]!.k !== '|' && this.toks[this.i]!.k !== ')') terms.push(this.parseTerm())
      if (!terms.length) throw new TemplateError(`${this.pos}: missing command in pipeline`)
      cmds.push({ terms })
      if (this.toks[this.i]?.k === '|') this.i++
      else break
    }
    return { decl, assign, cmds }
  }

  private parseTerm(): Term {
    const tok = this.toks[this.i++]!
    const fields = (chain: string) => chain.split('.').filter(Boolean)
    switch (tok.k) {
      case 'field':
        return { t: 'dot', fields: tok.v === '.' ? [] : fields(tok.v) }
      case 'var': {
        const [name, ...rest] = tok.v.split('.')
        return { t: 'var', name: name!, fields: rest }
      }
      case 'str':
        return { t: 'lit', value: tok.v }
      case 'num':
        return { t: 'lit', value: /[.e]/i.test(tok.v) && !/^[-+]?0x/i.test(tok.v) ? Number(tok.v) : BigInt(tok.v) }
      case 'ident':
        if (tok.v === 'true' || tok.v === 'false') return { t: 'lit', value: tok.v === 'true' }
        if (tok.v === 'nil') return { t: 'lit', value: null }
        return { t: 'ident', name: tok.v }
      case '(': {
        const pipe = this.parsePipe(false)
        if (this.toks[this.i++]?.k !== ')') throw new TemplateError(`${this.pos}: unclosed parenthesis`)
        let f: string[] = []
        if (this.toks[this.i]?.k === 'chain') f = fields(this.toks[this.i++]!.v)
        return { t: 'paren', pipe, fields: f }
      }
      default:
        throw new TemplateError(`${this.pos}: unexpected ${JSON.stringify(tok.v)}`)
    }
  }
}

interface RawItem {
  kind: 'text' | 'action'
  text: string
  line: number
}

/** Splits a source into text and action items, applying the {{- and -}} trim markers. */
function scan(src: string, name: string): RawItem[] {
  const items: RawItem[] = []
  let i = 0
  let trimNext = false
  const lineAt = (k: number) => src.slice(0, k).split('\n').length
  while (i < src.length) {
    const open = src.indexOf('{{', i)
    let text = src.slice(i, open === -1 ? src.length : open)
    if (trimNext) text = text.replace(/^\s+/, '')
    trimNext = false
    if (open === -1) {
      if (text) items.push({ kind: 'text', text, line: lineAt(i) })
      break
    }
    let j = open + 2
    if (src[j] === '-' && /\s/.test(src[j + 1] ?? '')) {
      text = text.replace(/\s+$/, '')
      j += 2
    }
    if (text) items.push({ kind: 'text', text, line: lineAt(i) })
    // find the closing delimiter outside string literals
    let k = j
    let close = -1
    while (k < src.length) {
      const c = src[k]!
      if (c === '"') {
        k++
        while (k < src.length && src[k] !== '"') k += src[k] === '\\' ? 2 : 1
        k++
      } else if (c === '`') {
        k = src.indexOf('`', k + 1) + 1
        if (k === 0) break
      } else if (src.startsWith('/*', k)) {
        const end = src.indexOf('*/', k + 2)
        if (end === -1) break
        k = end + 2
      } else if (src.startsWith('}}', k)) {
        close = k
        break
      } else {
        k++
      }
    }
    if (close === -1) throw new TemplateError(`${name}:${lineAt(open)}: unclosed action`)
    let body = src.slice(j, close)
    if (/\s-$/.test(body)) {
      body = body.slice(0, -2)
      trimNext = true
    }
    const trimmed = body.trim()
    if (!(trimmed.startsWith('/*') && trimmed.endsWith('*/'))) items.push({ kind: 'action', text: trimmed, line: lineAt(open) })
    i = close + 2
  }
  return items
}

/** Parses a template file; `define`d templates go into `defines`. */
export function parseTemplate(src: string, name: string, defines: Map<string, Node[]>): Node[] {
  const items = scan(src, name)
  let idx = 0
  const parseList = (stops: string[]): { nodes: Node[]; stop: string; stopItem?: RawItem; rest?: Tok[] } => {
    const nodes: Node[] = []
    while (idx < items.length) {
      const it = items[idx++]!
      const pos = `${name}:${it.line}`
      if (it.kind === 'text') {
        nodes.push({ n: 'text', text: it.text })
        continue
      }
      const toks = lexAction(it.text, pos)
      const head = toks[0]?.k === 'ident' ? toks[0].v : ''
      if (head === 'end' || head === 'else') {
        if (!stops.includes(head)) throw new TemplateError(`${pos}: unexpected {{${head}}}`)
        return { nodes, stop: head, stopItem: it, rest: toks.slice(1) }
      }
      const pipeOf = (from: number, allowDecl: boolean): Pipe => {
        const p = new PipeParser(toks.slice(from), pos)
        const pipe = p.parsePipe(allowDecl)
        if (!p.done()) throw new TemplateError(`${pos}: unexpected tokens after pipeline`)
        return pipe
      }
      if (head === 'if' || head === 'with' || head === 'range') {
        const control = (first: Pipe) => {
          const branches = [{ pipe: first, body: [] as Node[] }]
          let elseBody: Node[] | undefined
          for (;;) {
            const r = parseList(['end', 'else'])
            if (elseBody) elseBody = r.nodes
            else branches[branches.length - 1]!.body = r.nodes
            if (r.stop === 'end') break
            if (elseBody) throw new TemplateError(`${pos}: {{else}} after {{else}}`)
            const rest = r.rest!
            if (rest.length && rest[0]!.k === 'ident' && rest[0]!.v === 'if' && head === 'if') {
              const p = new PipeParser(rest.slice(1), pos)
              branches.push({ pipe: p.parsePipe(true), body: [] })
            } else if (rest.length) {
              throw new TemplateError(`${pos}: unsupported {{else ${rest[0]!.v}}}`)
            } else {
              elseBody = []
            }
          }
          return { branches, elseBody }
        }
        const { branches, elseBody } = control(pipeOf(1, true))
        if (head === 'if') nodes.push({ n: 'if', branches, else: elseBody, pos })
        else nodes.push({ n: head, pipe: branches[0]!.pipe, body: branches[0]!.body, else: elseBody, pos })
      } else if (head === 'define') {
        if (toks[1]?.k !== 'str' || toks.length !== 2) throw new TemplateError(`${pos}: define needs a string name`)
        const r = parseList(['end'])
        defines.set(toks[1].v, r.nodes)
      } else if (head === 'template') {
        if (toks[1]?.k !== 'str') throw new TemplateError(`${pos}: template needs a string name`)
        nodes.push({ n: 'template', name: toks[1].v, pipe: toks.length > 2 ? pipeOf(2, false) : undefined, pos })
      } else if (head === 'block' || head === 'break' || head === 'continue') {
        throw new TemplateError(`${pos}: {{${head}}} is outside the supported subset`)
      } else {
        nodes.push({ n: 'action', pipe: pipeOf(0, true), pos })
      }
    }
    if (stops.length) throw new TemplateError(`${name}: missing {{end}}`)
    return { nodes, stop: '' }
  }
  return parseList([]).nodes
}

// ---------------------------------------------------------------- execution

class Scope {
  private readonly frames: Array<Map<string, Value>> = [new Map()]
  push(): void {
    this.frames.push(new Map())
  }
  pop(): void {
    this.frames.pop()
  }
  declare(name: string, v: Value): void {
    this.frames[this.frames.length - 1]!.set(name, v)
  }
  assign(name: string, v: Value, pos: string): void {
    for (let i = this.frames.length - 1; i >= 0; i--) {
      if (this.frames[i]!.has(name)) {
        this.frames[i]!.set(name, v)
        return
      }
    }
    throw new TemplateError(`${pos}: undefined variable ${name}`)
  }
  get(name: string, pos: string): Value {
    for (let i = this.frames.length - 1; i >= 0; i--) if (this.frames[i]!.has(name)) return this.frames[i]!.get(name)
    throw new TemplateError(`${pos}: undefined variable ${name}`)
  }
}

type Fn = (this: Renderer, args: Value[], pos: string) => Value

const FUNCS: Record<string, Fn> = {
  // Go builtins (and / or are special-cased: lazy)
  not: (a) => !truthy(a[0]),
  eq: (a, pos) => {
    if (a.length < 2) throw new TemplateError(`${pos}: eq needs two arguments`)
    return a.slice(1).some((b) => compare(a[0], b, 'eq') === 0)
  },
  ne: (a) => compare(a[0], a[1], 'ne') !== 0,
  lt: (a) => compare(a[0], a[1], 'lt') < 0,
  le: (a) => compare(a[0], a[1], 'le') <= 0,
  gt: (a) => compare(a[0], a[1], 'gt') > 0,
  ge: (a) => compare(a[0], a[1], 'ge') >= 0,
  len: (a) => lengthOf(a[0]),
  print: (a) => a.map((x) => str(x)).join(''),
  printf: (a) => printf(str(a[0]), a.slice(1)),
  // Sprig
  default: (a) => (a.length < 2 || !truthy(a[1]) ? a[0] : a[1]),
  empty: (a) => !truthy(a[0]),
  required: (a, pos) => {
    if (isNil(a[1]) || a[1] === '') throw new TemplateFailure(`${pos}: ${str(a[0])}`)
    return a[1]
  },
  fail: (a, pos) => {
    throw new TemplateFailure(`${pos}: ${str(a[0])}`)
  },
  quote: (a: Value[]) => a.filter((x) => !isNil(x)).map((x) => goQuote(str(x))).join(' '),
  toString: (a: Value[]) => str(a[0]),
  toYaml: (a) => toYaml(a[0]),
  int: (a) => toInt(a[0]),
  int64: (a) => toInt(a[0]),
  indent: (a) => indentText(a[0], a[1]),
  nindent: (a) => '\n' + indentText(a[0], a[1]),
  trunc: (a) => {
    const n = Number(toInt(a[0]))
    const s = str(a[1])
    return n >= 0 ? s.slice(0, n) : s.slice(Math.max(0, s.length + n))
  },
  trimSuffix: (a) => (str(a[1]).endsWith(str(a[0])) && str(a[0]) ? str(a[1]).slice(0, -str(a[0]).length) : str(a[1])),
  replace: (a) => str(a[2]).replaceAll(str(a[0]), str(a[1])),
  contains: (a) => str(a[1]).includes(str(a[0])),
  hasPrefix: (a) => str(a[1]).startsWith(str(a[0])),
  b64enc: (a) => Buffer.from(str(a[0])).toString('base64'),
  sha256sum: (a) => createHash('sha256').update(str(a[0])).digest('hex'),
  hasKey: (a, pos) => {
    if (!isMap(a[0])) throw new TemplateError(`${pos}: hasKey on a ${kindOf(a[0])}`)
    return Object.hasOwn(a[0], str(a[1]))
  },
  kindIs: (a) => kindOf(a[1]) === str(a[0]),
  list: (a) => [...a],
  // Helm
  include: function (this: Renderer, a: Value[], pos: string) {
    return this.include(str(a[0]), a[1], pos)
  },
}

export const SUPPORTED_FUNCTIONS = ['and', 'or', ...Object.keys(FUNCS)]

export class Renderer {
  readonly defines = new Map<string, Node[]>()
  private depth = 0

  /** Parses a file and registers it (and its defines) under `name`. */
  add(name: string, src: string): void {
    this.defines.set(name, parseTemplate(src, name, this.defines))
  }

  render(name: string, data: Value): string {
    return this.include(name, data, name)
  }

  include(name: string, data: Value, pos: string): string {
    const body = this.defines.get(name)
    if (!body) throw new TemplateError(`${pos}: no template "${name}"`)
    if (++this.depth > 100) throw new TemplateError(`${pos}: template recursion too deep`)
    try {
      const scope = new Scope()
      scope.declare('$', data)
      return this.exec(body, data, scope)
    } finally {
      this.depth--
    }
  }

  private exec(nodes: Node[], dot: Value, scope: Scope): string {
    let out = ''
    for (const node of nodes) {
      switch (node.n) {
        case 'text':
          out += node.text
          break
        case 'action': {
          const v = this.pipe(node.pipe, dot, scope, node.pos)
          if (!node.pipe.decl.length) out += isNil(v) ? '<no value>' : str(v, 'template output')
          break
        }
        case 'if': {
          scope.push()
          let done = false
          for (const b of node.branches) {
            if (truthy(this.pipe(b.pipe, dot, scope, node.pos))) {
              out += this.exec(b.body, dot, scope)
              done = true
              break
            }
          }
          if (!done && node.else) out += this.exec(node.else, dot, scope)
          scope.pop()
          break
        }
        case 'with': {
          scope.push()
          const v = this.pipe(node.pipe, dot, scope, node.pos)
          if (truthy(v)) out += this.exec(node.body, v, scope)
          else if (node.else) out += this.exec(node.else, dot, scope)
          scope.pop()
          break
        }
        case 'range': {
          scope.push()
          const decl = node.pipe.decl
          const v = this.pipe({ ...node.pipe, decl: [] }, dot, scope, node.pos)
          let entries: Array<[Value, Value]>
          if (Array.isArray(v)) entries = v.map((x, i) => [BigInt(i), x])
          else if (isMap(v)) entries = Object.keys(v).sort().map((k) => [k, v[k]])
          else if (isNil(v)) entries = []
          else throw new TemplateError(`${node.pos}: range can't iterate over ${kindOf(v)}`)
          if (!entries.length) {
            if (node.else) out += this.exec(node.else, dot, scope)
          }
          for (const [k, x] of entries) {
            scope.push()
            if (decl.length === 1) scope.declare(decl[0]!, x)
            else if (decl.length === 2) {
              scope.declare(decl[0]!, k)
              scope.declare(decl[1]!, x)
            }
            out += this.exec(node.body, x, scope)
            scope.pop()
          }
          scope.pop()
          break
        }
        case 'template':
          out += this.include(node.name, node.pipe ? this.pipe(node.pipe, dot, scope, node.pos) : null, node.pos)
          break
      }
    }
    return out
  }

  private pipe(p: Pipe, dot: Value, scope: Scope, pos: string): Value {
    let v: Value = undefined
    p.cmds.forEach((cmd, i) => {
      v = this.command(cmd, dot, scope, pos, i === 0 ? undefined : { value: v })
    })
    if (p.decl.length === 1) {
      if (p.assign) scope.assign(p.decl[0]!, v, pos)
      else scope.declare(p.decl[0]!, v)
    } else if (p.decl.length > 1) {
      throw new TemplateError(`${pos}: two variables are only allowed in range`)
    }
    return v
  }

  private command(cmd: Command, dot: Value, scope: Scope, pos: string, piped?: { value: Value }): Value {
    const [first, ...rest] = cmd.terms
    if (first!.t === 'ident') {
      const name = first!.name
      const lazy = rest.map((t) => () => this.term(t, dot, scope, pos))
      if (piped) lazy.push(() => piped.value)
      if (name === 'and' || name === 'or') {
        let last: Value
        for (const arg of lazy) {
          last = arg()
          if (name === 'and' ? !truthy(last) : truthy(last)) return last
        }
        return last
      }
      const fn = FUNCS[name]
      if (!fn) throw new TemplateError(`${pos}: function "${name}" is not supported`)
      return fn.call(this, lazy.map((a) => a()), pos)
    }
    if (rest.length || piped) throw new TemplateError(`${pos}: can't give arguments to a non-function`)
    return this.term(first!, dot, scope, pos)
  }

  private term(t: Term, dot: Value, scope: Scope, pos: string): Value {
    switch (t.t) {
      case 'lit':
        return t.value
      case 'dot':
        return this.fields(dot, t.fields, pos)
      case 'var':
        return this.fields(scope.get(t.name, pos), t.fields, pos)
      case 'paren':
        return this.fields(this.pipe(t.pipe, dot, scope, pos), t.fields, pos)
      case 'ident':
        if (t.name === 'and' || t.name === 'or' || FUNCS[t.name]) return this.command({ terms: [t] }, dot, scope, pos)
        throw new TemplateError(`${pos}: function "${t.name}" is not supported`)
    }
  }

  private fields(v: Value, fields: string[], pos: string): Value {
    for (const f of fields) {
      if (isNil(v)) throw new TemplateError(`${pos}: nil pointer evaluating interface {}.${f}`)
      if (!isMap(v)) throw new TemplateError(`${pos}: can't evaluate field ${f} in type ${kindOf(v)}`)
      v = Object.hasOwn(v, f) ? v[f] : undefined
    }
    return v
  }
}
