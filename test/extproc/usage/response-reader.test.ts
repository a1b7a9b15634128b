import { describe, expect, it } from 'vitest';
import { ResponseUsageReader, type ProviderChoice } from '../../../src/extproc/usage/response-reader.js';
import {
  anthropicJson,
  anthropicSse,
  geminiJson,
  geminiSse,
  openaiChatJson,
  openaiChatSse,
  openaiResponsesJson,
  openaiResponsesSse,
  type ProviderBody,
} from '../fixtures.js';

function read(body: ProviderBody, provider: ProviderChoice = 'auto', chunkSize = body.body.length, contentType: string | undefined = body.contentType) {
  const reader = new ResponseUsageReader({ contentType }, provider);
  const bytes = Buffer.from(body.body);
  for (let offset = 0; offset < bytes.length; offset += chunkSize) reader.write(bytes.subarray(offset, offset + chunkSize));
  return reader.finish();
}

const tokens = { input: 321, output: 123 };

const cases: Array<[string, ProviderBody, 'openai' | 'anthropic' | 'gemini', { input: number; output: number; total?: number }]> = [
  ['OpenAI chat JSON', openaiChatJson(tokens), 'openai', { ...tokens, total: 444 }],
  ['OpenAI chat SSE (include_usage)', openaiChatSse(tokens), 'openai', { ...tokens, total: 444 }],
  ['OpenAI responses JSON', openaiResponsesJson(tokens), 'openai', { ...tokens, total: 444 }],
  ['OpenAI responses SSE', openaiResponsesSse(tokens), 'openai', { ...tokens, total: 444 }],
  ['Anthropic JSON', anthropicJson(tokens), 'anthropic', tokens],
  ['Anthropic SSE', anthropicSse(tokens), 'anthropic', tokens],
  ['Gemini JSON', geminiJson(tokens), 'gemini', { ...tokens, total: 444 }],
  ['Gemini SSE', geminiSse(tokens), 'gemini', { ...tokens, total: 444 }],
];

describe('ResponseUsageReader: the three providers, JSON and SSE', () => {
  for (const [name, body, provider, expected] of cases) {
    for (const chunkSize of [1, 7, 4096]) {
      it(`${name}, detected, in ${chunkSize}-byte chunks`, () => {
        const reading = read(body, 'auto', chunkSize);
        expect(reading.usage).toEqual(expected);
        expect(reading.provider).toBe(provider);
      });
    }
    it(`${name}, provider given by policy`, () => {
      expect(read(body, provider).usage).toEqual(expected);
    });
    it(`${name}, without a content-type (sniffed)`, () => {
      expect(read(body, 'auto', 5, undefined).usage).toEqual(expected);
    });
  }

  it('Anthropic counts cache writes and reads as input', () => {
    expect(read(anthropicJson({ input: 10, output: 5 }, { creation: 100, read: 1000 })).usage).toEqual({ input: 1110, output: 5 });
  });

  it('a provider given by policy reads only its own format', () => {
    expect(read(geminiJson(tokens), 'openai').usage).toBeUndefined();
    expect(read(openaiChatJson(tokens), 'gemini').usage).toBeUndefined();
  });

  it('OpenAI SSE without include_usage carries no usage', () => {
    const reading = read(openaiChatSse(tokens, { includeUsage: false }));
    expect(reading.usage).toBeUndefined();
    expect(reading.reason).toBe('no-usage');
  });

  it('Anthropic SSE cut after message_start: the input and the first output token are what was seen', () => {
    expect(read(anthropicSse({ input: 50, output: 400 }, { stopAfter: 'message_start' })).usage).toEqual({ input: 50, output: 1 });
  });
});

describe('ResponseUsageReader: bodies without usable usage', () => {
  it('a body that is not JSON or SSE is not parsed', () => {
    const reading = read({ contentType: 'text/html', body: '<html>{"usage":{"prompt_tokens":5}}</html>' });
    expect(reading).toMatchObject({ usage: undefined, kind: 'other', reason: 'not-json' });
  });

  it('a compressed body is not parsed', () => {
    const reader = new ResponseUsageReader({ contentType: 'application/json', contentEncoding: 'gzip' }, 'auto');
    reader.write(Buffer.from(openaiChatJson(tokens).body));
    expect(reader.finish()).toMatchObject({ usage: undefined, kind: 'encoded', reason: 'encoded' });
  });

  it('malformed JSON yields no usage and no exception', () => {
    for (const body of ['{"usage": {"prompt_tokens": 12,, "completion_tokens"', '}}}]]]', '{"usage": {"prompt_tokens": "many"}}', '\u0000\u0001garbage', '{"usage":']) {
      expect(read({ contentType: 'application/json', body }).usage).toBeUndefined();
    }
  });

  it('truncated SSE: complete events count, the cut one does not', () => {
    const full = anthropicSse({ input: 70, output: 300 }).body;
    const cut = full.slice(0, full.indexOf('"output_tokens":300') + 10); // inside message_delta's data
    expect(read({ contentType: 'text/event-stream', body: cut }).usage).toEqual({ input: 70, output: 1 });
  });

  it('SSE with comments, CR line ends, unknown fields and multi-line data', () => {
    const body =
      ': keep-alive\r' +
      'id: 7\r' +
      'retry: 1000\r' +
      'data: {"choices":[],\r' +
      'data:  "usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}\r' +
      '\r' +
      'data: [DONE]\r\r';
    expect(read({ contentType: 'text/event-stream', body }, 'auto', 3).usage).toEqual({ input: 4, output: 6, total: 10 });
  });

  it('deeply nested JSON stops the scanner without exhausting memory', () => {
    const body = '['.repeat(100_000) + ']'.repeat(100_000);
    const reading = read({ contentType: 'application/json', body }, 'auto', 65_536);
    expect(reading).toMatchObject({ usage: undefined, reason: 'too-deep' });
  });

  it('a 10 MB JSON completion is read in 64 KiB chunks with its usage at the end', () => {
    const content = 'x'.repeat(10 * 1024 * 1024);
    const body = `{"id":"chatcmpl-big","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"${content}"}}],"usage":{"prompt_tokens":11,"completion_tokens":2621440,"total_tokens":2621451}}`;
    expect(read({ contentType: 'application/json', body }, 'auto', 65_536).usage).toEqual({ input: 11, output: 2621440, total: 2621451 });
  });

  it('keys that only look like usage (in nested objects, strings or escaped) are not taken', () => {
    const body = JSON.stringify({
      choices: [{ message: { content: '"usage":{"prompt_tokens":999}', usage: { prompt_tokens: 998 } } }],
      metadata: { usage: { prompt_tokens: 997 } },
    }).replace('"metadata"', '"meta\\u0064ata"');
    expect(read({ contentType: 'application/json', body }).usage).toBeUndefined();
  });
});
