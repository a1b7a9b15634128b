#!/usr/bin/env node
// The published entry point: the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
