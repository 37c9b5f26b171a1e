// Starts and stops real `tributary edge` processes (node dist/cli.js edge) for tests. Listens on
// ephemeral ports (port 0) on 127.0.0.1 and reads the bound ports from the broker's
// {"msg":"listening",...} log line. Build first: `npx tsup` (npm test's pretest does).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

export interface EdgeProcess {
  pid: number
  mqttPort: number
  wsPort: number
  httpPort: number
  // -1 unless started with --tls-port
  tlsPort: number
  // mqtt://127.0.0.1:<mqttPort> and ws://127.0.0.1:<wsPort>
  url: string
  wsUrl: string
  child: ChildProcess
  // Everything the process wrote so far (stdout + stderr).
  output: () => string
  // Resolves with the exit code (null when killed by a signal) once the process has exited.
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  // SIGTERM and wait for the exit (graceful shutdown); returns the exit code.
  stop: () => Promise<number | null>
  // SIGKILL and wait for the exit.
  kill: () => Promise<void>
}

export interface StartEdgeOptions {
  dataDir: string
  // Extra flags, e.g. ['--max-packet-bytes', '1024'].
  args?: readonly string[]
  env?: NodeJS.ProcessEnv
  // How long start-up may take before the test fails.
  timeoutMs?: number
  // Run another program instead of `node dist/cli.js` (e.g. an arm64 bundle under qemu): the
  // executable and the arguments that come before `edge`.
  command?: { file: string, args: readonly string[], env?: NodeJS.ProcessEnv }
}

const live = new Set<ChildProcess>()
// A test that fails half-way must not leave brokers behind: kill ours (by PID) on exit.
process.once('exit', () => { for (const c of live) c.kill('SIGKILL') })

function ensureBuilt (): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsup\` before these tests`)
}

export async function startEdge (opts: StartEdgeOptions): Promise<EdgeProcess> {
  if (opts.command === undefined) ensureBuilt()
  const prefix = opts.command?.args ?? [CLI]
  const args = [...prefix, 'edge', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--data-dir', opts.dataDir, ...(opts.args ?? [])]
  const child = spawn(opts.command?.file ?? process.execPath, args, { env: { ...process.env, ...opts.command?.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  let out = ''
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { live.delete(child); resolve({ code, signal }) })
  })
  const ports = await new Promise<{ mqttPort: number, wsPort: number, httpPort: number, tlsPort: number }>((resolve, reject) => {
    let pending = ''
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`edge did not start within ${opts.timeoutMs ?? 15_000} ms:\n${out}`)) }, opts.timeoutMs ?? 15_000)
    child.stdout!.setEncoding('utf8')
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (chunk: string) => { out += chunk })
    child.stdout!.on('data', (chunk: string) => {
      out += chunk
      pending += chunk
      let nl: number
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (!line.includes('"listening"')) continue
        const entry = JSON.parse(line) as { msg: string, mqttPort: number, wsPort: number, httpPort: number, tlsPort: number }
        if (entry.msg === 'listening') { clearTimeout(timer); resolve({ mqttPort: entry.mqttPort, wsPort: entry.wsPort, httpPort: entry.httpPort, tlsPort: entry.tlsPort }) }
      }
    })
    void exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`edge exited (code ${code}, signal ${signal}) before listening:\n${out}`)) })
  })
  const pid = child.pid!
  return {
    pid,
    ...ports,
    url: `mqtt://127.0.0.1:${ports.mqttPort}`,
    wsUrl: `ws://127.0.0.1:${ports.wsPort}`,
    child,
    output: () => out,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM')
      return (await exited).code
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL')
      await exited
    }
  }
}

// Runs `tributary edge <args>` to completion (for --help and bad-config tests).
export async function runEdgeCli (args: readonly string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null, stdout: string, stderr: string }> {
  ensureBuilt()
  const child = spawn(process.execPath, [CLI, 'edge', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  const code = await new Promise<number | null>((resolve) => { child.once('exit', (c) => { live.delete(child); resolve(c) }) })
  return { code, stdout, stderr }
}
