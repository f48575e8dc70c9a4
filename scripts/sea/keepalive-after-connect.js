// Windows: undici (fetch, which the Kubernetes client uses) enables TCP
// keep-alive right after net.connect, before the socket is connected. Wine's
// sockets refuse that and the connection fails ("connect UNKNOWN"); enabling it
// once connected has the same effect on every Windows.
if (process.platform === 'win32') {
  const { Socket } = require('node:net');
  const setKeepAlive = Socket.prototype.setKeepAlive;
  Socket.prototype.setKeepAlive = function setKeepAliveOnceConnected(enable, initialDelay) {
    if (this.connecting) {
      this.once('connect', () => setKeepAlive.call(this, enable, initialDelay));
      return this;
    }
    return setKeepAlive.call(this, enable, initialDelay);
  };
}
