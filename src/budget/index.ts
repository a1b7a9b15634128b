// The `tokenBudgets` section of an EgressPolicy: token budgets per workload, debited with the usage the
// provider reports (read by the ext_proc service) and enforced at Check. Validated and compiled at load;
// docs/token-budgets.md has the syntax and semantics.
//
//   tokenBudgets:
//     provider: auto | openai | anthropic | gemini      # how responses are read (default auto: detected)
//     fallback: 500 | {input: 200, output: 300}         # charged when a response carries no usage (default: nothing)
//     reservation: {default: 1024, max: 8192}           # reserve at Check, reconcile with the real usage (optional)
//     budgets:
//       <name>:
//         limit: 100000                               # tokens per window
//         window: 1h
//         count: total | input | output               # default total
//         counters: [auth.identity.username]          # CEL: whose budget
//         when: [{predicate: ...}]                    # or one CEL string
//         failureMode: allow | deny                   # store unreachable (default allow)
import type { CelProgram } from '../cel/compile.js';
import type { Stage } from '../pipeline/context.js';
import { compileField, compileWhen, type SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import type { ProviderChoice } from '../extproc/usage/response-reader.js';
import { parseWindow } from '../ratelimit/store.js';
import { readFailureMode } from '../ratelimit/index.js';
import { BUDGET_COUNTS, type BudgetCount, type FallbackCost } from './grant.js';
import { budgetLedger } from './ledger.js';
import { budgetMetrics } from './metrics.js';
import { createTokenBudgetStage, type CompiledBudget, type FailureMode, type Reservation } from './stage.js';

const SECTION_KEYS = ['provider', 'fallback', 'reservation', 'budgets'];
const BUDGET_KEYS = ['limit', 'window', 'count', 'counters', 'when', 'failureMode'];
const PROVIDERS: readonly ProviderChoice[] = ['auto', 'openai', 'anthropic', 'gemini'];
/** Largest token figure a policy may write (limits, fallbacks, reservations). */
export const MAX_TOKENS = 1_000_000_000_000;

export function compileTokenBudgets(node: YNode, sc: SectionContext): Stage | undefined {
  if (!node.isMap) {
    node.error('tokenBudgets: expected a mapping with budgets (and optionally provider, fallback, reservation)');
    return undefined;
  }
  node.checkKeys(SECTION_KEYS, 'tokenBudgets');
  const provider = readProvider(node.get('provider'));
  const fallback = readFallback(node.get('fallback'));
  const reservation = readReservation(node.get('reservation'));
  const budgetsNode = node.get('budgets');
  if (!budgetsNode || budgetsNode.isNull) {
    node.error('tokenBudgets: give budgets, e.g. {per-workload: {limit: 100000, window: 1h, counters: [auth.identity.username]}}');
    return undefined;
  }
  const budgets: CompiledBudget[] = [];
  for (const [name, config] of budgetsNode.entries('tokenBudgets.budgets: a map of named budgets')) {
    const budget = compileBudget(name, config, sc);
    if (budget) budgets.push(budget);
  }
  if (budgets.length === 0 || provider === undefined || fallback === null || reservation === null) return undefined;
  const services = sc.services;
  return createTokenBudgetStage({
    policy: sc.policy,
    scope: sc.scope ?? sc.policy,
    failurePolicy: sc.failurePolicy,
    provider,
    ...(fallback !== undefined ? { fallback } : {}),
    ...(reservation !== undefined ? { reservation } : {}),
    budgets,
    // Resolved on first use: loading (or linting) a policy opens no store connection.
    ledger: () => budgetLedger(services),
    metrics: services.metrics,
    budgetMetrics: () => budgetMetrics(services),
  });
}

function compileBudget(name: string, config: YNode, sc: SectionContext): CompiledBudget | undefined {
  const what = `token budget "${name}"`;
  if (!config.isMap) {
    config.error(`${what}: expected a mapping with limit, window and counters`);
    return undefined;
  }
  config.checkKeys(BUDGET_KEYS, what);
  const limit = readTokens(config.get('limit'), `${what}: limit`, config);
  const windowMs = readWindow(config.get('window'), what, config);
  const count = readCount(config.get('count'), what);
  const counters: CelProgram[] = [];
  for (const [index, item] of (config.get('counters')?.items(`${what}.counters: a list of CEL expressions`) ?? []).entries()) {
    const program = compileField(item, 'any', `${what}.counters[${index}]`, sc);
    if (program) counters.push(program);
  }
  const when = compileWhen(config.get('when'), `${what}.when`, sc);
  const failureMode = readFailureMode(config.get('failureMode'), what);
  if (limit === undefined || windowMs === undefined || count === undefined || failureMode === undefined) return undefined;
  return { name, limit, windowMs, count, counters, when, failureMode };
}

function readTokens(node: YNode | undefined, what: string, parent: YNode): number | undefined {
  if (!node || node.isNull) {
    parent.error(`${what} is required (tokens per window)`);
    return undefined;
  }
  const value = node.number(`${what}, a whole number of tokens`);
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_TOKENS) {
    node.error(`${what} must be a whole number from 0 to ${MAX_TOKENS}, got ${value}`);
    return undefined;
  }
  return value;
}

function readWindow(node: YNode | undefined, what: string, parent: YNode): number | undefined {
  if (!node || node.isNull) {
    parent.error(`${what}: window is required, e.g. 1h`);
    return undefined;
  }
  const text = node.string(`${what}: window, e.g. 1h`);
  if (text === undefined) return undefined;
  try {
    return parseWindow(text);
  } catch (error) {
    node.error(`${what}: ${(error as Error).message}`);
    return undefined;
  }
}

function readCount(node: YNode | undefined, what: string): BudgetCount | undefined {
  if (!node || node.isNull) return 'total';
  const value = node.string('input, output or total');
  if (value !== undefined && (BUDGET_COUNTS as readonly string[]).includes(value)) return value as BudgetCount;
  if (value !== undefined) node.error(`${what}: count must be input, output or total, got "${value}"`);
  return undefined;
}

function readProvider(node: YNode | undefined): ProviderChoice | undefined {
  if (!node || node.isNull) return 'auto';
  const value = node.string('auto, openai, anthropic or gemini');
  if (value !== undefined && (PROVIDERS as readonly string[]).includes(value)) return value as ProviderChoice;
  if (value !== undefined) node.error(`tokenBudgets.provider must be one of ${PROVIDERS.join(', ')}, got "${value}"`);
  return undefined;
}

/** undefined: no fallback; null: invalid (reported). */
function readFallback(node: YNode | undefined): FallbackCost | undefined | null {
  if (!node || node.isNull) return undefined;
  if (node.isMap) {
    node.checkKeys(['input', 'output'], 'tokenBudgets.fallback');
    const input = node.get('input') ? readTokens(node.get('input'), 'tokenBudgets.fallback.input', node) : 0;
    const output = node.get('output') ? readTokens(node.get('output'), 'tokenBudgets.fallback.output', node) : 0;
    return input === undefined || output === undefined ? null : { input, output, total: input + output };
  }
  const value = node.number('tokenBudgets.fallback: tokens, or {input, output}');
  if (value === undefined) return null;
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_TOKENS) {
    node.error(`tokenBudgets.fallback must be a whole number from 0 to ${MAX_TOKENS}, got ${value}`);
    return null;
  }
  // One figure: charged to every budget, whatever it counts (input, output and total alike).
  return { input: value, output: value, total: value };
}

/** undefined: no reservation; null: invalid (reported). */
function readReservation(node: YNode | undefined): Reservation | undefined | null {
  if (!node || node.isNull) return undefined;
  if (!node.isMap) {
    node.error('tokenBudgets.reservation: expected {default: <tokens>, max: <tokens>}');
    return null;
  }
  node.checkKeys(['default', 'max'], 'tokenBudgets.reservation');
  const defaultTokens = readTokens(node.get('default'), 'tokenBudgets.reservation.default', node);
  const maxNode = node.get('max');
  const maxTokens = maxNode && !maxNode.isNull ? readTokens(maxNode, 'tokenBudgets.reservation.max', node) : undefined;
  if (defaultTokens === undefined || (maxNode && !maxNode.isNull && maxTokens === undefined)) return null;
  return maxTokens === undefined ? { defaultTokens } : { defaultTokens, maxTokens };
}
