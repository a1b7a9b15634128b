// A small Go text/template renderer for the Helm chart in deploy/helm (there is no helm binary here).
// It supports the subset the chart's templates use, and fails loudly on anything else:
//   {{ .Values.x }} {{ .Release.Name }} {{ $ }} {{ $var }}, comments, {{- -}} trimming,
//   define / include / template, if / else if / else / end, range (with $i, $v :=) / end, with / end,
//   pipelines with parentheses, and the functions default, quote, toYaml, nindent, indent, trunc,
//   trimSuffix, not, and, or, eq, ne, required.
// Unlike Helm, a missing map key is an error rather than an empty value, so template typos fail the tests.
import { stringify } from 'yaml';

export type TemplateValue = unknown;

interface TextNode {
  kind: 'text';
  text: string;
}
interface ActionNode {
  kind: 'action';
  pipe: Pipeline;
}
interface IfNode {
  kind: 'if';
  cond: Pipeline;
  then: Node[];
  otherwise: Node[];
}
interface RangeNode {
  kind: 'range';
  pipe: Pipeline;
  body: Node[];
  otherwise: Node[];
}
interface WithNode {
  kind: 'with';
  pipe: Pipeline;
  body: Node[];
  otherwise: Node[];
}
interface TemplateCallNode {
  kind: 'template';
  name: string;
  arg: Pipeline | undefined;
}
type Node = TextNode | ActionNode | IfNode | RangeNode | WithNode | TemplateCallNode;

type Operand =
  | { kind: 'field'; base: 'dot' | 'var'; varName: string; path: string[] }
  | { kind: 'literal'; value: TemplateValue }
  | { kind: 'ident'; name: string }
  | { kind: 'pipe'; pipe: Pipeline };
interface Pipeline {
  declare: string[];
  commands: Operand[][];
}

/** A parse or execution error, with the template name and (for parse errors) the line. */
export class TemplateError extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// Lexing the file into text and actions, applying {{- and -}} trimming.

interface RawAction {
  kind: 'raw';
  content: string;
  line: number;
}
type Item = TextNode | RawAction;

function splitActions(source: string, templateName: string): Item[] {
  const items: Item[] = [];
  let pos = 0;
  let trimNextText = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open === -1 ? source.slice(pos) : source.slice(pos, open);
    if (trimNextText) text = text.replace(/^\s+/, '');
    trimNextText = false;
    if (open === -1) {
      items.push({ kind: 'text', text });
      break;
    }
    const close = source.indexOf('}}', open + 2);
    if (close === -1) throw new TemplateError(`${templateName}: unclosed action at line ${lineOf(source, open)}`);
    let content = source.slice(open + 2, close);
    if (/^-\s/.test(content)) {
      text = text.replace(/\s+$/, '');
      content = content.slice(1);
    }
    if (/\s-$/.test(content)) {
      trimNextText = true;
      content = content.slice(0, -1);
    }
    items.push({ kind: 'text', text });
    content = content.trim();
    if (!(content.startsWith('/*') && content.endsWith('*/'))) {
      items.push({ kind: 'raw', content, line: lineOf(source, open) });
    }
    pos = close + 2;
  }
  return items.filter((item) => item.kind !== 'text' || item.text !== '');
}

function lineOf(source: string, index: number): number {
  return source.slice(0, index).split('\n').length;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing action contents into pipelines.

type Token =
  | { t: 'field'; path: string[] }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'string'; value: string }
  | { t: 'number'; value: number }
  | { t: 'ident'; name: string }
  | { t: 'punct'; value: '|' | '(' | ')' | ':=' | ',' };

function tokenize(content: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fieldPath = (start: number): [string[], number] => {
    const match = /^(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(content.slice(start));
    const text = match ? match[0] : '';
    return [text === '' ? [] : text.slice(1).split('.'), start + text.length];
  };
  while (i < content.length) {
    const c = content[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '|' || c === '(' || c === ')' || c === ',') {
      tokens.push({ t: 'punct', value: c });
      i++;
    } else if (content.startsWith(':=', i)) {
      tokens.push({ t: 'punct', value: ':=' });
      i += 2;
    } else if (c === '"') {
      const match = /^"(?:[^"\\]|\\.)*"/.exec(content.slice(i));
      if (!match) throw new TemplateError(`${where}: unterminated string`);
      tokens.push({ t: 'string', value: JSON.parse(match[0]) as string });
      i += match[0].length;
    } else if (c === '`') {
      const end = content.indexOf('`', i + 1);
      if (end === -1) throw new TemplateError(`${where}: unterminated raw string`);
      tokens.push({ t: 'string', value: content.slice(i + 1, end) });
      i = end + 1;
    } else if (c === '.') {
      const [path, next] = fieldPath(i);
      tokens.push({ t: 'field', path });
      i = next === i ? i + 1 : next;
    } else if (c === '$') {
      const match = /^\$[A-Za-z0-9_]*/.exec(content.slice(i))!;
      const [path, next] = fieldPath(i + match[0].length);
      tokens.push({ t: 'var', name: match[0], path });
      i = next;
    } else if (/[-0-9]/.test(c)) {
      const match = /^-?[0-9]+(\.[0-9]+)?/.exec(content.slice(i));
      if (!match) throw new TemplateError(`${where}: unexpected '${c}'`);
      tokens.push({ t: 'number', value: Number(match[0]) });
      i += match[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(content.slice(i))!;
      tokens.push({ t: 'ident', name: match[0] });
      i += match[0].length;
    } else {
      throw new TemplateError(`${where}: unexpected character '${c}'`);
    }
  }
  return tokens;
}

function parsePipeline(tokens: Token[], where: string): Pipeline {
  let pos = 0;
  const declare: string[] = [];
  // `$a := ...` or `$k, $v := ...`
  const assign = tokens.findIndex((tok) => tok.t === 'punct' && tok.value === ':=');
  if (assign !== -1) {
    for (const tok of tokens.slice(0, assign)) {
      if (tok.t === 'var' && tok.path.length === 0) declare.push(tok.name);
      else if (!(tok.t === 'punct' && tok.value === ',')) throw new TemplateError(`${where}: bad declaration`);
    }
    pos = assign + 1;
  }

  const parseCommands = (stopAtParen: boolean): Operand[][] => {
    const commands: Operand[][] = [[]];
    while (pos < tokens.length) {
      const tok = tokens[pos]!;
      if (tok.t === 'punct' && tok.value === ')') {
        if (!stopAtParen) throw new TemplateError(`${where}: unbalanced ')'`);
        pos++;
        return commands;
      }
      pos++;
      if (tok.t === 'punct' && tok.value === '|') {
        commands.push([]);
        continue;
      }
      const current = commands[commands.length - 1]!;
      if (tok.t === 'punct' && tok.value === '(') {
        current.push({ kind: 'pipe', pipe: { declare: [], commands: parseCommands(true) } });
      } else if (tok.t === 'field') {
        current.push({ kind: 'field', base: 'dot', varName: '', path: tok.path });
      } else if (tok.t === 'var') {
        current.push({ kind: 'field', base: 'var', varName: tok.name, path: tok.path });
      } else if (tok.t === 'string' || tok.t === 'number') {
        current.push({ kind: 'literal', value: tok.value });
      } else if (tok.t === 'ident') {
        if (tok.name === 'true' || tok.name === 'false') current.push({ kind: 'literal', value: tok.name === 'true' });
        else if (tok.name === 'nil') current.push({ kind: 'literal', value: null });
        else current.push({ kind: 'ident', name: tok.name });
      } else {
        throw new TemplateError(`${where}: unexpected '${tok.value}'`);
      }
    }
    if (stopAtParen) throw new TemplateError(`${where}: missing ')'`);
    return commands;
  };

  const commands = parseCommands(false);
  if (commands.some((command) => command.length === 0)) throw new TemplateError(`${where}: empty command`);
  return { declare, commands };
}

interface ParsedFile {
  nodes: Node[];
  defines: Map<string, Node[]>;
}

function parseTemplate(source: string, templateName: string): ParsedFile {
  const items = splitActions(source, templateName);
  const defines = new Map<string, Node[]>();
  let pos = 0;

  // Parses nodes until one of the stop keywords; returns the nodes and the keyword action that stopped it.
  const parseList = (stops: string[]): [Node[], RawAction | undefined] => {
    const nodes: Node[] = [];
    while (pos < items.length) {
      const item = items[pos++]!;
      if (item.kind === 'text') {
        nodes.push(item);
        continue;
      }
      const where = `${templateName}:${item.line}`;
      const keyword = /^[a-z]+/.exec(item.content)?.[0] ?? '';
      const rest = item.content.slice(keyword.length).trim();
      if (stops.includes(keyword)) return [nodes, item];
      switch (keyword) {
        case 'if': {
          nodes.push(parseIf(rest, where));
          break;
        }
        case 'range':
        case 'with': {
          const pipe = parsePipeline(tokenize(rest, where), where);
          const [body, stop] = parseList(['else', 'end']);
          let otherwise: Node[] = [];
          if (stop?.content === 'else') [otherwise] = expectEnd(parseList(['end']), where);
          else expectEnd([body, stop], where);
          nodes.push({ kind: keyword, pipe, body, otherwise });
          break;
        }
        case 'define': {
          const name = /^"([^"]+)"$/.exec(rest)?.[1];
          if (!name) throw new TemplateError(`${where}: define needs a quoted name`);
          const [body] = expectEnd(parseList(['end']), where);
          defines.set(name, body);
          break;
        }
        case 'template': {
          const match = /^"([^"]+)"\s*(.*)$/.exec(rest);
          if (!match) throw new TemplateError(`${where}: template needs a quoted name`);
          const arg = match[2] ? parsePipeline(tokenize(match[2], where), where) : undefined;
          nodes.push({ kind: 'template', name: match[1]!, arg });
          break;
        }
        case 'else':
        case 'end':
          throw new TemplateError(`${where}: unexpected {{${item.content}}}`);
        case 'block':
        case 'break':
        case 'continue':
          throw new TemplateError(`${where}: '${keyword}' is not supported by this renderer`);
        default:
          nodes.push({ kind: 'action', pipe: parsePipeline(tokenize(item.content, where), where) });
      }
    }
    if (stops.length > 0) throw new TemplateError(`${templateName}: missing {{ end }}`);
    return [nodes, undefined];
  };

  const expectEnd = (result: [Node[], RawAction | undefined], where: string): [Node[], RawAction] => {
    if (result[1]?.content !== 'end') throw new TemplateError(`${where}: missing {{ end }}`);
    return result as [Node[], RawAction];
  };

  // if ... [else if ...]* [else ...] end: an `else if` nests an IfNode in the else branch, sharing one end.
  const parseIf = (condition: string, where: string): IfNode => {
    const cond = parsePipeline(tokenize(condition, where), where);
    const [then, stop] = parseList(['else', 'end']);
    if (!stop) throw new TemplateError(`${where}: missing {{ end }}`);
    if (stop.content === 'end') return { kind: 'if', cond, then, otherwise: [] };
    const elseRest = stop.content.slice('else'.length).trim();
    if (elseRest.startsWith('if ')) {
      return { kind: 'if', cond, then, otherwise: [parseIf(elseRest.slice(3), `${templateName}:${stop.line}`)] };
    }
    if (elseRest !== '') throw new TemplateError(`${where}: unsupported {{${stop.content}}}`);
    const [otherwise] = expectEnd(parseList(['end']), where);
    return { kind: 'if', cond, then, otherwise };
  };

  const [nodes] = parseList([]);
  return { nodes, defines };
}

// ---------------------------------------------------------------------------------------------------------------
// Execution.

interface Scope {
  dot: TemplateValue;
  vars: Map<string, TemplateValue>;
}

function isRecord(value: TemplateValue): value is Record<string, TemplateValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Go template truth: false, 0, nil, and empty strings, slices and maps are false. */
export function isTruthy(value: TemplateValue): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return true;
}

function printValue(value: TemplateValue, where: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new TemplateError(`${where}: cannot print a ${Array.isArray(value) ? 'list' : 'map'} (use toYaml)`);
}

/** Helm's toYaml: YAML without the trailing newline. */
function toYaml(value: TemplateValue): string {
  if (value === undefined || value === null) return 'null';
  return stringify(value, { lineWidth: 0 }).replace(/\n$/, '');
}

function indentLines(spaces: number, text: string): string {
  const pad = ' '.repeat(spaces);
  return text
    .split('\n')
    .map((line) => pad + line)
    .join('\n');
}

export class ChartTemplates {
  private readonly files = new Map<string, Node[]>();
  private readonly defines = new Map<string, Node[]>();

  /** Adds a template file; `name` is its path (for messages). Defines are shared by all files, as in Helm. */
  add(name: string, source: string): void {
    const parsed = parseTemplate(source, name);
    this.files.set(name, parsed.nodes);
    for (const [defineName, body] of parsed.defines) {
      if (this.defines.has(defineName)) throw new TemplateError(`${name}: "${defineName}" is defined twice`);
      this.defines.set(defineName, body);
    }
  }

  render(name: string, root: TemplateValue): string {
    const nodes = this.files.get(name);
    if (!nodes) throw new TemplateError(`no template named ${name}`);
    return this.execute(nodes, { dot: root, vars: new Map([['$', root]]) }, name);
  }

  private execute(nodes: Node[], scope: Scope, where: string): string {
    let out = '';
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          out += node.text;
          break;
        case 'action': {
          const value = this.evalPipeline(node.pipe, scope, where);
          if (node.pipe.declare.length === 0) out += printValue(value, where);
          break;
        }
        case 'if':
          out += isTruthy(this.evalPipeline(node.cond, scope, where))
            ? this.execute(node.then, scope, where)
            : this.execute(node.otherwise, scope, where);
          break;
        case 'with': {
          const value = this.evalPipeline(node.pipe, scope, where);
          out += isTruthy(value)
            ? this.execute(node.body, { dot: value, vars: new Map(scope.vars) }, where)
            : this.execute(node.otherwise, scope, where);
          break;
        }
        case 'range':
          out += this.executeRange(node, scope, where);
          break;
        case 'template': {
          const arg = node.arg ? this.evalPipeline(node.arg, scope, where) : undefined;
          out += this.include(node.name, arg, where);
          break;
        }
      }
    }
    return out;
  }

  private executeRange(node: RangeNode, scope: Scope, where: string): string {
    const collection = this.evalPipeline({ declare: [], commands: node.pipe.commands }, scope, where);
    let entries: [TemplateValue, TemplateValue][];
    if (Array.isArray(collection)) entries = collection.map((item, index) => [index, item]);
    // Go ranges over maps in sorted key order.
    else if (isRecord(collection)) entries = Object.keys(collection).sort().map((key) => [key, collection[key]]);
    else if (collection === undefined || collection === null) entries = [];
    else throw new TemplateError(`${where}: cannot range over ${typeof collection}`);
    if (entries.length === 0) return this.execute(node.otherwise, scope, where);
    let out = '';
    for (const [key, item] of entries) {
      const vars = new Map(scope.vars);
      const [first, second] = node.pipe.declare;
      if (first && second) {
        vars.set(first, key);
        vars.set(second, item);
      } else if (first) {
        vars.set(first, item);
      }
      out += this.execute(node.body, { dot: item, vars }, where);
    }
    return out;
  }

  private include(name: string, arg: TemplateValue, where: string): string {
    const body = this.defines.get(name);
    if (!body) throw new TemplateError(`${where}: no template "${name}"`);
    return this.execute(body, { dot: arg, vars: new Map([['$', arg]]) }, `${where} > ${name}`);
  }

  private evalPipeline(pipe: Pipeline, scope: Scope, where: string): TemplateValue {
    let value: TemplateValue;
    let piped = false;
    for (const command of pipe.commands) {
      value = this.evalCommand(command, scope, where, piped ? [value] : []);
      piped = true;
    }
    if (pipe.declare.length === 1) scope.vars.set(pipe.declare[0]!, value);
    return value;
  }

  private evalCommand(command: Operand[], scope: Scope, where: string, pipedIn: TemplateValue[]): TemplateValue {
    const [head, ...rest] = command;
    if (head!.kind === 'ident') {
      const args = [...rest.map((operand) => this.evalOperand(operand, scope, where)), ...pipedIn];
      return this.callFunction(head!.name, args, where);
    }
    if (rest.length > 0 || pipedIn.length > 0) throw new TemplateError(`${where}: cannot give arguments to a value`);
    return this.evalOperand(head!, scope, where);
  }

  private evalOperand(operand: Operand, scope: Scope, where: string): TemplateValue {
    switch (operand.kind) {
      case 'literal':
        return operand.value;
      case 'pipe':
        return this.evalPipeline(operand.pipe, scope, where);
      case 'ident':
        return this.callFunction(operand.name, [], where);
      case 'field': {
        let value: TemplateValue;
        if (operand.base === 'dot') {
          value = scope.dot;
        } else {
          if (!scope.vars.has(operand.varName)) throw new TemplateError(`${where}: undefined variable ${operand.varName}`);
          value = scope.vars.get(operand.varName);
        }
        let walked = operand.base === 'dot' ? '' : operand.varName;
        for (const key of operand.path) {
          walked += `.${key}`;
          if (!isRecord(value)) throw new TemplateError(`${where}: nil pointer evaluating ${walked}`);
          if (!(key in value)) throw new TemplateError(`${where}: ${walked} is not set (no such key)`);
          value = value[key];
        }
        return value;
      }
    }
  }

  private callFunction(name: string, args: TemplateValue[], where: string): TemplateValue {
    const arity = (n: number): void => {
      if (args.length !== n) throw new TemplateError(`${where}: ${name} takes ${n} argument(s), got ${args.length}`);
    };
    switch (name) {
      case 'include': {
        arity(2);
        if (typeof args[0] !== 'string') throw new TemplateError(`${where}: include needs a template name`);
        return this.include(args[0], args[1], where);
      }
      case 'default':
        arity(2);
        return isTruthy(args[1]) ? args[1] : args[0];
      case 'quote':
        return args
          .filter((arg) => arg !== undefined && arg !== null)
          .map((arg) => JSON.stringify(printValue(arg, where)))
          .join(' ');
      case 'toYaml':
        arity(1);
        return toYaml(args[0]);
      case 'nindent':
        arity(2);
        return '\n' + indentLines(Number(args[0]), printValue(args[1], where));
      case 'indent':
        arity(2);
        return indentLines(Number(args[0]), printValue(args[1], where));
      case 'trunc':
        arity(2);
        return printValue(args[1], where).slice(0, Number(args[0]));
      case 'trimSuffix': {
        arity(2);
        const [suffix, text] = [printValue(args[0], where), printValue(args[1], where)];
        return suffix !== '' && text.endsWith(suffix) ? text.slice(0, -suffix.length) : text;
      }
      case 'not':
        arity(1);
        return !isTruthy(args[0]);
      case 'and':
        return args.every(isTruthy) ? args[args.length - 1] : args.find((arg) => !isTruthy(arg));
      case 'or':
        return args.find(isTruthy) ?? args[args.length - 1];
      case 'eq':
        arity(2);
        return args[0] === args[1];
      case 'ne':
        arity(2);
        return args[0] !== args[1];
      case 'required':
        arity(2);
        if (!isTruthy(args[1])) throw new TemplateError(`${where}: ${printValue(args[0], where)}`);
        return args[1];
      default:
        throw new TemplateError(`${where}: function "${name}" is not supported by this renderer`);
    }
  }
}
