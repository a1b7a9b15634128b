// `spiffe`: identity from the mTLS peer principal Envoy reports (source.principal), e.g.
// spiffe://cluster.local/ns/team-a/sa/client. Needs no token; trust domains are allow-listed.
import type { IdentityMethodFactory } from './method.js';

const SPIFFE_K8S = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

export const spiffeMethod: IdentityMethodFactory = ({ config }) => {
  config.checkKeys(['trustDomains'], 'spiffe');
  const trustDomains = config.get('trustDomains')?.stringList('trustDomains: a list of trust domains') ?? [];
  return {
    kind: 'spiffe',
    challenge: '',
    authenticate(ctx) {
      const principal = ctx.view.source.principal;
      if (!principal) return { kind: 'missing' };
      if (!principal.startsWith('spiffe://')) return { kind: 'invalid', reason: 'peer principal is not a SPIFFE ID' };
      const m = SPIFFE_K8S.exec(principal);
      const trustDomain = m?.[1] ?? principal.slice('spiffe://'.length).split('/')[0] ?? '';
      if (trustDomains.length > 0 && !trustDomains.includes(trustDomain)) {
        return { kind: 'invalid', reason: 'SPIFFE trust domain not allowed' };
      }
      const namespace = m?.[2] ?? '';
      const serviceAccount = m?.[3] ?? '';
      const username = m ? `system:serviceaccount:${namespace}:${serviceAccount}` : principal;
      return {
        kind: 'ok',
        label: principal,
        identity: {
          principal,
          trustDomain,
          namespace,
          serviceAccount,
          username,
          user: { username, groups: m ? ['system:serviceaccounts', `system:serviceaccounts:${namespace}`] : [] },
        },
      };
    },
  };
};
