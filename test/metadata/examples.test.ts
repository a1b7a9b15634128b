// Every policy in examples/vault loads as written (no diagnostics), with a Vault address from the file.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { makePolicyDir } from '../support/test-server.js';
import { harness } from './harness.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../examples/vault');
const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));

describe('examples/vault', () => {
  it('has examples', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  it.each(files)('%s loads without diagnostics', (file) => {
    const h = harness();
    const result = loadPolicyDirectory(makePolicyDir({ [file]: fs.readFileSync(path.join(EXAMPLES, file), 'utf8') }), h.services);
    expect(result.ok ? [] : result.diagnostics.map(formatDiagnostic)).toEqual([]);
    void h.services.close();
  });
});
