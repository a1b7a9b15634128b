// stdout batching: the lines of one event-loop turn leave in one write at its end; flushes and big batches
// do not wait; nothing is lost or reordered.
import { describe, expect, it } from 'vitest';
import { TurnBatchedStream, type LineSink } from '../../src/observability/logger.js';

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

describe('TurnBatchedStream', () => {
  it('writes the lines of one turn once, at the end of the turn, in order', async () => {
    const { target, writes } = sink();
    const stream = new TurnBatchedStream(target);
    stream.write('a\n');
    stream.write('b\n');
    stream.write('c\n');
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual(['a\nb\nc\n']);
    stream.write('d\n');
    await nextTurn();
    expect(writes).toEqual(['a\nb\nc\n', 'd\n']);
  });

  it('flush and flushSync empty the batch before flushing the destination', () => {
    const { target, writes, flushes } = sink();
    const stream = new TurnBatchedStream(target);
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

  it('does not hold more than 64 KiB: a large batch is written at once', () => {
    const { target, writes } = sink();
    const stream = new TurnBatchedStream(target);
    const line = `${'z'.repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) stream.write(line);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toHaveLength(64 * 1024);
  });

  it('renders deferred lines only when the batch is written, in their place among the plain lines', async () => {
    const { target, writes } = sink();
    const stream = new TurnBatchedStream(target);
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
    expect(writes).toEqual(['a\nb\nc\nd\n']);
    expect(renders).toBe(2);
    stream.writeDeferred(deferred('e\n'));
    stream.flushSync();
    expect(writes).toEqual(['a\nb\nc\nd\n', 'e\n']);
  });

  it('counts deferred lines toward the 64 KiB bound', () => {
    const { target, writes } = sink();
    const stream = new TurnBatchedStream(target);
    for (let i = 0; i < 127; i++) stream.writeDeferred({ render: () => 'x\n' });
    expect(writes).toHaveLength(0);
    stream.writeDeferred({ render: () => 'x\n' });
    expect(writes).toEqual(['x\n'.repeat(128)]);
  });
});
