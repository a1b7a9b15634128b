/**
 * Replaces a receiver method that @marcbachmann/cel-js 8.0.0 already defines (for example
 * `string.indexOf(string)`, which counts UTF-16 units where CEL counts code points).
 *
 * cel-js refuses a second overload with the same receiver, name and arity, and always
 * dispatches to the first overload it registered, so a plain registerFunction cannot replace a
 * built-in. Macros are the documented way to take over a call: cel-js looks a macro up by
 * method name and argument count before it resolves overloads (as cel-go does for its
 * macros), so a macro registered for `indexOf` with one argument sees every `x.indexOf(y)`.
 * The macro is declared on a private receiver type, which keeps registration from clashing
 * with the built-in overload; its typeCheck and evaluate hooks then do the overload
 * resolution for the string receiver themselves.
 *
 * Limitation: a macro needs at least one argument (cel-js marks a declaration as a macro by an
 * `ast` parameter), so zero-argument built-ins such as `lowerAscii()` cannot be replaced.
 */
import { EvaluationError, type ASTNode, type Environment } from '@marcbachmann/cel-js';
import { celTypeOf } from './values.js';

/** What cel-js passes to a macro expander (see lib/parser.js #expandMacro). */
interface MacroExpansion {
  readonly ast: MacroNode;
  readonly args: readonly MacroNode[];
  readonly receiver: MacroNode | null;
}

/** A cel-js AST node, with the members of its class that ASTNode's declaration leaves out. */
type MacroNode = ASTNode & {
  readonly maybeAsync: boolean;
  setMeta(key: string, value: unknown): unknown;
};

/** The parts of a cel-js type declaration this module reads. */
interface CheckedType {
  readonly kind: string;
  readonly name: string;
}

/** The parts of cel-js's type checker a macro's typeCheck hook may use (see lib/optional.js). */
interface MacroTypeChecker {
  check(node: MacroNode, ctx: unknown): CheckedType;
  getType(name: string): CheckedType;
  createError(code: string, message: string, node: MacroNode): Error;
}

/** The part of cel-js's evaluator a macro's evaluate hook uses. */
interface MacroEvaluator {
  run(node: MacroNode, ctx: unknown): unknown;
}

/** One overload of a replaced receiver method. Types are CEL type names ('string', 'int'). */
export interface ReceiverOverload {
  readonly receiver: string;
  readonly args: readonly string[];
  readonly returns: string;
  readonly handler: (receiver: never, ...args: never[]) => unknown;
}

interface ReplacedCall {
  readonly ast: MacroNode;
  readonly receiver: MacroNode;
  readonly args: readonly MacroNode[];
  typeCheck(checker: MacroTypeChecker, call: ReplacedCall, ctx: unknown): CheckedType;
  evaluate(evaluator: MacroEvaluator, call: ReplacedCall, ctx: unknown): unknown;
}

/** Private receiver type the replacing macros are declared on (never seen by expressions). */
class ReplacedMethodReceiver {}
const RECEIVER_TYPE = 'egressauthz.ReplacedMethodReceiver';
const registeredEnvironments = new WeakSet<Environment>();

function matchesStatically(type: CheckedType, expected: string): boolean {
  return type.kind === 'dyn' || type.name === expected;
}

function noMatchingOverload(name: string, receiverType: string, argTypes: readonly string[]): string {
  return `found no matching overload for '${receiverType}.${name}(${argTypes.join(', ')})'`;
}

/**
 * Makes `overloads` the only implementation of the receiver method `name` for each arity they
 * cover. All overloads of one arity must share their return type.
 */
export function replaceReceiverMethod(env: Environment, name: string, overloads: readonly ReceiverOverload[]): void {
  if (!registeredEnvironments.has(env)) {
    env.registerType(RECEIVER_TYPE, ReplacedMethodReceiver);
    registeredEnvironments.add(env);
  }

  const arities = new Set(overloads.map((o) => o.args.length));
  for (const arity of arities) {
    const ofArity = overloads.filter((o) => o.args.length === arity);
    const returns = ofArity[0]?.returns ?? 'dyn';
    if (arity === 0) throw new Error(`cannot replace zero-argument method ${name}(): cel-js macros need an argument`);
    if (ofArity.some((o) => o.returns !== returns)) throw new Error(`overloads of ${name}/${arity} must share a return type`);

    const signature = `${RECEIVER_TYPE}.${name}(${Array.from({ length: arity }, () => 'ast').join(', ')}): ${returns}`;
    env.registerFunction(signature, (expansion: MacroExpansion): ReplacedCall => {
      const receiver = expansion.receiver;
      // Only receiver calls reach this macro (it is declared with a receiver type).
      if (receiver === null) throw new Error(`${name} macro expanded without a receiver`);
      return {
        ast: expansion.ast,
        receiver,
        args: expansion.args,
        typeCheck: (checker, call, ctx) => {
          const receiverType = checker.check(call.receiver, ctx);
          const argTypes = call.args.map((arg) => checker.check(arg, ctx));
          const found = ofArity.some(
            (o) => matchesStatically(receiverType, o.receiver) && o.args.every((t, i) => argTypes[i] !== undefined && matchesStatically(argTypes[i], t)),
          );
          if (!found) {
            throw checker.createError(
              'no_matching_overload',
              noMatchingOverload(name, receiverType.name, argTypes.map((t) => t.name)),
              call.ast,
            );
          }
          // Same bookkeeping cel-js does for its own macros: a call whose operands are all
          // synchronous is synchronous, which lets the parent nodes skip Promise handling.
          if (!call.receiver.maybeAsync && !call.args.some((arg) => arg.maybeAsync)) call.ast.setMeta('async', false);
          return checker.getType(returns);
        },
        evaluate: (evaluator, call, ctx) => {
          const operands = [call.receiver, ...call.args].map((node) => evaluator.run(node, ctx));
          if (operands.some((v) => v instanceof Promise)) {
            return Promise.all(operands).then((resolved) => dispatch(name, ofArity, resolved, call.ast));
          }
          return dispatch(name, ofArity, operands, call.ast);
        },
      };
    });
  }
}

function dispatch(name: string, overloads: readonly ReceiverOverload[], operands: readonly unknown[], ast: MacroNode): unknown {
  const runtimeTypes = operands.map(celTypeOf);
  const [receiverType, ...argTypes] = runtimeTypes;
  const overload = overloads.find((o) => o.receiver === receiverType && o.args.every((t, i) => argTypes[i] === t));
  if (!overload) throw new EvaluationError(noMatchingOverload(name, receiverType ?? 'unknown', argTypes), ast);
  const [receiver, ...args] = operands;
  try {
    return (overload.handler as (receiver: unknown, ...args: unknown[]) => unknown)(receiver, ...args);
  } catch (error) {
    if (error instanceof EvaluationError) throw error.withAst(ast);
    throw error;
  }
}
