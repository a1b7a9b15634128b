// The Envoy / Istio / kgateway wiring users copy (deploy/envoy/ext-proc-example.yaml and the snippets in
// docs/token-budgets.md): ext_proc must reach the same egress-authz gRPC port as ext_authz, stream response
// bodies, and forward the ext_authz metadata namespace the grant is read from.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import protobuf from 'protobufjs';
import { PROTO_DIR } from '../../src/envoy/codec.js';
import { EXT_AUTHZ_NAMESPACE } from '../../src/budget/grant.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { Services } from '../../src/pipeline/services.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { makePolicyDir } from '../support/test-server.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const modes = protobuf.loadSync(path.join(PROTO_DIR, 'ext_proc_processing_mode.proto'));
const HEADER_MODES = Object.keys(modes.lookupEnum('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.HeaderSendMode').values);
const BODY_MODES = Object.keys(modes.lookupEnum('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode').values);

type Json = Record<string, unknown>;
const at = (value: unknown, ...keys: string[]): unknown =>
  keys.reduce<unknown>((current, key) => (current as Json | undefined)?.[key], value);

function expectProcessingMode(mode: Json, names: { header: (k: string) => string; body: (k: string) => string }): void {
  expect(mode[names.header('request')]).toBe('SKIP');
  expect(mode[names.header('response')]).toBe('SEND');
  expect(mode[names.body('response')]).toBe('STREAMED');
  for (const [key, value] of Object.entries(mode)) {
    expect(/body/i.test(key) ? BODY_MODES : HEADER_MODES, key).toContain(value);
  }
}

const snake = { header: (k: string) => `${k}_header_mode`, body: (k: string) => `${k}_body_mode` };
const camel = { header: (k: string) => `${k}HeaderMode`, body: (k: string) => `${k}BodyMode` };

describe('deploy/envoy/ext-proc-example.yaml', () => {
  const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'deploy/envoy/ext-proc-example.yaml'), 'utf8')) as Json;
  const manager = at(config, 'static_resources', 'listeners') as Json[];
  const filters = at((at(manager[0], 'filter_chains') as Json[])[0], 'filters') as Json[];
  const httpFilters = at(filters[0], 'typed_config', 'http_filters') as Json[];

  it('runs ext_authz (fail closed), then ext_proc (fail open), then the router', () => {
    expect(httpFilters.map((f) => f.name)).toEqual(['envoy.filters.http.ext_authz', 'envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
    expect(at(httpFilters[0], 'typed_config', 'failure_mode_allow')).toBe(false);
    expect(at(httpFilters[1], 'typed_config', 'failure_mode_allow')).toBe(true);
  });

  it('sends ext_proc to the same cluster as ext_authz, with the grant namespace forwarded and bodies streamed', () => {
    const extProc = at(httpFilters[1], 'typed_config') as Json;
    expect(at(extProc, 'grpc_service', 'envoy_grpc', 'cluster_name')).toBe(at(httpFilters[0], 'typed_config', 'grpc_service', 'envoy_grpc', 'cluster_name'));
    expect(at(extProc, 'metadata_options', 'forwarding_namespaces', 'untyped')).toEqual([EXT_AUTHZ_NAMESPACE]);
    expectProcessingMode(at(extProc, 'processing_mode') as Json, snake);
    expect(at(extProc, '@type')).toBe('type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor');
  });
});

describe('docs/token-budgets.md snippets', () => {
  const text = fs.readFileSync(path.join(ROOT, 'docs/token-budgets.md'), 'utf8');
  const documents = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => YAML.parseAllDocuments(m[1]!).map((d) => d.toJS() as Json));
  const byKind = (kind: string) => documents.filter((d) => d.kind === kind);

  it('the policy example loads as written', () => {
    const policy = byKind('EgressPolicy');
    expect(policy).toHaveLength(1);
    const dir = makePolicyDir({ 'example.yaml': YAML.stringify(policy[0]) });
    const result = loadPolicyDirectory(dir, new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics()));
    expect(result.ok ? [] : result.diagnostics.map((d) => d.message)).toEqual([]);
  });

  it('Istio: an ext_proc filter before the router, to the egress-authz gRPC port, forwarding the grant', () => {
    const [filter] = byKind('EnvoyFilter');
    const patch = (at(filter, 'spec', 'configPatches') as Json[])[0]!;
    expect(at(patch, 'patch', 'operation')).toBe('INSERT_BEFORE');
    expect(at(patch, 'match', 'listener', 'filterChain', 'filter', 'subFilter', 'name')).toBe('envoy.filters.http.router');
    const typed = at(patch, 'patch', 'value', 'typed_config') as Json;
    expect(at(typed, 'grpc_service', 'envoy_grpc', 'cluster_name')).toBe('outbound|50051||egress-authz.egress-authz.svc.cluster.local');
    expect(at(typed, 'metadata_options', 'forwarding_namespaces', 'untyped')).toEqual([EXT_AUTHZ_NAMESPACE]);
    expectProcessingMode(at(typed, 'processing_mode') as Json, snake);
  });

  it('kgateway: an ExtProc GatewayExtension the TrafficPolicy attaches, forwarding the grant', () => {
    const [extension] = byKind('GatewayExtension');
    expect(at(extension, 'spec', 'type')).toBe('ExtProc');
    expect(at(extension, 'spec', 'extProc', 'grpcService', 'backendRef')).toEqual({ name: 'egress-authz', namespace: 'egress-authz', port: 50051 });
    expect(at(extension, 'spec', 'extProc', 'metadataOptions', 'forwarding', 'untyped')).toEqual([EXT_AUTHZ_NAMESPACE]);
    expectProcessingMode(at(extension, 'spec', 'extProc', 'processingMode') as Json, camel);
    const [policy] = byKind('TrafficPolicy');
    expect(at(policy, 'spec', 'extProc', 'extensionRef', 'name')).toBe(at(extension, 'metadata', 'name'));
    expect(at(policy, 'spec', 'extAuth', 'extensionRef', 'name')).toBe('egress-authz');
  });
});
