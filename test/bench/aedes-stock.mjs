// Stock aedes 1.2 with its default in-memory persistence on a TCP port, the peer the edge
// broker is compared with. Plain JS (no tsx loader) so its memory is aedes', not a compiler's.
// Tuned like the other peers: TCP_NODELAY on every socket (Node's default leaves Nagle on, which
// holds small acks back until the peer's delayed ACK). Nothing else differs from aedes' defaults.
// Usage: node test/bench/aedes-stock.mjs [port]  -> prints {"event":"ready","mqttPort":N}
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const broker = await Aedes.createBroker()
const server = createServer(broker.handle)
server.on('connection', (socket) => { socket.setNoDelay(true) })
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ event: 'ready', mqttPort: server.address().port, pid: process.pid }) + '\n')
})
process.on('SIGTERM', () => { server.close(); broker.close(() => process.exit(0)) })
