// Composition root of `tributary demo` (what `npm start` runs): a cloud node and an edge bridged
// to it, as two real child processes (`tributary cloud`, `tributary edge`, logs in the data dir),
// about 50 simulated devices publishing at the edge (in this process), and a cloud application
// that sends a command to a random device now and then through the cloud (down/...) and measures
// the round trip of its reply (up/...). A status line every few seconds; Ctrl-C stops everything
// in order (devices, edge, cloud).
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { connectAsync, type MqttClient } from 'mqtt'
import { describeFlags, loadConfig, type Schema, type ConfigOf } from '../src/config/index.js'
import { simSchema } from '../src/config/sim.js'
import { createRootLogger } from '../src/log/index.js'
import { runSim, type SimStatus } from '../firmware-sim/run.js'
import { specFromFlags } from '../firmware-sim/scenario.js'

const demoSchema = {
  dataDir: { kind: 'string', default: './data/demo', flag: 'data-dir', doc: 'Where the demo keeps the edge and cloud data and logs', nonEmpty: true },
  devices: { kind: 'int', min: 1, max: 10_000, default: 50, flag: 'devices', doc: 'Simulated devices' },
  ratePerSec: { kind: 'number', min: 0.01, max: 1000, default: 2, flag: 'rate', doc: 'Messages per second per device' },
  edgePort: { kind: 'int', min: 0, max: 65535, default: 1883, flag: 'edge-port', doc: 'Edge MQTT port (devices)' },
  cloudPort: { kind: 'int', min: 0, max: 65535, default: 1884, flag: 'cloud-port', doc: 'Cloud MQTT port (cloud applications)' },
  bridgePort: { kind: 'int', min: 0, max: 65535, default: 9000, flag: 'bridge-port', doc: 'Cloud bridge port' },
  cloudHttpPort: { kind: 'int', min: 0, max: 65535, default: 9100, flag: 'cloud-http-port', doc: 'Cloud HTTP port (/metrics, /replay)' },
  edgeHttpPort: { kind: 'int', min: 0, max: 65535, default: 9101, flag: 'edge-http-port', doc: 'Edge HTTP port (/metrics)' },
  commandEveryMs: { kind: 'duration', min: 100, max: 3_600_000, default: 2_000, flag: 'command-every', doc: 'How often the cloud app sends a command to a random device' },
  statusEveryMs: { kind: 'duration', min: 500, max: 3_600_000, default: 3_000, flag: 'status-every', doc: 'Status line period' },
  durationMs: { kind: 'duration', min: 0, default: 0, flag: 'duration', doc: 'Stop after this long (0 = until Ctrl-C)' }
} as const satisfies Schema
type DemoConfig = ConfigOf<typeof demoSchema>

const EDGE_ID = 'edge-1'
const TOKEN = 'demo-token'

interface Child { name: string, proc: ChildProcess, exited: Promise<void> }

// Starts `tributary <args>` and resolves with its ready line (parsed JSON) once it appears.
async function startChild (name: string, args: string[], logFile: string, isReady: (line: Record<string, unknown>) => boolean): Promise<[Child, Record<string, unknown>]> {
  // Own process group: Ctrl-C reaches only the demo, which then stops the children in order.
  const proc = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const log = createWriteStream(logFile, { flags: 'a' })
  proc.stderr!.pipe(log)
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { resolve() }))
  let buf = ''
  let onEarlyExit = (_code: number | null): void => {}
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${name} did not start within 20 s (see ${logFile})`)) }, 20_000)
    proc.stdout!.on('data', (chunk: Buffer) => {
      log.write(chunk)
      buf += chunk.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (!line.startsWith('{')) continue
        try {
          const msg = JSON.parse(line) as Record<string, unknown>
          if (isReady(msg)) { clearTimeout(timer); resolve(msg) }
        } catch { /* a partial line of someone else's output */ }
      }
    })
    onEarlyExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`${name} exited with code ${code} during start-up (see ${logFile})`)) }
    proc.once('exit', onEarlyExit)
  })
  proc.off('exit', onEarlyExit)
  return [{ name, proc, exited }, ready]
}

async function stopChild (c: Child): Promise<void> {
  if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM')
  const t = setTimeout(() => { c.proc.kill('SIGKILL') }, 10_000)
  await c.exited
  clearTimeout(t)
}

async function metric (port: number, names: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    for (const n of names) {
      const m = new RegExp(`^${n} (\\S+)$`, 'm').exec(text)
      out[n] = m === null ? NaN : Number(m[1])
    }
  } catch { /* the process is stopping */ }
  return out
}

// The cloud application: commands down, replies up, round trip measured.
class CloudApp {
  sent = 0
  replied = 0
  private readonly outstanding = new Map<number, number>()
  private readonly rtts: number[] = []
  private nextId = 0
  constructor (private readonly client: MqttClient) {}

  static async connect (port: number): Promise<CloudApp> {
    const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'demo-cloud-app', protocolVersion: 4 })
    const app = new CloudApp(client)
    client.on('message', (_topic, payload) => { app.onReply(payload) })
    await client.subscribeAsync(`up/${EDGE_ID}/devices/+/replies`, { qos: 1 })
    return app
  }

  send (deviceId: string): void {
    const id = ++this.nextId
    const ts = Date.now()
    this.outstanding.set(id, ts)
    this.sent++
    this.client.publish(`down/${EDGE_ID}/devices/${deviceId}/commands/setpoint`, JSON.stringify({ id, ts, value: Math.round((Math.random() - 0.5) * 20) / 10 }), { qos: 1 })
  }

  private onReply (payload: Buffer): void {
    let r: { id?: unknown }
    try { r = JSON.parse(payload.toString()) } catch { return }
    const at = typeof r.id === 'number' ? this.outstanding.get(r.id) : undefined
    if (at === undefined) return
    this.outstanding.delete(r.id as number)
    this.replied++
    this.rtts.push(Date.now() - at)
    if (this.rtts.length > 100) this.rtts.shift()
  }

  get lastRttMs (): number | undefined { return this.rtts[this.rtts.length - 1] }

  async close (): Promise<void> { await this.client.endAsync() }
}

function fmt (n: number): string {
  if (!Number.isFinite(n)) return '-'
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(Math.round(n))
}

export async function main (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help')) {
    console.log(`usage: tributary demo [flags]\n\nA cloud node, an edge bridged to it and simulated devices, on this machine.\n\n${describeFlags(demoSchema)}`)
    return 0
  }
  const cfg: DemoConfig = loadConfig(demoSchema, { argv, env })
  const dataDir = resolve(cfg.dataDir)
  mkdirSync(dataDir, { recursive: true })
  const quiet = createRootLogger({ level: 'warn', destination: 2 })
  const children: Child[] = []
  const abort = new AbortController()
  let stopping = false
  const onSignal = (): void => {
    if (stopping) { for (const c of children) c.proc.kill('SIGKILL'); process.exit(1) }
    stopping = true
    console.log('\nstopping: devices, then the edge, then the cloud ...')
    abort.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('exit', () => { for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL') })

  let app: CloudApp | undefined
  try {
    console.log(`Tributary demo: data and logs in ${dataDir}`)
    const [cloud] = await startChild('cloud', ['cloud', '--data-dir', join(dataDir, 'cloud'), '--mqtt-port', String(cfg.cloudPort), '--bridge-port', String(cfg.bridgePort),
      '--http-port', String(cfg.cloudHttpPort), '--edge-token', `${EDGE_ID}=${TOKEN}`, '--log-level', 'warn'], join(dataDir, 'cloud.log'), (m) => m.event === 'cloud-ready')
    children.push(cloud)
    const [edge, edgeReady] = await startChild('edge', ['edge', '--data-dir', join(dataDir, 'edge'), '--mqtt-port', String(cfg.edgePort), '--ws-port', '-1', '--http-port', String(cfg.edgeHttpPort),
      '--cloud-url', `ws://127.0.0.1:${cfg.bridgePort}/bridge`, '--edge-id', EDGE_ID, '--cloud-token', TOKEN, '--log-level', 'warn'], join(dataDir, 'edge.log'), (m) => m.msg === 'listening')
    children.push(edge)
    const edgePort = edgeReady.mqttPort as number
    app = await CloudApp.connect(cfg.cloudPort)

    console.log(`
  edge   MQTT for devices   mqtt://127.0.0.1:${edgePort}     metrics http://127.0.0.1:${cfg.edgeHttpPort}/metrics
  cloud  MQTT for apps      mqtt://127.0.0.1:${cfg.cloudPort}     metrics http://127.0.0.1:${cfg.cloudHttpPort}/metrics
  bridge                    ws://127.0.0.1:${cfg.bridgePort}/bridge (edge id ${EDGE_ID})

  Watch the devices at the edge:     mosquitto_sub -p ${edgePort} -t 'devices/#' -v
  Watch the same data in the cloud:  mosquitto_sub -p ${cfg.cloudPort} -t 'up/${EDGE_ID}/#' -v
  Send a command through the cloud:  mosquitto_pub -p ${cfg.cloudPort} -t 'down/${EDGE_ID}/devices/demo-0/commands/setpoint' -q 1 -m '{"id":0,"value":1.5}'
  Replay a topic from the cloud:     curl 'http://127.0.0.1:${cfg.cloudHttpPort}/replay?edge=${EDGE_ID}&topic=devices/demo-0/telemetry&fromTime=0&limit=5'

  Ctrl-C stops everything.
`)
    const simCfg = loadConfig(simSchema, { argv: ['--devices', String(cfg.devices), '--rate', String(cfg.ratePerSec), '--id-prefix', 'demo', '--payload', 'json'] })
    let sim: SimStatus | undefined
    let lastIn = NaN
    let lastAt = Date.now()
    const statusTimer = setInterval(() => {
      void (async () => {
        const e = await metric(cfg.edgeHttpPort, ['tributary_edge_messages_in_total', 'tributary_bridge_lag_messages', 'tributary_bridge_oldest_unacked_age_seconds', 'tributary_bridge_connected'])
        const c = await metric(cfg.cloudHttpPort, ['tributary_cloud_records_appended_total'])
        const now = Date.now()
        const inTotal = e.tributary_edge_messages_in_total
        const rate = (inTotal - lastIn) / ((now - lastAt) / 1000)
        lastIn = inTotal
        lastAt = now
        const rtt = app?.lastRttMs
        if (stopping) return
        console.log(`devices ${sim?.online ?? 0}/${cfg.devices} | edge ${fmt(rate)} msg/s | bridge ${e.tributary_bridge_connected === 1 ? 'up' : 'DOWN'}, lag ${fmt(e.tributary_bridge_lag_messages)} msgs (${(e.tributary_bridge_oldest_unacked_age_seconds ?? 0).toFixed(1)} s) | cloud stored ${fmt(c.tributary_cloud_records_appended_total)} | commands ${app?.replied ?? 0}/${app?.sent ?? 0} round trips${rtt === undefined ? '' : `, last ${rtt} ms`}`)
      })()
    }, cfg.statusEveryMs)
    const cmdTimer = setInterval(() => { app?.send(`demo-${Math.floor(Math.random() * cfg.devices)}`) }, cfg.commandEveryMs)
    if (cfg.durationMs > 0) setTimeout(() => { abort.abort() }, cfg.durationMs).unref()
    await runSim({
      broker: `mqtt://127.0.0.1:${edgePort}`,
      groups: [{ spec: specFromFlags(simCfg), count: cfg.devices }],
      durationMs: 0,
      idPrefix: 'demo',
      rampPerSec: 100,
      seed: 0,
      faults: [],
      commandRatePerSec: 0,
      checkPrefix: '',
      drainTimeoutMs: 3_000,
      statusIntervalMs: 1000,
      onStatus: (s) => { sim = s },
      signal: abort.signal
    }, quiet)
    clearInterval(statusTimer)
    clearInterval(cmdTimer)
    return 0
  } finally {
    await app?.close().catch(() => {})
    for (const c of [...children].reverse()) await stopChild(c)
    console.log('demo stopped')
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
