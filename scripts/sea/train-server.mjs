// The API server of the build's training capture (scripts/build): it answers
// exactly what one auto-mode capture of demo/web asks (the pod, its node, the
// server's version, the permission reviews, and one exec that finds the kept
// tcpdump and streams one packet), so that the code cache holds the capture's
// whole path to its first packet, not only its start. Plain HTTP on
// 127.0.0.1: what differs under TLS is Node's own code.
// Usage: node train-server.mjs PORTFILE   (runs until killed)
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const [portFile] = process.argv.slice(2);
const POD = {
  kind: 'Pod',
  apiVersion: 'v1',
  metadata: { name: 'web', namespace: 'demo', uid: 'training' },
  spec: { nodeName: 'training', containers: [{ name: 'web', image: 'training' }] },
  status: {
    phase: 'Running',
    podIP: '10.0.0.2',
    containerStatuses: [
      {
        name: 'web',
        ready: true,
        image: 'training',
        imageID: 'training',
        restartCount: 0,
        containerID: 'containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
        state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
      },
    ],
  },
};
const NODE = {
  kind: 'Node',
  apiVersion: 'v1',
  metadata: {
    name: 'training',
    labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' },
  },
  status: { nodeInfo: { operatingSystem: 'linux', architecture: 'amd64' } },
};
const VERSION = { major: '1', minor: '31', gitVersion: 'v1.31.0' };

const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const path = new URL(req.url ?? '/', 'http://training').pathname;
    let answer;
    if (path === '/version') answer = VERSION;
    else if (path === '/api/v1/namespaces/demo/pods/web') answer = POD;
    else if (path === '/api/v1/nodes/training') answer = NODE;
    else if (path.endsWith('/selfsubjectaccessreviews')) {
      answer = { ...JSON.parse(body || '{}'), status: { allowed: true } };
    }
    res.writeHead(answer ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer ?? { kind: 'Status', status: 'Failure', code: 404 }));
  });
});

// The exec: the probe finds the kept copy in a container that can capture
// (root, CAP_NET_RAW), so it runs at once, as the script would: the PID line,
// a pcap header and one ICMP record; on the stop line, success.
const wss = new WebSocketServer({
  noServer: true,
  handleProtocols: (offered) => (offered.has('v5.channel.k8s.io') ? 'v5.channel.k8s.io' : false),
});
const frame = (channel, data) => Buffer.concat([Buffer.from([channel]), Buffer.from(data)]);
function pcap() {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(113, 20); // LINUX_SLL
  const packet = Buffer.alloc(16 + 44);
  packet.writeUInt32LE(1767225600, 0);
  packet.writeUInt32LE(44, 8);
  packet.writeUInt32LE(44, 12);
  packet.writeUInt16BE(0x0800, 16 + 14);
  packet[16 + 16] = 0x45;
  return Buffer.concat([header, packet]);
}
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(frame(2, 'kubedump-probe present /tmp/.kubedump-keep-0 x86_64 yes 0 a80425fb\n'));
    ws.send(frame(2, 'kubedump-pid 7\n'));
    ws.send(frame(1, pcap()));
    ws.on('message', (data) => {
      const text = Buffer.from(data).subarray(1).toString();
      if (text.includes('stop')) {
        ws.send(frame(3, JSON.stringify({ kind: 'Status', status: 'Success' })));
        ws.close(1000);
      }
    });
  });
});
server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)));
