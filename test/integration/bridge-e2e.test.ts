// devices (simulator) -> edge -> bridge -> cloud -> cloud MQTT subscriber (the simulator's
// checker), all real processes: nothing lost, and the cloud store holds each message exactly
// once, in per-device order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir } from '../helpers/net.js'
import { startCloudProcess } from '../helpers/cloud-process.js'
import { runSimProcess, storeAccounting } from '../helpers/bridge-processes.js'
import { startEdge } from '../helpers/edge-process.js'

test('simulated devices through edge and bridge to a cloud subscriber: no loss, store exactly once in order', async () => {
  const cdir = await tempDir('e2e-cloud')
  const edir = await tempDir('e2e-edge')
  const cloud = await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'edge-a=tok', '--log-level', 'warn'])
  const edge = await startEdge({ dataDir: edir.path, args: ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'tok', '--forward', 'devices/#', '--log-level', 'warn'] })
  try {
    const sim = await runSimProcess(['--broker', `mqtt://127.0.0.1:${edge.mqttPort}`, '--check-url', `mqtt://127.0.0.1:${cloud.mqttPort}`, '--check-prefix', 'up/edge-a/',
      '--devices', '20', '--rate', '25', '--duration', '3s', '--payload', 'binary', '--payload-bytes', '100', '--drain-timeout', '15s', '--expect-no-loss'])
    assert.equal(sim.code, 0, sim.stderr)
    const r = sim.report as { runId: number, sent: number, received: number, lost: number }
    assert.ok(r.sent > 500, `sent ${r.sent}`)
    assert.equal(r.lost, 0)
    assert.equal(r.received, r.sent)
    const acc = await storeAccounting(cloud.httpPort, r.runId)
    assert.deepEqual(acc, { records: r.sent, distinct: r.sent, duplicates: 0, outOfOrder: 0, gaps: 0, devices: 20 })
  } finally {
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
})
