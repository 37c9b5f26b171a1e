// With several cloud URLs, a failed connect (refused, refused handshake) fails over to the next
// URL at once; the reconnect backoff applies only after a full round of failures. The backoff
// here is 30 s, far longer than the wait for the message: only an immediate fail-over passes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { freePort, tempDir, waitFor } from '../helpers/net.js'
import { mqttClient, startTestCloud, startTestEdge, storeContents } from '../integration/bridge-helpers.js'

const SLOW_BACKOFF = ['--bridge-backoff-min', '30s', '--bridge-backoff-max', '60s', '--bridge-connect-timeout', '5s']

test('a refused port and a refused handshake fail over to the next URL at once, without waiting for the backoff', async () => {
  const cdir = await tempDir('fo2-cloud')
  const edir = await tempDir('fo2-edge')
  const cloud = await startTestCloud(cdir.path)
  const closedPort = await freePort() // nothing listens there: connection refused
  // An HTTP server that answers the WebSocket upgrade with 404: a refused handshake.
  const http = createServer((_req, res) => { res.statusCode = 404; res.end() })
  http.on('upgrade', (_req, socket) => { socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n') })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const httpPort = (http.address() as AddressInfo).port
  const edge = await startTestEdge(edir.path, [
    '--cloud-url', `ws://127.0.0.1:${closedPort}/bridge`, '--cloud-url', `ws://127.0.0.1:${httpPort}/bridge`, '--cloud-url', cloud.bridgeUrl,
    '--edge-id', 'edge-a', '--cloud-token', 'secret-a', ...SLOW_BACKOFF
  ])
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev' })
  try {
    await waitFor('the bridge connected to the live cloud', () => edge.bridge.status().state === 'ready', 10_000)
    assert.equal(edge.bridge.status().url, cloud.bridgeUrl)
    assert.equal(edge.bridge.client.counters.disconnects, 2, 'both dead URLs were tried once, in order')
    await pub.publishAsync('devices/1/t', 'after fail-over', { qos: 1 })
    await waitFor('the message in the cloud', async () => (await storeContents(cloud)).length === 1, 10_000)
  } finally {
    await pub.endAsync()
    await edge.close(); await cloud.close()
    await new Promise<void>((resolve) => http.close(() => { resolve() }))
    await edir.remove(); await cdir.remove()
  }
})
