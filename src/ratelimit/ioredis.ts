// ioredis, imported through this module only, so that importing it leaves String.prototype in V8's fast mode.
//
// ioredis defines `class VerbatimString extends String` (its RESP3 decoder) when it is imported. Giving
// String.prototype a new dependant puts it into dictionary mode ("setup mode" for a prototype being built),
// and V8 makes a prototype fast again only when a property lookup through an *object* reaches it: method calls
// on primitive strings never do. Until then every `charCodeAt`, `slice`, `indexOf`, `startsWith` or
// `toLowerCase` on a string, in every module of the process, is a dictionary lookup instead of a constant the
// optimizer folds in: 8–10 ns more per call, and a `charCodeAt` loop 5× slower (docs/performance.md,
// "String.prototype"). One lookup through an object whose prototype is String.prototype restores it, and V8
// then keeps it fast (a later subclass no longer sends it back). Harmless when it is already fast.
import { Redis } from 'ioredis';

interface StringLike {
  readonly charAt: unknown;
}

/** Puts String.prototype back into V8's fast mode (exported for its test). */
export function keepStringPrototypeFast(): void {
  function Probe(): void {}
  Probe.prototype = String.prototype;
  const probe = new (Probe as unknown as new () => StringLike)();
  // A plain property load site: its inline-cache miss is what walks the prototype chain and makes it fast. V8
  // gives a function its inline caches only after a few calls, hence the repeats.
  const load = (o: StringLike): unknown => o.charAt;
  for (let i = 0; i < 64; i++) load(probe);
}

// ES modules evaluate their imports first: ioredis has defined its subclass by now.
keepStringPrototypeFast();

export { Redis };
