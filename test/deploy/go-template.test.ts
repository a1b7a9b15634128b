// The Go-template subset used to render the Helm chart: each construct behaves as Helm's does, and anything
// outside the subset fails rather than rendering something plausible.
import { describe, expect, it } from 'vitest';
import { ChartTemplates, TemplateError } from './go-template.js';

function render(source: string, root: unknown, helpers = ''): string {
  const templates = new ChartTemplates();
  if (helpers) templates.add('_helpers.tpl', helpers);
  templates.add('t.yaml', source);
  return templates.render('t.yaml', root);
}

describe('go-template renderer', () => {
  it('prints fields and trims whitespace around {{- and -}}', () => {
    const root = { Values: { a: { b: 'x' }, n: 2, t: true }, Release: { Name: 'r' } };
    expect(render('v: {{ .Values.a.b }} {{ .Values.n }} {{ .Values.t }} {{ .Release.Name }}', root)).toBe('v: x 2 true r');
    expect(render('a:\n  {{- .Values.a.b }}\nb: {{ .Values.n -}}\n\n  c', root)).toBe('a:x\nb: 2c');
    expect(render('x{{/* a comment */}}y{{- /* trimmed */ -}}\n z', root)).toBe('xyz');
  });

  it('chooses if / else if / else branches by Go truthiness', () => {
    const template = '{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}';
    expect(render(template, { Values: { a: 'yes', b: 1 } })).toBe('A');
    expect(render(template, { Values: { a: '', b: 1 } })).toBe('B');
    expect(render(template, { Values: { a: [], b: {} } })).toBe('C');
    expect(render('{{ if not .Values.a }}none{{ end }}', { Values: { a: 0 } })).toBe('none');
    expect(render('{{ if or .Values.a .Values.b }}some{{ end }}', { Values: { a: '', b: 'x' } })).toBe('some');
  });

  it('ranges over lists and sorted maps, binding . and declared variables, with $ as the root', () => {
    const root = { Values: { list: ['a', 'b'], map: { z: 1, a: 2 }, port: 9 } };
    expect(render('{{ range .Values.list }}[{{ . }}:{{ $.Values.port }}]{{ end }}', root)).toBe('[a:9][b:9]');
    expect(render('{{ range $i, $v := .Values.list }}{{ $i }}={{ $v }};{{ end }}', root)).toBe('0=a;1=b;');
    expect(render('{{ range $k, $v := .Values.map }}{{ $k }}={{ $v }};{{ end }}', root)).toBe('a=2;z=1;');
    expect(render('{{ range .Values.none }}x{{ else }}empty{{ end }}', { Values: { none: [] } })).toBe('empty');
  });

  it('includes named templates with their own dot, and pipes through functions', () => {
    const helpers = '{{- define "name" -}}{{ default .Release.Name .Values.override | trunc 5 | trimSuffix "-" }}{{- end -}}';
    const root = { Values: { override: '', labels: { app: 'x', tier: 'y' } }, Release: { Name: 'abcd-efgh' } };
    expect(render('n: {{ include "name" . }}', root, helpers)).toBe('n: abcd');
    expect(render('n: {{ include "name" . | quote }}', { ...root, Values: { ...root.Values, override: 'o' } }, helpers)).toBe('n: "o"');
    expect(render('labels:\n  {{- toYaml .Values.labels | nindent 2 }}', root)).toBe('labels:\n  app: x\n  tier: y');
    expect(render('{{ .Values.x | default "d" }}', { Values: { x: '' } })).toBe('d');
    expect(render('{{ (default "a" .Values.x) | quote }}', { Values: { x: 'b' } })).toBe('"b"');
  });

  it('renders multi-line strings with toYaml as block scalars that parse back to the same text', () => {
    const text = 'kind: X\nspec:\n  a: "quoted"\n';
    const out = render('data:\n  {{- toYaml .Values.files | nindent 2 }}', { Values: { files: { 'f.yaml': text } } });
    expect(out).toContain('f.yaml: |');
    expect(out).toContain('    spec:\n      a: "quoted"');
  });

  it('fails on missing keys, unknown functions and unbalanced blocks instead of rendering', () => {
    expect(() => render('{{ .Values.missing }}', { Values: {} })).toThrow(/not set/);
    expect(() => render('{{ .Values.a.b }}', { Values: { a: null } })).toThrow(/nil pointer/);
    expect(() => render('{{ sha256sum .Values.a }}', { Values: { a: 'x' } })).toThrow(/not supported/);
    expect(() => render('{{ if .Values.a }}x', { Values: { a: 1 } })).toThrow(TemplateError);
    expect(() => render('{{ end }}', {})).toThrow(/unexpected/);
    expect(() => render('{{ include "nope" . }}', {})).toThrow(/no template "nope"/);
    expect(() => render('{{ .Values.m }}', { Values: { m: { a: 1 } } })).toThrow(/toYaml/);
  });
});
