// A kubeconfig for the emulator: one cluster, users `admin`, `restricted`, `nopatch` and
// `ephemeral`, a context for each (`emu`, `emu-restricted`, `emu-nopatch`, `emu-ephemeral`).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { tokenOf } from './auth.ts';

/** With `only`, a kubeconfig of that one identity (file `<user>.kubeconfig`). */
export async function writeKubeconfig(
  url: string,
  ca: string,
  dir?: string,
  only?: { user: string; token: string },
): Promise<string> {
  const d = dir ?? (await mkdtemp(`${tmpdir()}/kdemu-`));
  const caData = Buffer.from(ca).toString('base64');
  if (only) {
    const path = `${d}/${only.user}.kubeconfig`;
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'emu', cluster: { server: url, 'certificate-authority-data': caData } }],
      users: [{ name: only.user, user: { token: only.token } }],
      contexts: [
        { name: only.user, context: { cluster: 'emu', user: only.user, namespace: 'demo' } },
      ],
      'current-context': only.user,
    };
    await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    return path;
  }
  const path = `${d}/kubeconfig`;
  // JSON is valid YAML, and kubectl and client-node both read it.
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'emu', cluster: { server: url, 'certificate-authority-data': caData } }],
    users: [
      { name: 'admin', user: { token: tokenOf('admin') } },
      { name: 'restricted', user: { token: tokenOf('restricted') } },
      { name: 'nopatch', user: { token: tokenOf('nopatch') } },
      { name: 'ephemeral', user: { token: tokenOf('ephemeral') } },
    ],
    contexts: [
      { name: 'emu', context: { cluster: 'emu', user: 'admin', namespace: 'demo' } },
      {
        name: 'emu-restricted',
        context: { cluster: 'emu', user: 'restricted', namespace: 'demo' },
      },
      { name: 'emu-nopatch', context: { cluster: 'emu', user: 'nopatch', namespace: 'demo' } },
      {
        name: 'emu-ephemeral',
        context: { cluster: 'emu', user: 'ephemeral', namespace: 'demo' },
      },
    ],
    'current-context': 'emu',
    preferences: {},
  };
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return path;
}
