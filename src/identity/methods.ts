// Registry of identity method kinds (the key under a named method in `authentication:`).
import type { IdentityMethodFactory } from './method.js';
import { anonymousMethod } from './anonymous.js';
import { apiKeyMethod } from './api-key.js';
import { jwtMethod } from './jwt.js';
import { kubernetesTokenReviewMethod } from './kubernetes-token-review.js';
import { spiffeMethod } from './spiffe.js';

export const IDENTITY_METHODS: Record<string, IdentityMethodFactory> = {
  kubernetesTokenReview: kubernetesTokenReviewMethod,
  jwt: jwtMethod,
  spiffe: spiffeMethod,
  apiKey: apiKeyMethod,
  anonymous: anonymousMethod,
};
