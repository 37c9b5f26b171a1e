// Shared set-up of the cloud-cluster tests (issue 5): a real 3-node nats-server cluster, cloud
// nodes as real `tributary cloud --store nats://...` processes, real `tributary edge` processes
// bridged to them, and helpers to account the store and find the uplink stream's leader.
// Everything listens on ephemeral loopback ports and is stopped by PID.
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { freePort, tempDir } from '../helpers/net.js'
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.js'
import { natsServerPath, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'
import { startEdge, type EdgeProcess } from '../helpers/edge-process.js'
import { scrapeBridge } from '../helpers/bridge-processes.js'

export const TOKENS = ['edge-a=tok-a', 'edge-b=tok-b', 'edge-c=tok-c']

// True when the tests can run; under CI=true a missing nats-server fails instead of skipping.
export function clusterAvailable (t: { skip: (msg?: string) => void }): boolean {
  if (natsServerPath() !== undefined) return true
  if (process.env.CI === 'true') throw new Error('nats-server not found (CI=true: required). Install Debian package nats-server.')
  t.skip('nats-server not installed')
  return false
}

export interface CloudNodeHandle {
  proc: CloudProcess
  args: string[]
  restart: () => Promise<void>
}

// A cloud node with fixed ports (so it can be restarted where edges expect it) and its own data
// dir (it holds only the empty session log: the node is stateless).
export async function startClusterCloud (nats: NatsCluster, nodeId: string, dirs: Array<{ remove: () => Promise<void> }>, extra: string[] = []): Promise<CloudNodeHandle> {
  const dir = await tempDir(`cc-${nodeId}`)
  dirs.push(dir)
  // Fixed ports come from freePort(), which can race with another test's ephemeral port: on
  // EADDRINUSE at the first start, pick new ports (a restart must reuse them and cannot).
  for (let attempt = 1; ; attempt++) {
    const [mqttPort, bridgePort, httpPort] = [await freePort(), await freePort(), await freePort()]
    const args = ['--store', nats.urls.join(','), '--node-id', nodeId, '--data-dir', dir.path, '--mqtt-port', String(mqttPort), '--bridge-port', String(bridgePort), '--http-port', String(httpPort),
      ...TOKENS.flatMap((t) => ['--edge-token', t]), '--bridge-lease-ttl', '3s', '--log-level', 'warn', ...extra]
    try {
      const handle: CloudNodeHandle = {
        proc: await startCloudProcess(args, 30_000),
        args,
        restart: async () => { handle.proc = await startCloudProcess(args, 30_000) }
      }
      return handle
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err
    }
  }
}

export async function startClusterEdge (edgeId: string, cloudUrls: string[], dirs: Array<{ remove: () => Promise<void> }>): Promise<EdgeProcess> {
  const dir = await tempDir(`ce-${edgeId}`)
  dirs.push(dir)
  const token = TOKENS.find((t) => t.startsWith(`${edgeId}=`))?.split('=')[1] ?? ''
  return await startEdge({
    dataDir: dir.path,
    args: [...cloudUrls.flatMap((u) => ['--cloud-url', u]), '--edge-id', edgeId, '--cloud-token', token, '--forward', 'devices/#',
      '--bridge-backoff-min', '100ms', '--bridge-backoff-max', '1s', '--bridge-heartbeat', '1s', '--bridge-heartbeat-timeout', '4s', '--bridge-connect-timeout', '2s', '--log-level', 'warn']
  })
}

export async function startCluster (): Promise<NatsCluster> {
  return await startNatsCluster({ size: 3 })
}

// Index of the nats-server leading the uplink stream (the harshest one to kill).
export async function uplinkLeader (nats: NatsCluster, stream = 'TRIB_UP'): Promise<number> {
  const nc = await connect({ servers: nats.nodes.filter((n) => n.state === 'running').map((n) => n.url) })
  try {
    const info = await (await jetstreamManager(nc)).streams.info(stream)
    const i = nats.nodes.findIndex((n) => n.name === info.cluster?.leader)
    return i >= 0 ? i : 0
  } finally { await nc.close() }
}

// The edge's bridge is connected and has nothing unacked.
export async function drained (edge: EdgeProcess): Promise<boolean> {
  const s = await scrapeBridge(edge.httpPort)
  return s !== undefined && s.connected && s.lagBytes === 0
}

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export interface ScenarioContext {
  nats: NatsCluster
  clouds: CloudNodeHandle[]
  edges: EdgeProcess[]
}

export interface ScenarioOptions {
  // Cloud URLs of each edge, as indexes into the cloud nodes (edge-a, edge-b, ...).
  edgeClouds: number[][]
  // Simulator settings per edge (10 devices at `rate`/s for `durationS`).
  durationS: number
  rate?: number
  // Where the checker subscribes: 'edge' (default) or the index of a cloud node.
  checkAt?: 'edge' | number
  // Runs while the devices publish (the fault).
  fault: (ctx: ScenarioContext) => Promise<void>
  drainTimeoutMs?: number
  // Debugging aid: runs after the accounting, before everything is stopped.
  inspect?: (ctx: ScenarioContext, res: ScenarioResult) => Promise<void>
}

export interface ScenarioResult { sent: number[], accounts: Array<Record<string, number>> }

// Starts 3 NATS servers, 2 cloud nodes and one edge per entry of `edgeClouds`, runs one simulator
// per edge while `fault` runs, waits until every edge has drained, then accounts each run in the
// store (through the first live cloud node). Stops everything by PID.
export async function runClusterScenario (opts: ScenarioOptions): Promise<ScenarioResult> {
  const { storeAccounting, spawnSimProcess } = await import('../helpers/bridge-processes.js')
  const { waitFor } = await import('../helpers/net.js')
  const dirs: Array<{ remove: () => Promise<void> }> = []
  let nats: NatsCluster | undefined
  const clouds: CloudNodeHandle[] = []
  const edges: EdgeProcess[] = []
  try {
    nats = await startCluster()
    clouds.push(await startClusterCloud(nats, 'node-a', dirs), await startClusterCloud(nats, 'node-b', dirs))
    const ids = ['edge-a', 'edge-b', 'edge-c']
    for (let i = 0; i < opts.edgeClouds.length; i++) {
      edges.push(await startClusterEdge(ids[i], opts.edgeClouds[i].map((c) => clouds[c].proc.bridgeUrl), dirs))
    }
    const sims = edges.map((e, i) => {
      const check = opts.checkAt === undefined || opts.checkAt === 'edge'
        ? []
        : ['--check-url', `mqtt://127.0.0.1:${clouds[opts.checkAt].proc.mqttPort}`, '--check-prefix', `up/${ids[i]}/`]
      return spawnSimProcess(['--broker', e.url, '--id-prefix', `s${i}`, '--devices', '10', '--rate', String(opts.rate ?? 20), '--duration', `${opts.durationS}s`,
        '--payload', 'binary', '--payload-bytes', '100', '--drain-timeout', '30s', '--expect-no-loss', ...check])
    })
    await opts.fault({ nats, clouds, edges })
    const results = await Promise.all(sims.map(async (s) => await s.done))
    for (const r of results) {
      if (r.code !== 0) throw new Error(`simulator failed (${String(r.code)}): ${r.stderr}\n${JSON.stringify(r.report)}`)
    }
    for (const e of edges) await waitFor('edge drained', async () => await drained(e), opts.drainTimeoutMs ?? 30_000)
    const live = clouds.find((c) => c.proc.child.exitCode === null && c.proc.child.signalCode === null)
    if (live === undefined) throw new Error('no cloud node left to read the store')
    const accounts: Array<Record<string, number>> = []
    for (const r of results) accounts.push({ ...await storeAccounting(live.proc.httpPort, (r.report as { runId: number }).runId) })
    const res = { sent: results.map((r) => (r.report as { sent: number }).sent), accounts }
    await opts.inspect?.({ nats, clouds, edges }, res)
    return res
  } finally {
    for (const e of edges) await e.kill()
    for (const c of clouds) await c.proc.kill()
    await nats?.stop()
    for (const d of dirs) await d.remove()
  }
}

// Every message of every run in the store exactly once, in per-device order, no gap.
export function exactlyOnce (res: ScenarioResult): Array<{ actual: Record<string, number>, expected: Record<string, number> }> {
  return res.accounts.map((actual, i) => ({ actual, expected: { records: res.sent[i], distinct: res.sent[i], duplicates: 0, outOfOrder: 0, gaps: 0, devices: 10 } }))
}
