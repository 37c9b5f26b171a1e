// Starts `tributary cloud` (dist/cli.js, built by `npx tsup`) as a real child process and waits
// for its ready line. Stop it with stop() (SIGTERM) or kill() (SIGKILL), always by PID.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

// Children must not inherit the test runner's context (a node:test child reports over stdout).
function childEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  return env
}

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

export interface CloudProcess {
  child: ChildProcess
  mqttPort: number
  bridgePort: number
  httpPort: number
  bridgeUrl: string
  output: () => string
  stop: () => Promise<void>
  kill: () => Promise<void>
}

export async function startCloudProcess (args: string[], timeoutMs = 15_000): Promise<CloudProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npx tsup first`)
  const child = spawn(process.execPath, [CLI, 'cloud', '--mqtt-host', '127.0.0.1', '--bridge-host', '127.0.0.1', '--http-host', '127.0.0.1', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  let out = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  let readyCleanup = (): void => {}
  const ready = await new Promise<{ mqttPort: number, bridgePort: number, httpPort: number, bridgeUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`cloud did not start in ${timeoutMs} ms:\n${out}`)) }, timeoutMs)
    const onData = (chunk: Buffer): void => {
      out += chunk.toString()
      for (const line of out.split('\n')) {
        if (!line.includes('"cloud-ready"')) continue
        clearTimeout(timer)
        resolve(JSON.parse(line))
        return
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (c: Buffer) => { out += c.toString() })
    const onEarlyExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`cloud exited with ${code}:\n${out}`)) }
    child.once('exit', onEarlyExit)
    readyCleanup = () => { child.off('exit', onEarlyExit) }
  })
  readyCleanup()
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig)
    await exited
  }
  return { child, ...ready, output: () => out, stop: async () => { await signal('SIGTERM') }, kill: async () => { await signal('SIGKILL') } }
}
