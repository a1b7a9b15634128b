import { describe, expect, it } from 'vitest';
import { jsToStruct } from '../../src/envoy/codec.js';
import { deserializeProcessingRequest, serializeProcessingRequest, type ProtoProcessingRequest } from '../../src/extproc/codec.js';
import { EXT_AUTHZ_NAMESPACE, GRANT_METADATA_KEY, grantFromMetadata, grantToMetadata, readGrant, type BudgetGrant } from '../../src/budget/grant.js';

const grant: BudgetGrant = {
  policy: 'team-a/openai',
  identity: 'spiffe://cluster.local/ns/team-a/sa/app',
  provider: 'anthropic',
  fallback: { input: 1, output: 2, total: 3 },
  budgets: [
    { name: 'hourly', key: 'b'.repeat(64), limit: 100_000, windowMs: 3_600_000, count: 'total', reserved: 512, windowStartMs: 1_767_225_600_123 },
    { name: 'prompt', key: 'c'.repeat(64), limit: 5, windowMs: 1000, count: 'input', reserved: 0 },
  ],
};

/** Through the wire the way Envoy carries it: CheckResponse Struct → filter metadata → ProcessingRequest. */
function throughEnvoy(metadata: Record<string, unknown>): ProtoProcessingRequest {
  const bytes = serializeProcessingRequest({
    responseHeaders: {},
    metadataContext: { filterMetadata: { [EXT_AUTHZ_NAMESPACE]: jsToStruct(metadata) } },
  });
  return deserializeProcessingRequest(bytes) as ProtoProcessingRequest;
}

describe('budget grant', () => {
  it('survives the trip through Envoy metadata unchanged (numbers stay numbers)', () => {
    const request = throughEnvoy({ [GRANT_METADATA_KEY]: grantToMetadata(grant), other: 'kept apart' });
    expect(readGrant(request.metadataContext)).toEqual(grant);
  });

  it('is absent without the namespace or the key', () => {
    expect(readGrant(undefined)).toBeUndefined();
    expect(readGrant(throughEnvoy({ unrelated: true }).metadataContext)).toBeUndefined();
  });

  it('rejects grants that are not exactly the expected shape', () => {
    const valid = grantToMetadata(grant);
    const broken: unknown[] = [
      { ...valid, v: 2 },
      { ...valid, provider: 'mistral' },
      { ...valid, budgets: [] },
      { ...valid, budgets: [{ ...(valid.budgets as object[])[0], key: 'not-hex' }] },
      { ...valid, budgets: [{ ...(valid.budgets as object[])[0], count: 'cached' }] },
      { ...valid, budgets: [{ ...(valid.budgets as object[])[0], limit: -1 }] },
      { ...valid, budgets: [{ ...(valid.budgets as object[])[0], window_ms: 0 }] },
      { ...valid, fallback: { input: 1 } },
      { ...valid, budgets: Array.from({ length: 33 }, () => (valid.budgets as object[])[0]) },
      'a string',
    ];
    for (const value of broken) expect(grantFromMetadata(value)).toBeUndefined();
  });
});
