import { describe, expect, it } from 'vitest';
import { SseUsageReader, type SseEvent } from '../../../src/extproc/usage/sse.js';
import { JsonFieldScanner, MAX_CAPTURE_BYTES } from '../../../src/extproc/usage/json-scanner.js';

function events(text: string, chunkSize: number): Array<{ name: string; fields: Record<string, unknown> }> {
  const out: Array<{ name: string; fields: Record<string, unknown> }> = [];
  const reader = new SseUsageReader(['usage', 'type'], (event: SseEvent) => out.push({ name: event.name, fields: Object.fromEntries(event.fields) }));
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; offset += chunkSize) reader.write(bytes.subarray(offset, offset + chunkSize));
  reader.end();
  return out;
}

describe('SseUsageReader', () => {
  const text = 'event: a\r\ndata: {"type":"x",\r\ndata: "usage":{"n":1}}\r\n\r\n: comment\n\ndata:{"usage":2}\n\nevent: b\ndata: [DONE]\n\n';
  for (const size of [1, 2, 3, 5, 1000]) {
    it(`splits events the same way in ${size}-byte chunks (CRLF split across chunks included)`, () => {
      expect(events(text, size)).toEqual([
        { name: 'a', fields: { type: 'x', usage: { n: 1 } } },
        { name: 'message', fields: { usage: 2 } },
        { name: 'b', fields: {} },
      ]);
    });
  }

  it('dispatches a last event without its blank line at the end of the body', () => {
    expect(events('data: {"usage":5}', 4)).toEqual([{ name: 'message', fields: { usage: 5 } }]);
  });

  it('keeps nothing of very long lines it does not need', () => {
    const long = `id: ${'x'.repeat(1_000_000)}\nevent: ${'y'.repeat(10_000)}\ndata: {"usage":1}\n\n`;
    const [event] = events(long, 8192);
    expect(event!.name).toHaveLength(64);
    expect(event!.fields).toEqual({ usage: 1 });
  });
});

describe('JsonFieldScanner', () => {
  it('captures strings, numbers and literals at the wanted paths, across chunk boundaries', () => {
    const scanner = new JsonFieldScanner(['a', 'b.c', 'd', 'e']);
    const text = '{"a":"q\\"uote\\\\","b":{"c":-12.5e3,"x":[1,{"c":2}]},"d":true,"e":null}';
    for (const ch of text) scanner.write(Buffer.from(ch));
    expect(Object.fromEntries(scanner.end())).toEqual({ a: 'q"uote\\', 'b.c': -12500, d: true, e: null });
  });

  it('the last value of a repeated path wins; a value at the very end is completed', () => {
    const scanner = new JsonFieldScanner(['n']);
    scanner.write(Buffer.from('{"n":1} {"n":2'));
    scanner.write(Buffer.from('3'));
    expect(scanner.end().get('n')).toBe(23);
  });

  it('drops a captured value larger than the cap and goes on', () => {
    const scanner = new JsonFieldScanner(['big', 'after']);
    scanner.write(Buffer.from(`{"big":"${'z'.repeat(MAX_CAPTURE_BYTES)}","after":{"ok":1}}`));
    const found = scanner.end();
    expect(found.has('big')).toBe(false);
    expect(found.get('after')).toEqual({ ok: 1 });
  });
});
