// Edge -> bridge -> cloud -> cloud subscriber, and downlink back, in one process over real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connectAsync } from 'mqtt'
import { tempDir, waitFor } from '../helpers/net.js'
import { mqttClient, startTestCloud, startTestEdge, storeContents } from './bridge-helpers.js'

test('messages published at the edge reach the cloud store once each, in order, and a cloud subscriber as up/E/T', async () => {
  const cdir = await tempDir('bridge-cloud')
  const edir = await tempDir('bridge-edge')
  const cloud = await startTestCloud(cdir.path)
  const edge = await startTestEdge(edir.path, ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a', '--forward', 'devices/#'])
  const sub = await mqttClient(cloud.mqttPort, { clientId: 'cloud-app' })
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev-1' })
  try {
    const received: string[] = []
    sub.on('message', (topic, payload) => { received.push(`${topic} ${payload.toString()}`) })
    await sub.subscribeAsync('up/#', { qos: 1 })
    const N = 300
    for (let i = 0; i < N; i++) await pub.publishAsync(`devices/${i % 3}/telemetry`, `m${i}`, { qos: 1 })
    await pub.publishAsync('local/only', 'not forwarded', { qos: 1 })
    await waitFor('all messages in the cloud store', async () => (await storeContents(cloud)).length >= N, 15_000)
    await waitFor('all messages at the cloud subscriber', () => received.length >= N, 15_000)
    const stored = await storeContents(cloud)
    assert.equal(stored.length, N)
    assert.deepEqual(stored.map((r) => r.payload), Array.from({ length: N }, (_, i) => `m${i}`))
    assert.ok(stored.every((r) => r.edgeId === 'edge-a'))
    assert.deepEqual(received, Array.from({ length: N }, (_, i) => `up/edge-a/devices/${i % 3}/telemetry m${i}`))
    // The edge's checkpoint reaches the end of its log (the filtered record included).
    await waitFor('checkpoint at the log end', () => edge.bridge.status().ackedOffset === edge.log.durableOffset && edge.bridge.status().lagBytes === 0)
  } finally {
    await pub.endAsync(); await sub.endAsync()
    await edge.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})

test('a downlink published at the cloud reaches a device subscribed at the edge with its QoS', async () => {
  const cdir = await tempDir('bridge-cloud')
  const edir = await tempDir('bridge-edge')
  const cloud = await startTestCloud(cdir.path)
  const edge = await startTestEdge(edir.path, ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a'])
  const dev = await mqttClient(edge.mqttPort, { clientId: 'dev-42' })
  const app = await mqttClient(cloud.mqttPort, { clientId: 'cloud-app' })
  try {
    const got: Array<{ topic: string, payload: string, qos: number }> = []
    dev.on('message', (topic, payload, packet) => { got.push({ topic, payload: payload.toString(), qos: packet.qos }) })
    await dev.subscribeAsync('devices/42/commands/#', { qos: 1 })
    await waitFor('bridge connected', () => edge.bridge.status().state === 'ready')
    await app.publishAsync('down/edge-a/devices/42/commands/reboot', 'now', { qos: 1 })
    await waitFor('command at the device', () => got.length === 1)
    assert.deepEqual(got[0], { topic: 'devices/42/commands/reboot', payload: 'now', qos: 1 })
    await waitFor('downlink acked at the cloud', async () => (await cloud.store.stats()).pendingDownlinks === 0)
    // The downlink is in the edge's commitlog and is not echoed back up.
    const recs = edge.log.read(0, { maxRecords: 100 }).records
    assert.ok(recs.some((r) => r.topic === 'devices/42/commands/reboot'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal((await storeContents(cloud)).length, 0)
  } finally {
    await dev.endAsync(); await app.endAsync()
    await edge.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})

test('a persistent cloud subscriber that was away gets what arrived meanwhile, in order, across a cloud restart', async () => {
  const cdir = await tempDir('bridge-cloud')
  const edir = await tempDir('bridge-edge')
  let cloud = await startTestCloud(cdir.path)
  const edge = await startTestEdge(edir.path, ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a'])
  try {
    const sub1 = await mqttClient(cloud.mqttPort, { clientId: 'cloud-app', clean: false })
    await sub1.subscribeAsync('up/edge-a/#', { qos: 1 })
    await sub1.endAsync()
    const pub = await mqttClient(edge.mqttPort, { clientId: 'dev-1' })
    for (let i = 0; i < 50; i++) await pub.publishAsync('devices/1/t', `m${i}`, { qos: 1 })
    await pub.endAsync()
    await waitFor('stored and dispatched', () => cloud.stats.dispatched >= 50, 15_000)
    await edge.close()
    await cloud.close()
    cloud = await startTestCloud(cdir.path)
    const got: string[] = []
    const sub2 = await connectAsync(`mqtt://127.0.0.1:${cloud.mqttPort}`, { clientId: 'cloud-app', clean: false, reconnectPeriod: 0, protocolVersion: 4 })
    sub2.on('message', (_t, payload) => { got.push(payload.toString()) })
    await waitFor('the queued messages', () => new Set(got).size >= 50, 15_000)
    await sub2.endAsync()
    // At least once: a redelivery is allowed, a gap or a reordering is not.
    const firsts = got.filter((p, i) => got.indexOf(p) === i)
    assert.deepEqual(firsts, Array.from({ length: 50 }, (_, i) => `m${i}`))
  } finally {
    await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
