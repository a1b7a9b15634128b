// The one CEL environment every policy expression is checked and compiled against. Built once per process.
import { Environment } from '@marcbachmann/cel-js';
import { registerEnvoyLibrary } from './envoy-library.js';
import { registerExtensions } from './extensions/index.js';

/** Typed views handed to CEL. Classes, so field access is type-checked at load ("request.methd" fails). */
export class CelRequest {
  constructor(
    readonly id: string,
    readonly time: Date,
    readonly method: string,
    readonly scheme: string,
    readonly host: string,
    readonly port: bigint,
    readonly path: string,
    readonly url_path: string,
    readonly query: Readonly<Record<string, string>>,
    readonly headers: Readonly<Record<string, string>>,
    readonly body: string,
    readonly size: bigint,
    readonly protocol: string,
  ) {}
}

export class CelPeer {
  constructor(
    readonly address: string,
    readonly port: bigint,
    readonly principal: string,
    readonly service: string,
    readonly labels: Readonly<Record<string, string>>,
    readonly certificate: string,
  ) {}
}

export class CelAuth {
  constructor(
    readonly identity: unknown,
    readonly metadata: Record<string, unknown>,
    readonly authorization: Record<string, unknown>,
  ) {}
}

/** Variables every expression may use, with their CEL types (docs/cel.md lists them). */
export const CEL_VARIABLES: Readonly<Record<string, string>> = {
  request: 'egress.Request',
  source: 'egress.Peer',
  destination: 'egress.Peer',
  context: 'map<string, string>',
  metadata: 'map<string, dyn>',
  auth: 'egress.Auth',
  variables: 'map<string, dyn>',
  object: 'map<string, dyn>',
};

export const CEL_OPTIONS = { enableOptionalTypes: true, homogeneousAggregateLiterals: false } as const;

/** A base environment with our libraries but no variables (the conformance runner adds its own). */
export function newBaseEnvironment(): Environment {
  const env = new Environment(CEL_OPTIONS);
  registerExtensions(env);
  registerEnvoyLibrary(env);
  return env;
}

function buildPolicyEnvironment(): Environment {
  const env = newBaseEnvironment();
  env
    .registerType('egress.Request', {
      ctor: CelRequest,
      fields: {
        id: 'string',
        time: 'dyn',
        method: 'string',
        scheme: 'string',
        host: 'string',
        port: 'int',
        path: 'string',
        url_path: 'string',
        query: 'map<string, string>',
        headers: 'map<string, string>',
        body: 'string',
        size: 'int',
        protocol: 'string',
      },
    })
    .registerType('egress.Peer', {
      ctor: CelPeer,
      fields: {
        address: 'string',
        port: 'int',
        principal: 'string',
        service: 'string',
        labels: 'map<string, string>',
        certificate: 'string',
      },
    })
    .registerType('egress.Auth', {
      ctor: CelAuth,
      fields: { identity: 'dyn', metadata: 'map<string, dyn>', authorization: 'map<string, dyn>' },
    });
  for (const [name, type] of Object.entries(CEL_VARIABLES)) env.registerVariable(name, type);
  return env;
}

let shared: Environment | undefined;

/** The shared policy environment (lazily built; registering after first use is not allowed). */
export function policyEnvironment(): Environment {
  shared ??= buildPolicyEnvironment();
  return shared;
}
