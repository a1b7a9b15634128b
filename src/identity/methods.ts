// Registry of identity method kinds (the key under a named method in `authentication:`).
import type { IdentityMethodFactory } from './method.js';
import { anonymousMethod } from './anonymous.js';
import { spiffeMethod } from './spiffe.js';

export const IDENTITY_METHODS: Record<string, IdentityMethodFactory> = {
  anonymous: anonymousMethod,
  spiffe: spiffeMethod,
};
