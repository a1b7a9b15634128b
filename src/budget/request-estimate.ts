// The output-token cap a request asks for, read from its JSON body when Envoy sends the body with the
// Check (ext_authz `with_request_body`): OpenAI `max_completion_tokens` / `max_tokens` (chat) and
// `max_output_tokens` (responses), Anthropic `max_tokens`, Gemini `generationConfig.maxOutputTokens`.

/** Bodies larger than this are not parsed at Check (the reservation then uses its default). */
export const MAX_ESTIMATE_BODY_BYTES = 1024 * 1024;

export function requestedMaxTokens(body: string): number | undefined {
  if (body.length === 0 || body.length > MAX_ESTIMATE_BODY_BYTES) return undefined;
  const start = body.trimStart();
  if (!start.startsWith('{')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined; // a truncated body (max_request_bytes) or not JSON
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const request = parsed as Record<string, unknown>;
  const generationConfig = request.generationConfig;
  const candidates = [
    request.max_completion_tokens,
    request.max_tokens,
    request.max_output_tokens,
    typeof generationConfig === 'object' && generationConfig !== null
      ? (generationConfig as Record<string, unknown>).maxOutputTokens
      : undefined,
  ];
  for (const value of candidates) {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  }
  return undefined;
}
