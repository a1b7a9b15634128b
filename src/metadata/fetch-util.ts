// Small helpers around Node's fetch shared by the http and vault sources.

/** The response body as text, refusing bodies larger than `maxBytes` (a backend cannot fill our memory). */
export async function readBodyLimited(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new Error(`response larger than ${maxBytes} bytes`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new Error(`response larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A short, secret-free description of why a call failed: a timeout, an abort at the deadline, or the
 * socket error code (ECONNREFUSED, ...). Never the URL or the message of an arbitrary error.
 */
export function describeFetchError(err: unknown): string {
  const e = err as { name?: unknown; cause?: { code?: unknown; name?: unknown } } | undefined;
  if (e?.name === 'TimeoutError') return 'timed out';
  if (e?.name === 'AbortError') return 'no answer within the deadline';
  const code = e?.cause?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code;
  if (e?.cause?.name === 'TimeoutError') return 'timed out';
  if (err instanceof Error && /larger than/.test(err.message)) return err.message;
  return 'request failed';
}
