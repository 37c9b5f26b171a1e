// The cloud dispatcher skips messages whose cloud topic has no subscriber at all: a subscriber
// that arrives later, a persistent session that is offline, and retained messages must still
// get exactly what MQTT promises them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir, waitFor } from '../helpers/net.js'
import { mqttClient, startTestCloud, startTestEdge } from './bridge-helpers.js'

test('skipping unsubscribed topics never hides a message from a later, an offline persistent, or a retained-message subscriber', async () => {
  const cdir = await tempDir('presence-cloud')
  const edir = await tempDir('presence-edge')
  const cloud = await startTestCloud(cdir.path)
  const edge = await startTestEdge(edir.path, ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a'])
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev-1' })
  const clients = [pub]
  try {
    const publish = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) await pub.publishAsync(`devices/${i % 3}/telemetry`, `m${i}`, { qos: 1 })
    }
    // 1. Nobody subscribed: the dispatcher learns that these topics have no subscriber.
    await pub.publishAsync('devices/0/state', 'retained-1', { qos: 1, retain: true })
    await publish(0, 30)
    await waitFor('first messages dispatched', () => cloud.stats.dispatched >= 31, 15_000)

    // 2. A subscriber arriving now gets every later message on those same topics, and the retained one.
    const live = await mqttClient(cloud.mqttPort, { clientId: 'cloud-live' })
    clients.push(live)
    const got: string[] = []
    live.on('message', (topic, payload) => { got.push(`${topic} ${payload.toString()}`) })
    await live.subscribeAsync('up/edge-a/devices/#', { qos: 1 })
    await waitFor('retained message delivered', () => got.includes('up/edge-a/devices/0/state retained-1'))

    // 3. A persistent session subscribes and goes offline: what arrives meanwhile waits for it.
    const p1 = await mqttClient(cloud.mqttPort, { clientId: 'cloud-persistent', clean: false })
    await p1.subscribeAsync('up/edge-a/devices/1/#', { qos: 1 })
    await p1.endAsync()
    await publish(30, 60)
    await waitFor('live subscriber got the later messages', () => got.length >= 31, 15_000)
    assert.deepEqual(got.slice(1), Array.from({ length: 30 }, (_, k) => `up/edge-a/devices/${(30 + k) % 3}/telemetry m${30 + k}`))

    const offline: string[] = []
    const p2 = await mqttClient(cloud.mqttPort, { clientId: 'cloud-persistent', clean: false })
    clients.push(p2)
    p2.on('message', (topic, payload) => { offline.push(`${topic} ${payload.toString()}`) })
    const expected = Array.from({ length: 30 }, (_, k) => 30 + k).filter((i) => i % 3 === 1).map((i) => `up/edge-a/devices/1/telemetry m${i}`)
    await waitFor('offline messages delivered on reconnect', () => offline.length >= expected.length, 15_000)
    assert.deepEqual(offline, expected)
  } finally {
    for (const c of clients) await c.endAsync().catch(() => {})
    await edge.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
