import path from 'node:path';

/** The egress-authz checkout the harness runs in. */
export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
