// Runs the egress-authz CLI straight from src/ (through tsx), so `npm run bench` measures the code in the tree
// without a build step. bin/egress-authz.js does the same for the compiled dist/.
import { main } from '../src/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
