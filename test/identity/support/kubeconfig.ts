// A kubeconfig file pointing at a fake API server (its CA inline, the reviewer token as the user), written to
// a temp dir and passed as config.kubeconfig, the way --kubeconfig is used outside a cluster.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export interface KubeEndpoint {
  readonly url: string;
  readonly caPem: string;
  /** Bearer token the client presents (the fake apiserver's reviewerToken). */
  readonly token: string;
}

export function writeKubeconfig(endpoint: KubeEndpoint): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-kubeconfig-'));
  const file = path.join(dir, 'kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fake', cluster: { server: endpoint.url, 'certificate-authority-data': Buffer.from(endpoint.caPem).toString('base64') } }],
    users: [{ name: 'egress-authz', user: { token: endpoint.token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'egress-authz' } }],
    'current-context': 'fake',
  };
  fs.writeFileSync(file, stringify(config), { mode: 0o600 });
  return file;
}
