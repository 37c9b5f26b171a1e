// Replicate ahead of the edge's fsync (edge/bridge/client.ts, CommitLog.replicableOffset): with a
// replicate-ahead window the bridge sends records once they are written (page cache), so the
// edge's fsync is not on the device-to-cloud path; the device's PUBACK still waits for it. The
// edge's segment fsync is held by an injected fdatasync (a disk that stalls as long as the test
// wants); a real broker, bridge and cloud node run in-process over real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fdatasync } from 'node:fs'
import { join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import { CommitLog } from '../../src/commitlog/index.js'
import { loadConfig } from '../../src/config/index.js'
import { edgeSchema } from '../../src/config/edge.js'
import { silentLogger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { createBroker } from '../../src/mqtt/broker.js'
import { startBridge } from '../../edge/bridge/index.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { mqttClient, startTestCloud, storeContents } from './bridge-helpers.js'

// fdatasync that passes through until `hold()`, then keeps every call until `release()`.
function stallingDisk (): { fdatasync: (fd: number, cb: (err: Error | null) => void) => void, hold: () => void, release: () => void, held: () => number } {
  let holding = false
  let held: Array<() => void> = []
  return {
    fdatasync: (fd, cb) => { if (holding) held.push(() => { fdatasync(fd, cb) }); else fdatasync(fd, cb) },
    hold: () => { holding = true },
    release: () => { holding = false; const h = held; held = []; for (const f of h) f() },
    held: () => held.length
  }
}

test('with a replicate-ahead window, a record reaches the cloud store and a cloud subscriber before the edge\'s fsync; the PUBACK waits for it', async () => {
  const cdir = await tempDir('ahead-cloud')
  const edir = await tempDir('ahead-edge')
  const cloud = await startTestCloud(cdir.path)
  const config = loadConfig(edgeSchema, { argv: ['--data-dir', edir.path, '--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a', '--replicate-ahead-bytes', '1048576'] })
  const disk = stallingDisk()
  const log = await CommitLog.open({ dir: join(edir.path, 'log'), ...config.commitlog, fdatasync: disk.fdatasync, log: silentLogger() })
  const meta = await LevelMetaStore.open(join(edir.path, 'meta'))
  const broker = await createBroker({ log, config: config.limits, logger: silentLogger() })
  const server = createServer((s) => { broker.handle(s) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const bridge = await startBridge({ log, meta, settings: config.bridge, broker, logger: silentLogger() })
  const device = await mqttClient((server.address() as AddressInfo).port, { clientId: 'dev-1' })
  const app = await mqttClient(cloud.mqttPort, { clientId: 'app-1' })
  try {
    const got: string[] = []
    app.on('message', (_t, p) => { got.push(p.toString()) })
    await app.subscribeAsync('up/edge-a/#', { qos: 1 })
    await waitFor('bridge connected', () => bridge.status().state === 'ready', 10_000)
    // A first message with a working disk: everything settles.
    await device.publishAsync('devices/1/t', 'before', { qos: 1 })
    await waitFor('first message at the cloud subscriber', () => got.includes('before'), 10_000)

    disk.hold()
    let pubacked = false
    const publishing = device.publishAsync('devices/1/t', 'ahead', { qos: 1 }).then(() => { pubacked = true })
    await waitFor('the record reached the cloud subscriber', () => got.includes('ahead'), 10_000)
    await waitFor('the record is in the cloud store', async () => (await storeContents(cloud)).some((r) => r.payload === 'ahead'), 10_000)
    assert.equal(pubacked, false, 'the device\'s PUBACK waits for the edge\'s fsync')
    assert.ok(log.durableOffset < log.endOffset, 'the record is not durable at the edge yet')
    assert.ok(disk.held() > 0, 'the edge\'s fsync is stalled')
    // The bridge's acked offset (the cloud's durable ack) covers it: the cloud made it durable.
    assert.equal(bridge.client.ackedOffset, log.endOffset)

    disk.release()
    await publishing
    assert.equal(pubacked, true)
    assert.equal(log.durableOffset, log.endOffset)
    assert.deepEqual(got, ['before', 'ahead'])
  } finally {
    disk.release()
    await device.endAsync()
    await app.endAsync()
    await bridge.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await broker.close()
    await log.close()
    await meta.close()
    await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
