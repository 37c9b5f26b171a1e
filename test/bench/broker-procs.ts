// Brokers and the load generator as pinned processes for the broker benchmarks: broker on
// core 0, generator on core 1 (`taskset`), so neither steals the other's CPU.
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { mosquittoPath, startMosquitto } from '../helpers/mosquitto.js'
import { tempDir } from '../helpers/net.js'

// The bench runs its own copy of dist/ (cli.js and the chunks it loads): other people rebuild
// dist/ (tsup cleans it first) while a 10-minute bench runs, and a sim or broker started in that
// moment would not find it. The copy lives in the repository's .tmp/ (git-ignored) so that
// node_modules still resolve.
let cliCopy: string | undefined
export function benchCli (): string {
  if (cliCopy === undefined) {
    const dir = join(root, '.tmp', `bench-dist-${process.pid}`)
    cpSync(join(root, 'dist'), dir, { recursive: true })
    process.once('exit', () => { try { rmSync(dir, { recursive: true, force: true }) } catch {} })
    cliCopy = join(dir, 'cli.js')
  }
  return cliCopy
}

export type BrokerName = 'edge' | 'aedes' | 'mosquitto' | FloorName
// Latency floors (node-floor.ts): not brokers, the least a Node process can do in the latency cell.
export type FloorName = 'node-raw' | 'node-mqtt-packet'
export const FLOORS: readonly FloorName[] = ['node-raw', 'node-mqtt-packet']
export interface BrokerProc { name: BrokerName, url: string, pid: number, stop: () => Promise<void> }

const root = new URL('../../', import.meta.url).pathname
export const BROKER_CORE = ['taskset', '-c', '0']
export const GENERATOR_CORE = ['taskset', '-c', '1']

// SIGTERM, then SIGKILL after 5 s; resolves once the child has exited.
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const t = setTimeout(() => { child.kill('SIGKILL') }, 5000)
  await gone
  clearTimeout(t)
}

// Spawns a node broker and waits for a JSON line with a numeric mqttPort on stdout.
async function startNodeBroker (name: BrokerName, args: string[], cleanup?: () => Promise<void>): Promise<BrokerProc> {
  const child = spawn(BROKER_CORE[0], [...BROKER_CORE.slice(1), process.execPath, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const port = await new Promise<number>((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => { reject(new Error(`${name}: no mqttPort within 20 s; stderr: ${err.slice(0, 500)}`)) }, 20_000)
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      for (const line of buf.split('\n').slice(0, -1)) {
        try {
          const msg = JSON.parse(line) as Record<string, unknown>
          const p = msg.mqttPort ?? (msg.ports as Record<string, unknown> | undefined)?.mqtt
          if (typeof p === 'number' && p > 0) { clearTimeout(timer); resolve(p) }
        } catch {}
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1)
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}) before listening: ${err.slice(0, 500)}`)) })
  })
  child.stdout!.resume()
  return { name, url: `mqtt://127.0.0.1:${port}`, pid: child.pid!, stop: async () => { await stopChild(child); await cleanup?.() } }
}

// Mosquitto measured tuned, as the reference numbers were (DESIGN.md §5), not as shipped:
// - set_tcp_nodelay: its default (false) leaves Nagle on, so a small PUBACK or PUBLISH can wait
//   for the peer's delayed ACK (up to 40 ms on Linux): a latency figure of the kernel, not of
//   the broker.
// - max_queued_messages 0 (no limit) and max_inflight_messages 0 (no limit): its defaults (1,000
//   queued, 20 in flight per client) make it acknowledge QoS 1 messages and then drop them for a
//   subscriber that is behind; the Node brokers queue without limit, so this compares like with
//   like. Drops are still counted ("acked but not delivered").
export const MOSQUITTO_TUNING = ['set_tcp_nodelay true', 'max_queued_messages 0', 'max_inflight_messages 0']

export async function startBroker (name: BrokerName, extraConfig: string[] = []): Promise<BrokerProc> {
  if (name === 'mosquitto') {
    const bin = mosquittoPath()
    if (bin === undefined) throw new Error('mosquitto not installed')
    const m = await startMosquitto(bin, { prefix: BROKER_CORE, extraConfig: [...MOSQUITTO_TUNING, ...extraConfig] })
    return { name, url: m.url, pid: m.pid, stop: m.stop }
  }
  if (name === 'aedes') return await startNodeBroker(name, [join(root, 'test/bench/aedes-stock.mjs')])
  if (name === 'node-raw') return await startNodeBroker(name, ['--import', 'tsx', join(root, 'test/bench/node-floor.ts'), 'raw'])
  if (name === 'node-mqtt-packet') return await startNodeBroker(name, ['--import', 'tsx', join(root, 'test/bench/node-floor.ts'), 'mqtt-packet'])
  const dir = await tempDir('bench-edge')
  return await startNodeBroker(name, [benchCli(), 'edge', '--mqtt-port', '0', '--mqtt-host', '127.0.0.1', '--ws-port', '-1', '--http-port', '-1',
    '--data-dir', join(dir.path, 'data'), '--flush-policy', 'interval', '--max-connections', '20000', '--log-level', 'info',
    // A/B of edge settings in one bench run, e.g. BENCH_EDGE_ARGS='--gc-semi-space-mib 0'.
    ...(process.env.BENCH_EDGE_ARGS ?? '').split(' ').filter((a) => a !== '')], dir.remove)
}

export function rssBytes (pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? 0 : Number(m[1]) * 1024
  } catch { return 0 }
}

// CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat; 0 if gone.
export function cpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of stat(5); fields[] starts at field 3.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC
  } catch { return 0 }
}
// sysconf(_SC_CLK_TCK) is 100 on Linux for every architecture Node runs on.
const CLOCK_TICKS_PER_SEC = 100

// Runs `tributary sim ... --report json` pinned to the generator core; returns the report.
// While it runs, `onTick` is called every 200 ms (used to sample the broker's memory).
export async function simReport<T> (args: string[], onTick?: () => void): Promise<T> {
  const child = spawn(GENERATOR_CORE[0], [...GENERATOR_CORE.slice(1), process.execPath, benchCli(), 'sim', ...args, '--report', 'json', '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''; let err = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const tick = onTick === undefined ? null : setInterval(onTick, 200)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (tick !== null) clearInterval(tick)
  // A report is used even with a non-zero exit (idle mode exits 1 when some connections
  // failed; the report says how many succeeded).
  try { return JSON.parse(out) as T } catch {
    throw new Error(`sim ${args.join(' ')} exited ${code} without a report: ${err.slice(0, 500)}`)
  }
}
