// The young-generation cap (src/mqtt/young-generation.ts) really stops V8's new space from growing
// past the cap under an allocation pattern that grows it without the cap (checked after stop()).
// node:test runs each file in its own process, so the V8 flag changes stay in this process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { capYoungGeneration, currentSemiSpaceBytes } from '../../src/mqtt/young-generation.js'
import { silentLogger } from '../../src/log/index.js'

const MIB = 1024 * 1024
const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

// Like a connection storm: objects that survive a few scavenges (kept in a rolling window), with a
// loop turn between chunks so GC observers run, as they do in a server.
async function allocateSurvivors (rounds: number): Promise<number> {
  let maxSemi = 0
  const keep: unknown[] = []
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 20_000; i++) keep.push({ id: i, tags: [r, i], name: `conn-${r}-${i}` })
    if (keep.length > 400_000) keep.splice(0, 200_000)
    await turn()
    maxSemi = Math.max(maxSemi, currentSemiSpaceBytes())
  }
  return maxSemi
}

test('capYoungGeneration keeps the semi-space at the cap; after stop() V8 grows it again', async () => {
  const cap = capYoungGeneration(2, silentLogger())
  assert.ok(cap !== undefined)
  try {
    const maxWithCap = await allocateSurvivors(150)
    assert.ok(maxWithCap <= 2 * MIB, `semi-space reached ${maxWithCap / MIB} MiB with a 2 MiB cap`)
    assert.equal(cap.frozen, true, 'the cap was reached, so growth is stopped')
  } finally {
    cap.stop()
  }
  assert.equal(cap.frozen, false)
  // Control: the same allocation without the cap grows the semi-space past it, so the assertion
  // above measured the cap and not a pattern too small to grow the new space.
  const maxWithout = await allocateSurvivors(150)
  assert.ok(maxWithout > 2 * MIB, `without the cap the semi-space stayed at ${maxWithout / MIB} MiB`)
})

test('capYoungGeneration(0) leaves V8 alone', () => {
  assert.equal(capYoungGeneration(0, silentLogger()), undefined)
})
