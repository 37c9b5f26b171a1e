// Faults on the edge-cloud link through the simulator's fault proxy (real sockets, in-process
// nodes): a blackholed link is detected by heartbeats and recovered without loss; a downlink sent
// while the edge is offline arrives at the device after the edge reconnects, unless it expired.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FaultProxy } from '../../firmware-sim/fault/proxy.js'
import { silentLogger } from '../../src/log/index.js'
import { freePort, tempDir, waitFor } from '../helpers/net.js'
import { mqttClient, startTestCloud, startTestEdge, storeContents } from '../integration/bridge-helpers.js'

const FAST_LINK = ['--bridge-heartbeat', '200ms', '--bridge-heartbeat-timeout', '1s', '--bridge-connect-timeout', '1s', '--bridge-backoff-min', '50ms', '--bridge-backoff-max', '500ms']

test('a blackholed link is detected by heartbeat and replication recovers without loss or duplicate', async () => {
  const cdir = await tempDir('bh-cloud')
  const edir = await tempDir('bh-edge')
  const cloud = await startTestCloud(cdir.path)
  const proxy = new FaultProxy('127.0.0.1', cloud.bridgePort, silentLogger())
  const proxyPort = await proxy.listen()
  const edge = await startTestEdge(edir.path, ['--cloud-url', `ws://127.0.0.1:${proxyPort}/bridge`, '--edge-id', 'edge-a', '--cloud-token', 'secret-a', ...FAST_LINK])
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev' })
  try {
    for (let i = 0; i < 100; i++) await pub.publishAsync('devices/1/t', `m${i}`, { qos: 1 })
    await waitFor('first 100 in the cloud', async () => (await storeContents(cloud)).length === 100)
    proxy.startBlackhole()
    for (let i = 100; i < 200; i++) await pub.publishAsync('devices/1/t', `m${i}`, { qos: 1 })
    await waitFor('the dead link detected', () => edge.bridge.client.counters.heartbeatTimeouts > 0, 15_000)
    assert.notEqual(edge.bridge.status().state, 'ready')
    assert.equal((await storeContents(cloud)).length, 100, 'nothing crossed the blackhole')
    proxy.endBlackhole()
    await waitFor('all 200 in the cloud', async () => (await storeContents(cloud)).length >= 200, 20_000)
    await waitFor('lag 0', () => edge.bridge.status().lagBytes === 0)
    const stored = await storeContents(cloud)
    assert.deepEqual(stored.map((r) => r.payload), Array.from({ length: 200 }, (_, i) => `m${i}`))
  } finally {
    await pub.endAsync()
    await edge.close(); await proxy.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})

test('a downlink sent while the edge is offline reaches the device after the edge reconnects; an expired one does not', async () => {
  const cdir = await tempDir('dl-cloud')
  const edir = await tempDir('dl-edge')
  const cloud = await startTestCloud(cdir.path, ['--downlink-ttl', '1500ms'])
  const proxy = new FaultProxy('127.0.0.1', cloud.bridgePort, silentLogger())
  const proxyPort = await proxy.listen()
  const edge = await startTestEdge(edir.path, ['--cloud-url', `ws://127.0.0.1:${proxyPort}/bridge`, '--edge-id', 'edge-a', '--cloud-token', 'secret-a', ...FAST_LINK])
  const dev = await mqttClient(edge.mqttPort, { clientId: 'dev-42' })
  const app = await mqttClient(cloud.mqttPort, { clientId: 'app' })
  try {
    const got: string[] = []
    dev.on('message', (topic, payload, packet) => { got.push(`${topic} ${payload.toString()} qos${packet.qos}`) })
    await dev.subscribeAsync('devices/42/commands/#', { qos: 2 })
    await waitFor('bridge up', () => edge.bridge.status().state === 'ready')
    proxy.cut()
    await waitFor('the cloud sees the edge offline', () => cloud.stats.edgesConnected === 0, 10_000)
    await app.publishAsync('down/edge-a/devices/42/commands/old', 'expires', { qos: 1 })
    await new Promise((resolve) => setTimeout(resolve, 1700))
    await app.publishAsync('down/edge-a/devices/42/commands/reboot', 'now', { qos: 2 })
    assert.equal((await cloud.store.stats()).pendingDownlinks, 2)
    assert.deepEqual(got, [])
    proxy.endCut()
    await waitFor('the command at the device', () => got.length >= 1, 15_000)
    await waitFor('downlink acked', async () => (await cloud.store.stats()).pendingDownlinks === 0)
    assert.deepEqual(got, ['devices/42/commands/reboot now qos2'])
    assert.equal(cloud.stats.downlinksExpired, 1)
  } finally {
    await dev.endAsync(); await app.endAsync()
    await edge.close(); await proxy.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})

test('with several cloud URLs the edge fails over from a dead one', async () => {
  const cdir = await tempDir('fo-cloud')
  const edir = await tempDir('fo-edge')
  const cloud = await startTestCloud(cdir.path)
  const deadPort = await freePort()
  const edge = await startTestEdge(edir.path, ['--cloud-url', `ws://127.0.0.1:${deadPort}/bridge`, '--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a', ...FAST_LINK])
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev' })
  try {
    await pub.publishAsync('devices/1/t', 'after fail-over', { qos: 1 })
    await waitFor('the message in the cloud', async () => (await storeContents(cloud)).length === 1, 15_000)
    assert.equal(edge.bridge.status().url, cloud.bridgeUrl)
    assert.ok(edge.bridge.client.counters.disconnects >= 1, 'the dead URL was tried')
  } finally {
    await pub.endAsync()
    await edge.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
