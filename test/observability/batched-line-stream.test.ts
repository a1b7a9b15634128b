// stdout batching: lines leave in ~16 KiB writes or within 20 ms; deferred lines are rendered at the end of
// the turn that logged them; flushes and process exit do not wait; nothing is lost or reordered.
import { describe, expect, it } from 'vitest';
import { BatchedLineStream, type LineSink } from '../../src/observability/logger.js';

function sink() {
  const writes: string[] = [];
  let flushes = 0;
  const target: LineSink = {
    write: (data: string) => writes.push(data),
    flush: (cb) => {
      flushes++;
      cb?.();
    },
    flushSync: () => {
      flushes++;
    },
  };
  return { target, writes, flushes: () => flushes };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
const after = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('BatchedLineStream', () => {
  it('holds small batches up to 20 ms, then writes them once, in order', async () => {
    const { target, writes } = sink();
    const stream = new BatchedLineStream(target);
    stream.write('a\n');
    stream.write('b\n');
    await nextTurn();
    stream.write('c\n');
    await nextTurn();
    expect(writes).toEqual([]);
    await after(40);
    expect(writes).toEqual(['a\nb\nc\n']);
    stream.write('d\n');
    await after(40);
    expect(writes).toEqual(['a\nb\nc\n', 'd\n']);
  });

  it('writes at the end of the turn once 16 KiB are waiting', async () => {
    const { target, writes } = sink();
    const stream = new BatchedLineStream(target);
    const line = `${'z'.repeat(1023)}\n`;
    for (let i = 0; i < 15; i++) stream.write(line);
    await nextTurn();
    expect(writes).toEqual([]);
    stream.write(line);
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual([line.repeat(16)]);
  });

  it('flush and flushSync write everything before flushing the destination', () => {
    const { target, writes, flushes } = sink();
    const stream = new BatchedLineStream(target);
    stream.write('x\n');
    stream.flushSync();
    expect(writes).toEqual(['x\n']);
    stream.write('y\n');
    let flushed = false;
    stream.flush(() => (flushed = true));
    expect(writes).toEqual(['x\n', 'y\n']);
    expect(flushed).toBe(true);
    expect(flushes()).toBe(2);
  });

  it('renders deferred lines at the end of their turn, in their place among the plain lines', async () => {
    const { target, writes } = sink();
    const stream = new BatchedLineStream(target);
    let renders = 0;
    const deferred = (text: string) => ({
      render: () => {
        renders++;
        return text;
      },
    });
    stream.write('a\n');
    stream.writeDeferred(deferred('b\n'));
    stream.write('c\n');
    stream.writeDeferred(deferred('d\n'));
    expect(renders).toBe(0);
    await nextTurn();
    expect(renders).toBe(2);
    stream.writeDeferred(deferred('e\n'));
    stream.flushSync();
    expect(renders).toBe(3);
    expect(writes).toEqual(['a\nb\nc\nd\ne\n']);
  });
});
