// The cloud node is killed with SIGKILL for 10 s while devices publish at the edge, then
// restarted on the same ports: the edge buffered, and the cloud store ends with every message
// exactly once, in per-device order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { freePort, tempDir, waitFor } from '../helpers/net.js'
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.js'
import { scrapeBridge, spawnSimProcess, storeAccounting } from '../helpers/bridge-processes.js'
import { startEdge } from '../helpers/edge-process.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

test('cloud SIGKILLed for 10 s while devices publish: every message in the cloud store exactly once', async () => {
  const cdir = await tempDir('ck-cloud')
  const edir = await tempDir('ck-edge')
  const [mqttPort, bridgePort, httpPort] = [await freePort(), await freePort(), await freePort()]
  const cloudArgs = ['--data-dir', cdir.path, '--mqtt-port', String(mqttPort), '--bridge-port', String(bridgePort), '--http-port', String(httpPort), '--edge-token', 'edge-a=tok', '--log-level', 'warn']
  let cloud: CloudProcess = await startCloudProcess(cloudArgs)
  const edge = await startEdge({
    dataDir: edir.path,
    args: ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'tok', '--bridge-backoff-min', '100ms', '--bridge-backoff-max', '1s', '--log-level', 'warn']
  })
  try {
    // The checker subscribes at the edge: devices never see the cloud outage.
    const sim = spawnSimProcess(['--broker', edge.url, '--devices', '20', '--rate', '20', '--duration', '15s', '--payload', 'binary', '--payload-bytes', '100', '--drain-timeout', '10s'])
    await sleep(2500)
    await cloud.kill()
    const killedAt = Date.now()
    await waitFor('the edge to notice', async () => (await scrapeBridge(edge.httpPort))?.connected === false, 10_000)
    await sleep(10_000 - (Date.now() - killedAt))
    assert.ok(((await scrapeBridge(edge.httpPort))?.lagBytes ?? 0) > 0, 'the edge buffered during the outage')
    cloud = await startCloudProcess(cloudArgs)
    const result = await sim.done
    assert.equal(result.code, 0, result.stderr)
    const r = result.report as { runId: number, sent: number, lost: number }
    assert.equal(r.lost, 0)
    await waitFor('the backlog drained', async () => { const s = await scrapeBridge(edge.httpPort); return s !== undefined && s.connected && s.lagBytes === 0 }, 30_000)
    const acc = await storeAccounting(cloud.httpPort, r.runId)
    assert.deepEqual(acc, { records: r.sent, distinct: r.sent, duplicates: 0, outOfOrder: 0, gaps: 0, devices: 20 })
  } finally {
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
})
