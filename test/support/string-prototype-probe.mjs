// Run with --allow-natives-syntax --import tsx: prints whether String.prototype is in V8's fast mode after
// importing ioredis directly, after importing it through src/ratelimit/ioredis.ts, after the server's modules,
// and after one more String subclass. `%HasFastProperties` is compiled through new Function so no transpiler
// has to parse it.
const isFast = new Function('o', 'return %HasFastProperties(o)');
const states = [];
await import('ioredis');
states.push(isFast(String.prototype));
await import('../../src/ratelimit/ioredis.ts');
states.push(isFast(String.prototype));
await import('../../src/server/app.ts');
states.push(isFast(String.prototype));
class LaterSubclass extends String {}
states.push(isFast(String.prototype) && typeof LaterSubclass === 'function');
console.log(JSON.stringify(states));
