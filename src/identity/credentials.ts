// Where a method finds its credential: Kuadrant's `credentials` block.
import type { RequestView } from '../envoy/request-view.js';
import type { YNode } from '../policy/yaml-node.js';

export interface CredentialSource {
  readonly describe: string;
  /** The Authorization scheme (the header prefix) when the credential travels in that header. */
  readonly scheme?: string;
  extract(view: RequestView): string | undefined;
}

/** Realm of every WWW-Authenticate challenge we send. */
export const REALM = 'egress-authz';

/**
 * The WWW-Authenticate challenge for a method reading `source`: the Authorization scheme it expects
 * (`defaultScheme` when the credential travels elsewhere, e.g. in a custom header).
 */
export function challengeFor(source: CredentialSource, defaultScheme: string): string {
  return `${source.scheme || defaultScheme} realm="${REALM}"`;
}

export function authorizationHeader(prefix = 'Bearer'): CredentialSource {
  const lower = prefix.toLowerCase();
  return {
    describe: `authorization header (${prefix})`,
    scheme: prefix,
    extract(view) {
      const h = view.headers['authorization'];
      if (!h) return undefined;
      if (!prefix) return h.trim() || undefined;
      if (h.length <= lower.length + 1 || h[lower.length] !== ' ') return undefined;
      // The scheme is case-insensitive; as written in the policy (nearly always) without copying anything.
      if (!h.startsWith(prefix) && h.slice(0, lower.length).toLowerCase() !== lower) return undefined;
      return h.slice(lower.length + 1).trim() || undefined;
    },
  };
}

function customHeader(name: string, prefix: string): CredentialSource {
  const key = name.toLowerCase();
  return {
    describe: `header ${name}`,
    extract(view) {
      const v = view.headers[key];
      if (!v) return undefined;
      if (prefix && v.startsWith(prefix + ' ')) return v.slice(prefix.length + 1).trim() || undefined;
      return prefix ? undefined : v.trim() || undefined;
    },
  };
}

function queryString(name: string): CredentialSource {
  return { describe: `query parameter ${name}`, extract: (view) => view.query[name] || undefined };
}

function cookie(name: string): CredentialSource {
  return {
    describe: `cookie ${name}`,
    extract(view) {
      const c = view.headers['cookie'];
      if (!c) return undefined;
      for (const part of c.split(';')) {
        const eq = part.indexOf('=');
        if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
      }
      return undefined;
    },
  };
}

/** Reads `credentials:`; absent → `Authorization: Bearer <token>`. */
export function readCredentials(node: YNode | undefined): CredentialSource {
  if (!node || node.isNull) return authorizationHeader('Bearer');
  node.checkKeys(['authorizationHeader', 'customHeader', 'queryString', 'cookie'], 'credentials');
  const entries = node.entries('credentials');
  if (entries.length !== 1) {
    node.error('credentials: give exactly one of authorizationHeader, customHeader, queryString, cookie');
    return authorizationHeader('Bearer');
  }
  const [kind, cfg] = entries[0]!;
  switch (kind) {
    case 'authorizationHeader': {
      cfg.checkKeys(['prefix'], 'credentials.authorizationHeader');
      return authorizationHeader(cfg.get('prefix')?.string('prefix') ?? 'Bearer');
    }
    case 'customHeader': {
      cfg.checkKeys(['name', 'prefix'], 'credentials.customHeader');
      const name = cfg.get('name')?.string('header name');
      if (!name) cfg.error('credentials.customHeader.name is required');
      return customHeader(name ?? 'x-api-key', cfg.get('prefix')?.string('prefix') ?? '');
    }
    case 'queryString': {
      cfg.checkKeys(['name'], 'credentials.queryString');
      const name = cfg.get('name')?.string('parameter name');
      if (!name) cfg.error('credentials.queryString.name is required');
      return queryString(name ?? 'api_key');
    }
    default: {
      cfg.checkKeys(['name'], 'credentials.cookie');
      const name = cfg.get('name')?.string('cookie name');
      if (!name) cfg.error('credentials.cookie.name is required');
      return cookie(name ?? 'token');
    }
  }
}
