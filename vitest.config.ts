import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers (gRPC, Redis, HTTPS fakes) on free loopback ports; 2 cores here.
    pool: 'forks',
    maxWorkers: 2,
  },
});
