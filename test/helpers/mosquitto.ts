// Debian's mosquitto on a free loopback port, for tests and benchmarks: a generated config
// file in a temp dir, started as a child process, stopped by PID.
// Under CI=true a missing binary must FAIL the test, not skip it: use mosquittoOrSkip(t).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { freePort, tempDir, waitFor } from './net.js'

const CANDIDATE_BINARIES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']

export function mosquittoPath (): string | undefined {
  const fromEnv = process.env.MOSQUITTO_BIN
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv
  return CANDIDATE_BINARIES.find((p) => existsSync(p))
}

// Returns the binary path, or undefined after marking the test skipped. Throws under CI=true.
export function mosquittoOrSkip (t: { skip: (msg?: string) => void }): string | undefined {
  const bin = mosquittoPath()
  if (bin !== undefined) return bin
  if (process.env.CI === 'true') throw new Error('mosquitto not found (CI=true: required). Install the Debian package mosquitto.')
  t.skip('mosquitto not installed')
  return undefined
}

export interface MosquittoOptions {
  // Extra lines for mosquitto.conf (e.g. 'max_queued_messages 0').
  extraConfig?: string[]
  // Also a WebSocket listener.
  websockets?: boolean
  // Command prefix, e.g. ['taskset', '-c', '0'] for benchmarks.
  prefix?: string[]
}

export interface Mosquitto {
  readonly port: number
  readonly wsPort: number | undefined
  readonly url: string
  readonly pid: number
  readonly process: ChildProcess
  output: () => string
  stop: () => Promise<void>
}

async function portOpen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => { resolve(false) })
  })
}

export async function startMosquitto (bin: string, opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const dir = await tempDir('mosquitto')
  const port = await freePort()
  const wsPort = opts.websockets === true ? await freePort() : undefined
  const conf = [
    'per_listener_settings false',
    'allow_anonymous true',
    'persistence false',
    `listener ${port} 127.0.0.1`,
    ...(wsPort === undefined ? [] : [`listener ${wsPort} 127.0.0.1`, 'protocol websockets']),
    ...(opts.extraConfig ?? [])
  ]
  const confFile = join(dir.path, 'mosquitto.conf')
  await writeFile(confFile, conf.join('\n') + '\n')
  const prefix = opts.prefix ?? []
  const argv = [...prefix, bin, '-c', confFile]
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  let exited = false
  child.once('exit', () => { exited = true })
  const stop = async (): Promise<void> => {
    if (!exited && child.pid !== undefined) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
      try { process.kill(child.pid, 'SIGTERM') } catch {}
      const t = setTimeout(() => { try { process.kill(child.pid!, 'SIGKILL') } catch {} }, 3000)
      await gone
      clearTimeout(t)
    }
    await dir.remove()
  }
  try {
    await waitFor(`mosquitto on port ${port}`, async () => {
      if (exited) throw new Error(`mosquitto exited at start-up: ${out}`)
      return await portOpen(port)
    }, 10_000)
  } catch (err) {
    await stop()
    throw err
  }
  return { port, wsPort, url: `mqtt://127.0.0.1:${port}`, pid: child.pid!, process: child, output: () => out, stop }
}
