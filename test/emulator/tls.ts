// A CA and a server certificate for 127.0.0.1, made with openssl once and cached.
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { must } from './runtime/command.ts';

const CACHE = '/var/cache/kubedump/emu-tls';

export interface Tls {
  ca: string;
  cert: string;
  key: string;
}

async function read(dir: string): Promise<Tls> {
  return {
    ca: await readFile(`${dir}/ca.crt`, 'utf8'),
    cert: await readFile(`${dir}/server.crt`, 'utf8'),
    key: await readFile(`${dir}/server.key`, 'utf8'),
  };
}

export async function serverTls(): Promise<Tls> {
  try {
    await stat(`${CACHE}/server.key`);
    return await read(CACHE);
  } catch {}
  const tmp = `${CACHE}.${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await must('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    `${tmp}/ca.key`,
    '-out',
    `${tmp}/ca.crt`,
    '-days',
    '3650',
    '-subj',
    '/CN=kdemu-ca',
  ]);
  await must('openssl', [
    'req',
    ...ec,
    '-keyout',
    `${tmp}/server.key`,
    '-out',
    `${tmp}/server.csr`,
    '-subj',
    '/CN=kube-apiserver',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  await must('openssl', [
    'x509',
    '-req',
    '-in',
    `${tmp}/server.csr`,
    '-CA',
    `${tmp}/ca.crt`,
    '-CAkey',
    `${tmp}/ca.key`,
    '-CAcreateserial',
    '-out',
    `${tmp}/server.crt`,
    '-days',
    '3650',
    '-copy_extensions',
    'copyall',
  ]);
  try {
    await rename(tmp, CACHE);
  } catch {
    // Another process cached one first: use theirs.
    await rm(tmp, { recursive: true, force: true });
  }
  return read(CACHE);
}
