// The chart test is only as good as its renderer: these pin the Go text/template and Sprig
// behaviours the chart relies on (expected outputs are what Go/Helm produce).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Renderer, TemplateError, TemplateFailure, goFloat, toYaml } from './gotemplate.ts'

function render(src: string, data: unknown = {}, partials = ''): string {
  const r = new Renderer()
  if (partials) r.add('partials', partials)
  r.add('t', src)
  return r.render('t', data)
}

test('trim markers remove all adjacent whitespace, including newlines', () => {
  assert.equal(render('a  \n  {{- "b" -}}  \n  c'), 'abc')
  assert.equal(render('a\n{{- /* comment */ -}}\nb'), 'ab')
  assert.equal(render('a {{/* kept spaces */}} b'), 'a  b')
  assert.equal(render('{{ 3 }} {{-3}}'), '3 -3', '{{-3}} is the number -3, not a trim marker')
})

test('if / else if / else and Go truthiness', () => {
  const t = '{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}'
  assert.equal(render(t, { a: 1 }), 'A')
  assert.equal(render(t, { a: 0, b: 'x' }), 'B')
  for (const empty of [0, '', false, null, [], {}]) assert.equal(render(t, { a: empty, b: empty }), 'C')
  assert.equal(render(t, {}), 'C', 'missing keys are falsy')
})

test('range over lists and maps (sorted keys), with variables; with', () => {
  assert.equal(render('{{ range .l }}[{{ . }}]{{ end }}', { l: ['x', 'y'] }), '[x][y]')
  assert.equal(render('{{ range $i, $v := .l }}{{ $i }}={{ $v }} {{ end }}', { l: ['x', 'y'] }), '0=x 1=y ')
  assert.equal(render('{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}', { m: { b: 2, a: 1, c: 'z' } }), 'a=1;b=2;c=z;')
  assert.equal(render('{{ range .l }}x{{ else }}empty{{ end }}', { l: [] }), 'empty')
  assert.equal(render('{{ range $x := list "a" "b" }}{{ $x }}{{ end }}'), 'ab')
  assert.equal(render('{{ range .l }}{{ $.top }}{{ end }}', { l: [1, 2], top: 't' }), 'tt')
  assert.equal(render('{{ with .m }}{{ .k }}{{ else }}none{{ end }}', { m: { k: 'v' } }), 'v')
  assert.equal(render('{{ with .m }}{{ .k }}{{ else }}none{{ end }}', { m: {} }), 'none')
})

test('variables: declaration, assignment, scope', () => {
  assert.equal(render('{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}'), 'b')
  assert.throws(() => render('{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}'), /undefined variable \$y/)
})

test('define / include / template, with nindent and indent', () => {
  const partials = '{{- define "lbl" -}}\na: {{ .x }}\nb: 2\n{{- end }}'
  assert.equal(render('m:\n  {{- include "lbl" . | nindent 2 }}', { x: 1 }, partials), 'm:\n  a: 1\n  b: 2')
  assert.equal(render('{{ include "lbl" . | indent 4 }}', { x: 1 }, partials), '    a: 1\n    b: 2')
  assert.equal(render('{{ template "lbl" . }}', { x: 'q' }, partials), 'a: q\nb: 2')
  assert.throws(() => render('{{ include "nope" . }}'), /no template "nope"/)
})

test('numbers: YAML values are float64, literals and int are ints, mixing them fails like Go', () => {
  assert.equal(render('{{ .n }}', { n: 2470 }), '2470')
  assert.equal(render('{{ .n }}', { n: 1000000 }), '1e+06')
  assert.equal(render('{{ .n | toString }}', { n: 1234567 }), '1.234567e+06')
  assert.equal(render('{{ .n | int64 | toString }}', { n: 1000000 }), '1000000')
  assert.equal(render('{{ if gt (int .n) 1 }}y{{ end }}', { n: 2 }), 'y')
  assert.throws(() => render('{{ if gt .n 1 }}y{{ end }}', { n: 2 }), /incompatible types for comparison/)
  assert.equal(render('{{ int "2470" }} {{ int "x" }}'), '2470 0')
  assert.deepEqual([goFloat(0.5), goFloat(100000), goFloat(1e21), goFloat(0.00001)], ['0.5', '100000', '1e+21', '1e-05'])
})

test('field access on nil fails like Go; missing keys print <no value>', () => {
  assert.throws(() => render('{{ .a.b }}', {}), /nil pointer evaluating interface \{\}\.b/)
  assert.throws(() => render('{{ .a.b }}', { a: 'str' }), /can't evaluate field b in type string/)
  assert.equal(render('{{ .a }}', {}), '<no value>')
  assert.throws(() => render('{{ .m }}', { m: { a: 1 } }), TemplateError, 'printing a map is refused')
})

test('and / or short-circuit and return an operand', () => {
  assert.equal(render('{{ or .a "d" }}', { a: '' }), 'd')
  assert.equal(render('{{ and .a .b }}', { a: 'x', b: 'y' }), 'y')
  assert.equal(render('{{ if and .a .a.b }}y{{ else }}n{{ end }}', {}), 'n', 'the second operand is not evaluated')
})

test('sprig functions used by the chart', () => {
  assert.equal(render('{{ default "d" .v }}|{{ default "d" "x" }}', { v: '' }), 'd|x')
  assert.equal(render('{{ "a\\"b" | quote }}'), '"a\\"b"')
  assert.equal(render('{{ quote .missing }}', {}), '', 'quote of nil is empty')
  assert.equal(render('{{ "abcdef" | trunc 3 }}|{{ "a-" | trimSuffix "-" }}|{{ "1+2" | replace "+" "_" }}'), 'abc|a|1_2')
  assert.equal(render('{{ contains "b" "abc" }} {{ hasPrefix "/" "/data" }} {{ hasKey .m "k" }}', { m: { k: null } }), 'true true true')
  assert.equal(render('{{ b64enc "hi" }} {{ kindIs "float64" .n }} {{ kindIs "invalid" .x }}', { n: 1 }), 'aGk= true true')
  assert.equal(render('{{ printf "%s-%d" "a" 5 }}'), 'a-5')
  assert.equal(render('{{ indent 2 "x" }}|{{ trunc 2 "abc" }}|{{ printf "%d" -3 }}'), '  x|ab|-3')
  assert.equal(render('{{ print "a" "b" }} {{ len .l }}', { l: [1, 2] }), 'ab 2')
  assert.equal(render('{{ sha256sum "" }}'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  assert.throws(() => render('{{ required "need x" .x }}'), (e: Error) => e instanceof TemplateFailure && /need x/.test(e.message))
  assert.throws(() => render('{{ fail "nope" }}'), (e: Error) => e instanceof TemplateFailure && /nope/.test(e.message))
  assert.throws(() => render('{{ upper "x" }}'), /function "upper" is not supported/)
})

test('toYaml matches Helm: sorted keys, unindented sequences, no trailing newline', () => {
  assert.equal(toYaml({ b: [1, 2], a: { d: 'x', c: true } }), 'a:\n  c: true\n  d: x\nb:\n- 1\n- 2')
  assert.equal(render('r:\n  {{- toYaml .r | nindent 2 }}', { r: { limits: { memory: '4Gi' } } }), 'r:\n  limits:\n    memory: 4Gi')
})

test('parse errors are reported', () => {
  assert.throws(() => render('{{ if true }}x'), /missing \{\{end\}\}/)
  assert.throws(() => render('{{ end }}'), /unexpected \{\{end\}\}/)
  assert.throws(() => render('{{ .a '), /unclosed action/)
})
