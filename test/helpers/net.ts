import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// A free loopback TCP port, for servers that cannot take port 0 themselves (mosquitto, nats).
// Prefer listening on port 0 and reading the port back where the server allows it.
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') { reject(new Error('no port')); return }
      server.close(() => resolve(address.port))
    })
  })
}

export async function tempDir (prefix: string): Promise<{ path: string, remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `tributary-${prefix}-`))
  return { path, remove: async () => { await rm(path, { recursive: true, force: true }) } }
}

// Polls `check` until it returns true or `timeoutMs` passes (then throws with `what`).
// For waiting on real processes and sockets; never used to time anything.
export async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
