// The `rateLimits` section of an EgressPolicy, and `spec.limits` of a Kuadrant RateLimitPolicy (the same
// shape: a map of named limits). Everything is validated and compiled here, at load; docs/rate-limits.md
// has the syntax and semantics.
//
//   <name>:
//     rates: [{limit: 100, window: 1m}]          # one or more; windows distinct within a limit
//     counters: [auth.identity.username]          # CEL, or {expression: ...} as Kuadrant writes it
//     when: [{predicate: ...}]                    # or one CEL string; all must hold
//     failureMode: allow | deny                   # store unreachable (default allow)
//     cost: 1                                     # integer, or CEL int per request (0: not counted)
import type { CelProgram } from '../cel/compile.js';
import type { Stage } from '../pipeline/context.js';
import { compileField, compileWhen, type SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import { rateLimiter } from './limiter.js';
import { createRateLimitStage, MAX_COST, type CompiledLimit, type CompiledRate, type FailureMode } from './stage.js';
import { formatWindow, parseWindow } from './store.js';

const LIMIT_KEYS = ['rates', 'counters', 'when', 'failureMode', 'cost'];

export function compileRateLimits(node: YNode, sc: SectionContext): Stage | undefined {
  const limits: CompiledLimit[] = [];
  for (const [name, config] of node.entries('rate limits: a map of named limits')) {
    const limit = compileLimit(name, config, sc);
    if (limit) limits.push(limit);
  }
  if (limits.length === 0) return undefined;
  return createRateLimitStage({
    policy: sc.policy,
    scope: sc.scope ?? sc.policy,
    failurePolicy: sc.failurePolicy,
    limits,
    limiter: rateLimiter(sc.services),
    metrics: sc.services.metrics,
  });
}

function compileLimit(name: string, config: YNode, sc: SectionContext): CompiledLimit | undefined {
  const what = `rate limit "${name}"`;
  if (!config.isMap) {
    config.error(`${what}: expected a mapping with rates, counters and when`);
    return undefined;
  }
  config.checkKeys(LIMIT_KEYS, what);
  const rates = compileRates(config.get('rates'), what, config);
  const counters: CelProgram[] = [];
  for (const [index, item] of (config.get('counters')?.items(`${what}.counters: a list of CEL expressions`) ?? []).entries()) {
    const counterWhat = `${what}.counters[${index}]`;
    let source: YNode | undefined = item;
    if (item.isMap && !item.get('file')) {
      item.checkKeys(['expression'], counterWhat);
      source = item.get('expression');
      if (!source) item.error(`${counterWhat}: give an expression`);
    }
    const program = compileField(source, 'any', `${counterWhat}.expression`, sc);
    if (program) counters.push(program);
  }
  const when = compileWhen(config.get('when'), `${what}.when`, sc);
  const failureMode = readFailureMode(config.get('failureMode'), what);
  const cost = readCost(config.get('cost'), what, sc);
  if (rates.length === 0 || failureMode === undefined || cost === undefined) return undefined;
  return { name, rates, counters, when, failureMode, cost };
}

function compileRates(node: YNode | undefined, what: string, config: YNode): CompiledRate[] {
  if (!node || node.isNull) {
    config.error(`${what}: give rates, e.g. [{limit: 100, window: 1m}]`);
    return [];
  }
  const rates: CompiledRate[] = [];
  const items = node.items(`${what}.rates: a list of {limit, window}`);
  for (const item of items) {
    item.checkKeys(['limit', 'window'], `${what}.rates[]`);
    const limitNode = item.get('limit');
    const windowNode = item.get('window');
    if (!limitNode || !windowNode) {
      item.error(`${what}.rates[]: give both limit and window`);
      continue;
    }
    const limit = limitNode.number(`${what}: limit, a whole number`);
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      limitNode.error(`${what}: limit must be a whole number ≥ 0, got ${limit}`);
      continue;
    }
    const windowText = windowNode.string(`${what}: window, e.g. 1m`);
    let windowMs: number | undefined;
    if (windowText !== undefined) {
      try {
        windowMs = parseWindow(windowText);
      } catch (error) {
        windowNode.error(`${what}: ${(error as Error).message}`);
      }
    }
    if (limit === undefined || windowMs === undefined) continue;
    // One limit's rates share its counter key, and a budget is (key, window): two rates with the same
    // window would be one budget charged twice.
    if (rates.some((rate) => rate.windowMs === windowMs)) {
      windowNode.error(`${what}: two rates with the window ${formatWindow(windowMs)}; keep one (the lower limit decides anyway)`);
      continue;
    }
    rates.push({ limit, windowMs });
  }
  if (items.length === 0 && node.isSeq) node.error(`${what}: give at least one rate`);
  return rates;
}

/** `failureMode: allow | deny` (default allow): what a limit or budget does while its store is unreachable. */
export function readFailureMode(node: YNode | undefined, what: string): FailureMode | undefined {
  if (!node || node.isNull) return 'allow';
  const value = node.string('allow or deny');
  if (value === 'allow' || value === 'deny') return value;
  if (value !== undefined) node.error(`${what}: failureMode must be allow or deny, got "${value}"`);
  return undefined;
}

function readCost(node: YNode | undefined, what: string, sc: SectionContext): number | CelProgram | undefined {
  if (!node || node.isNull) return 1;
  if (node.isScalar && typeof node.toJS() === 'number') {
    const cost = node.toJS() as number;
    if (!Number.isSafeInteger(cost) || cost < 0 || cost > MAX_COST) {
      node.error(`${what}: cost must be a whole number from 0 to ${MAX_COST}, got ${cost}`);
      return undefined;
    }
    return cost;
  }
  return compileField(node, 'int', `${what}.cost`, sc);
}
