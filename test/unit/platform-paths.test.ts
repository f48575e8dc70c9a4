import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cacheDir,
  configDir,
  defaultLogFile,
  executableName,
  extcapFolders,
  type Host,
  knownExtcapFolders,
} from '../../src/platform-paths.ts';

const windows: Host = {
  platform: 'win32',
  env: {
    APPDATA: 'C:\\Users\\ann\\AppData\\Roaming',
    LOCALAPPDATA: 'C:\\Users\\ann\\AppData\\Local',
  },
  home: 'C:\\Users\\ann',
};
const mac: Host = { platform: 'darwin', env: {}, home: '/Users/ann' };
const linux: Host = { platform: 'linux', env: {}, home: '/home/ann' };

test('Windows: extcap in %APPDATA%\\Wireshark\\extcap as kubedump.exe, cache and log in %LOCALAPPDATA%', () => {
  assert.deepEqual(extcapFolders(windows, undefined), [
    'C:\\Users\\ann\\AppData\\Roaming\\Wireshark\\extcap',
  ]);
  assert.equal(executableName(windows), 'kubedump.exe');
  assert.equal(cacheDir(windows), 'C:\\Users\\ann\\AppData\\Local\\kubedump\\cache');
  assert.equal(defaultLogFile(windows), 'C:\\Users\\ann\\AppData\\Local\\kubedump\\kubedump.log');
  assert.equal(configDir(windows), 'C:\\Users\\ann\\AppData\\Roaming\\kubedump');
  assert.deepEqual(knownExtcapFolders(windows), extcapFolders(windows, undefined));
});

test('Windows without APPDATA/LOCALAPPDATA falls back to the profile folders', () => {
  const bare: Host = { ...windows, env: {} };
  assert.deepEqual(extcapFolders(bare, undefined), [
    'C:\\Users\\ann\\AppData\\Roaming\\Wireshark\\extcap',
  ]);
  assert.equal(cacheDir(bare), 'C:\\Users\\ann\\AppData\\Local\\kubedump\\cache');
});

test('macOS and Linux: the 4.0 and 4.2+ personal folders, unless tshark names one', () => {
  for (const host of [mac, linux]) {
    assert.deepEqual(extcapFolders(host, undefined), [
      `${host.home}/.config/wireshark/extcap`,
      `${host.home}/.local/lib/wireshark/extcap`,
    ]);
    assert.equal(executableName(host), 'kubedump');
    assert.equal(cacheDir(host), `${host.home}/.cache/kubedump`);
    assert.equal(defaultLogFile(host), `${host.home}/.local/state/kubedump/kubedump.log`);
  }
  const fromTshark = '/Users/ann/.local/lib/wireshark/extcap/4.4';
  assert.deepEqual(extcapFolders(mac, fromTshark), [fromTshark]);
});

test('XDG and WIRESHARK_CONFIG_DIR count only when absolute', () => {
  const host: Host = {
    ...linux,
    env: { XDG_CACHE_HOME: '/tmp/c', XDG_STATE_HOME: 'relative', WIRESHARK_CONFIG_DIR: '/tmp/ws' },
  };
  assert.equal(cacheDir(host), '/tmp/c/kubedump');
  assert.equal(defaultLogFile(host), '/home/ann/.local/state/kubedump/kubedump.log');
  assert.equal(extcapFolders(host, undefined)[0], '/tmp/ws/extcap');
});
