// The dispatcher skips whole chunks of an edge nobody subscribes to ("quiet": no filter in aedes'
// trie or the session persistence's can match up/{edge}/...). Once a subscription that can match
// exists, whatever its wildcards, messages stored after its SUBACK must reach it; a subscription
// for another edge does not make this edge loud, and must not receive its messages.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir, waitFor } from '../helpers/net.js'
import { mqttClient, startTestCloud, startTestEdge } from './bridge-helpers.js'

test('after quiet chunks were skipped, subscribers with any matching filter get what follows', async () => {
  const cdir = await tempDir('quiet-cloud')
  const edir = await tempDir('quiet-edge')
  const cloud = await startTestCloud(cdir.path)
  const edge = await startTestEdge(edir.path, ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a'])
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev-1' })
  const clients = [pub]
  try {
    // Nobody subscribed at all: these chunks are skipped unread.
    for (let i = 0; i < 40; i++) await pub.publishAsync(`devices/${i % 4}/telemetry`, `early-${i}`, { qos: 1 })
    await waitFor('early messages dispatched', () => cloud.stats.dispatched >= 40, 15_000)

    // Another edge's subscriber: edge-a stays quiet, and this one must not get edge-a's messages.
    const other = await mqttClient(cloud.mqttPort, { clientId: 'other' })
    clients.push(other)
    const otherGot: string[] = []
    other.on('message', (t) => { otherGot.push(t) })
    await other.subscribeAsync('up/edge-b/#', { qos: 1 })

    const filters = ['#', '+/edge-a/#', 'up/+/devices/+/telemetry', 'up/edge-a/devices/2/telemetry', 'up/edge-a/+/+/+']
    let n = 0
    for (const filter of filters) {
      const sub = await mqttClient(cloud.mqttPort, { clientId: `sub-${n}` })
      clients.push(sub)
      const got: string[] = []
      sub.on('message', (t, p) => { got.push(`${t} ${p.toString()}`) })
      await sub.subscribeAsync(filter, { qos: 1 })
      const payload = `after-${n}`
      await pub.publishAsync('devices/2/telemetry', payload, { qos: 1 })
      await waitFor(`the message at a subscriber of ${filter}`, () => got.includes(`up/edge-a/devices/2/telemetry ${payload}`), 15_000)
      assert.ok(!got.some((g) => g.includes('early-')), `${filter}: nothing from before its SUBACK`)
      await sub.endAsync()
      clients.pop()
      n++
    }
    assert.deepEqual(otherGot, [])
  } finally {
    for (const c of clients) await c.endAsync()
    await edge.close(); await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
