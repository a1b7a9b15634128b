// `anonymous`: always succeeds with an empty identity (for public egress routes).
import type { IdentityMethodFactory } from './method.js';

export const anonymousMethod: IdentityMethodFactory = ({ config }) => {
  config.checkKeys([], 'anonymous');
  return {
    kind: 'anonymous',
    challenge: '',
    authenticate: () => ({ kind: 'ok', identity: { anonymous: true }, label: 'anonymous' }),
  };
};
