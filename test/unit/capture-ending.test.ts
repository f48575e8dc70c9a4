import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { endedBadly, endingError, type RemoteEnding } from '../../src/capture/capture-ending.ts';
import { HOST_NETNS_MARKER } from '../../src/capture/remote-scripts.ts';
import { StopClock } from '../../src/capture/stop-clock.ts';

// Why a capture nobody stopped ended, one case per message the user can get.

const base: RemoteEnding = {
  result: { exitCode: 0, stderr: '' },
  gotHeader: true,
  where: 'pod demo/web',
  mode: 'unprivileged',
};
const ending = (over: Partial<RemoteEnding>) => endingError({ ...base, ...over });

describe('how a capture that nobody stopped ended', () => {
  test('tcpdump exited 0 after its header: no error', () => {
    assert.equal(endedBadly(base), false);
    assert.equal(endingError(base), undefined);
  });

  test('exit 0 without a pcap header is a failure, not a capture', () => {
    assert.equal(endedBadly({ ...base, gotHeader: false }), true);
    assert.equal(ending({ gotHeader: false })?.code, 'TCPDUMP_EXITED');
  });

  test("the node's network namespace is refused before anything else", () => {
    const stderr = `${HOST_NETNS_MARKER} 4242 net:[4026531840] net:[4026531840]\n`;
    const error = ending({ result: { exitCode: 3, stderr }, podGone: 'pod demo/web' });
    assert.equal(error?.code, 'HOST_NETNS');
    assert.match(error?.message ?? '', /PID 4242 is in the node's network namespace/);
  });

  test('a pod that went away is named, whatever the stream said', () => {
    const error = ending({ result: { exitCode: null, stderr: '' }, podGone: 'pod demo/victim' });
    assert.equal(error?.code, 'POD_DELETED');
    assert.equal(error?.message, 'pod demo/victim was deleted during the capture');
  });

  test('a stream cut without a status is a lost connection', () => {
    const error = ending({ result: { exitCode: null, stderr: '' } });
    assert.equal(error?.code, 'CONNECTION_LOST');
    assert.match(error?.message ?? '', /lost while capturing in pod demo\/web$/);
  });

  test("tcpdump's own words decide otherwise; a status message only without an exit code", () => {
    const denied = ending({
      result: { exitCode: 1, stderr: "tcpdump: eth0: You don't have permission to capture\n" },
    });
    assert.equal(denied?.code, 'CAPTURE_PERMISSION');
    const killed = ending({ result: { exitCode: 137, stderr: '', message: 'ignored' } });
    assert.equal(killed?.code, 'TCPDUMP_KILLED');
    const statusOnly = ending({
      result: { exitCode: null, stderr: '', message: 'exec: "sh": executable file not found' },
    });
    assert.equal(statusOnly?.code, 'TCPDUMP_EXITED');
    assert.match(statusOnly?.message ?? '', /executable file not found/);
  });
});

describe("the stop's one deadline", () => {
  test('is fixed once; every step gets what remains of it', async () => {
    const clock = new StopClock(400);
    clock.start();
    await new Promise((r) => setTimeout(r, 150));
    clock.start(); // a second stop does not move it
    const left = clock.remainingMs();
    assert.ok(left <= 250 && left > 100, `${left} ms left`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(clock.remainingMs(), 0);
    // A step started past the deadline is cut at once, not given a new budget.
    const late = clock.signal();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(late.aborted, true);
  });
});
