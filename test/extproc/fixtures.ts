// Response bodies in the shapes the three providers send (field names, nesting, event names, the order of
// events and where usage appears), written for these tests with chosen token counts. SSE bodies use the
// providers' framing: `event:` lines where the provider sends them, `data:` lines, blank-line separators.

export interface Tokens {
  readonly input: number;
  readonly output: number;
}

export interface ProviderBody {
  readonly contentType: string;
  readonly body: string;
}

export function openaiChatJson({ input, output }: Tokens): ProviderBody {
  return {
    contentType: 'application/json',
    body: JSON.stringify(
      {
        id: 'chatcmpl-test-0001',
        object: 'chat.completion',
        created: 1767225600,
        model: 'gpt-4.1-mini-2025-04-14',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'The capital of France is Paris.', refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage: {
          prompt_tokens: input,
          completion_tokens: output,
          total_tokens: input + output,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
        },
        service_tier: 'default',
        system_fingerprint: 'fp_test',
      },
      null,
      2,
    ),
  };
}

/** Chat Completions streaming with stream_options.include_usage: the last chunk has empty choices and the usage. */
export function openaiChatSse({ input, output }: Tokens, options: { includeUsage?: boolean } = {}): ProviderBody {
  const base = { id: 'chatcmpl-test-0002', object: 'chat.completion.chunk', created: 1767225600, model: 'gpt-4.1-mini-2025-04-14', system_fingerprint: 'fp_test' };
  const includeUsage = options.includeUsage ?? true;
  const usageField = includeUsage ? { usage: null } : {};
  const events: Array<Record<string, unknown>> = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], ...usageField },
    { ...base, choices: [{ index: 0, delta: { content: 'The capital' }, logprobs: null, finish_reason: null }], ...usageField },
    { ...base, choices: [{ index: 0, delta: { content: ' is Paris.' }, logprobs: null, finish_reason: null }], ...usageField },
    { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], ...usageField },
  ];
  if (includeUsage) {
    events.push({
      ...base,
      choices: [],
      usage: {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input + output,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
    });
  }
  const body = events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join('') + 'data: [DONE]\n\n';
  return { contentType: 'text/event-stream; charset=utf-8', body };
}

export function openaiResponsesJson({ input, output }: Tokens): ProviderBody {
  return {
    contentType: 'application/json',
    body: JSON.stringify({
      id: 'resp_test_0001',
      object: 'response',
      created_at: 1767225600,
      status: 'completed',
      model: 'gpt-4.1-mini-2025-04-14',
      output: [
        {
          type: 'message',
          id: 'msg_test_0001',
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text: 'Paris.', annotations: [] }],
        },
      ],
      usage: {
        input_tokens: input,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: output,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: input + output,
      },
    }),
  };
}

export function openaiResponsesSse({ input, output }: Tokens): ProviderBody {
  const response = { id: 'resp_test_0002', object: 'response', created_at: 1767225600, model: 'gpt-4.1-mini-2025-04-14' };
  const events: Array<[string, unknown]> = [
    ['response.created', { type: 'response.created', sequence_number: 0, response: { ...response, status: 'in_progress', output: [], usage: null } }],
    ['response.output_text.delta', { type: 'response.output_text.delta', sequence_number: 1, item_id: 'msg_test', output_index: 0, content_index: 0, delta: 'Paris.' }],
    [
      'response.completed',
      {
        type: 'response.completed',
        sequence_number: 2,
        response: {
          ...response,
          status: 'completed',
          output: [{ type: 'message', id: 'msg_test', role: 'assistant', content: [{ type: 'output_text', text: 'Paris.' }] }],
          usage: { input_tokens: input, input_tokens_details: { cached_tokens: 0 }, output_tokens: output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input + output },
        },
      },
    ],
  ];
  return { contentType: 'text/event-stream', body: events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`).join('') };
}

export function anthropicJson({ input, output }: Tokens, cache: { creation?: number; read?: number } = {}): ProviderBody {
  return {
    contentType: 'application/json',
    body: JSON.stringify({
      id: 'msg_test_0001',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [{ type: 'text', text: 'Paris is the capital of France.' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: input,
        cache_creation_input_tokens: cache.creation ?? 0,
        cache_read_input_tokens: cache.read ?? 0,
        output_tokens: output,
        service_tier: 'standard',
      },
    }),
  };
}

/** Messages streaming: message_start carries input (and 1 output token), message_delta the cumulative output. */
export function anthropicSse({ input, output }: Tokens, options: { stopAfter?: 'message_start' | 'content' } = {}): ProviderBody {
  const events: Array<[string, unknown]> = [
    [
      'message_start',
      {
        type: 'message_start',
        message: {
          id: 'msg_test_0002',
          type: 'message',
          role: 'assistant',
          model: 'claude-sonnet-4-5',
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1, service_tier: 'standard' },
        },
      },
    ],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['ping', { type: 'ping' }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Paris is' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' the capital.' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: output } }],
    ['message_stop', { type: 'message_stop' }],
  ];
  const cut = options.stopAfter === 'message_start' ? 1 : options.stopAfter === 'content' ? 5 : events.length;
  return {
    contentType: 'text/event-stream; charset=utf-8',
    body: events.slice(0, cut).map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`).join(''),
  };
}

export function geminiJson({ input, output }: Tokens): ProviderBody {
  return {
    contentType: 'application/json; charset=UTF-8',
    body: JSON.stringify(
      {
        candidates: [
          {
            content: { parts: [{ text: 'Paris is the capital of France.' }], role: 'model' },
            finishReason: 'STOP',
            avgLogprobs: -0.05,
          },
        ],
        usageMetadata: {
          promptTokenCount: input,
          candidatesTokenCount: output,
          totalTokenCount: input + output,
          promptTokensDetails: [{ modality: 'TEXT', tokenCount: input }],
          candidatesTokensDetails: [{ modality: 'TEXT', tokenCount: output }],
        },
        modelVersion: 'gemini-2.5-flash',
        responseId: 'test-response-0001',
      },
      null,
      2,
    ),
  };
}

/** streamGenerateContent?alt=sse: each chunk carries usageMetadata with the counts so far (CRLF-framed). */
export function geminiSse({ input, output }: Tokens): ProviderBody {
  const chunk = (text: string, soFar: number, last: boolean) => ({
    candidates: [{ content: { parts: [{ text }], role: 'model' }, ...(last ? { finishReason: 'STOP' } : {}), index: 0 }],
    usageMetadata: { promptTokenCount: input, candidatesTokenCount: soFar, totalTokenCount: input + soFar, promptTokensDetails: [{ modality: 'TEXT', tokenCount: input }] },
    modelVersion: 'gemini-2.5-flash',
    responseId: 'test-response-0002',
  });
  const half = Math.floor(output / 2);
  const events = [chunk('Paris is', half, false), chunk(' the capital of France.', output, true)];
  return { contentType: 'text/event-stream', body: events.map((event) => `data: ${JSON.stringify(event)}\r\n\r\n`).join('') };
}
