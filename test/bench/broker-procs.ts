// Brokers and the load generator as pinned processes for the broker benchmarks: broker on
// core 0, generator on core 1 (`taskset`), so neither steals the other's CPU.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { mosquittoPath, startMosquitto } from '../helpers/mosquitto.js'
import { tempDir } from '../helpers/net.js'

export type BrokerName = 'edge' | 'aedes' | 'mosquitto'
export interface BrokerProc { name: BrokerName, url: string, pid: number, stop: () => Promise<void> }

const root = new URL('../../', import.meta.url).pathname
export const BROKER_CORE = ['taskset', '-c', '0']
export const GENERATOR_CORE = ['taskset', '-c', '1']

async function stopChild (child: ChildProcess): Promise<void> {
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

export async function startBroker (name: BrokerName, extraConfig: string[] = []): Promise<BrokerProc> {
  if (name === 'mosquitto') {
    const bin = mosquittoPath()
    if (bin === undefined) throw new Error('mosquitto not installed')
    // Debian's defaults, as shipped (Nagle on, like Node's sockets; queue of 1000 per client).
    const m = await startMosquitto(bin, { prefix: BROKER_CORE, extraConfig })
    return { name, url: m.url, pid: m.pid, stop: m.stop }
  }
  if (name === 'aedes') return await startNodeBroker(name, [join(root, 'test/bench/aedes-stock.mjs')])
  const dir = await tempDir('bench-edge')
  return await startNodeBroker(name, [join(root, 'dist/cli.js'), 'edge', '--mqtt-port', '0', '--mqtt-host', '127.0.0.1', '--ws-port', '-1', '--http-port', '-1',
    '--data-dir', join(dir.path, 'data'), '--flush-policy', 'interval', '--max-connections', '20000', '--log-level', 'info'], dir.remove)
}

export function rssBytes (pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? 0 : Number(m[1]) * 1024
  } catch { return 0 }
}

// Runs `tributary sim ... --report json` pinned to the generator core; returns the report.
// While it runs, `onTick` is called every 200 ms (used to sample the broker's memory).
export async function simReport<T> (args: string[], onTick?: () => void): Promise<T> {
  const child = spawn(GENERATOR_CORE[0], [...GENERATOR_CORE.slice(1), process.execPath, join(root, 'dist/cli.js'), 'sim', ...args, '--report', 'json', '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
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
