// One contract for both stores of cloud session records (cloud/sessions/kv.ts): LevelDB/memory
// through MetaSessionKV and the JetStream KV bucket through JetStreamSessionKV must agree on
// compare-and-set, deletion and hand-over requests. Plus what only the bucket does: its TTL
// (the session expiry) removes a record nobody rewrote.
import { describe, test, after } from 'node:test'
import assert from 'node:assert/strict'
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { MetaSessionKV, type SessionKV } from '../../cloud/sessions/kv.js'
import { JetStreamSessionKV } from '../../cloud/sessions/kv-jetstream.js'
import type { SessionRecord } from '../../cloud/sessions/record.js'
import { natsServerPath, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'
import { waitFor } from '../helpers/net.js'

const rec = (over: Partial<SessionRecord> = {}): SessionRecord => ({ subs: [{ topic: 'up/+/#', qos: 1, since: 3 }], cursor: 7, packetId: 1, sentUpTo: 7, released: [], acked: [], holder: '', epoch: 1, heldUntilMs: 0, touchedMs: 1, ...over })

let nats: NatsCluster | undefined
let bucketSeq = 0
after(async () => { await nats?.stop() })

async function jetStreamKV (expiryMs = 3_600_000): Promise<JetStreamSessionKV> {
  nats ??= await startNatsCluster({ size: 1 })
  return await JetStreamSessionKV.open({ servers: nats.urls, bucket: `CSESS_CONTRACT_${bucketSeq++}`, prefix: `T${bucketSeq}`, replicas: 1, expiryMs, logger: silentLogger() })
}

const impls: Array<{ name: string, open: () => Promise<SessionKV> }> = [
  { name: 'MetaSessionKV', open: async () => new MetaSessionKV(new MemoryMetaStore(), silentLogger()) }
]
// Without nats-server the JetStream implementation is left out, except under CI=true, where its
// first test fails (startNatsCluster throws).
if (natsServerPath() !== undefined || process.env.CI === 'true') impls.push({ name: 'JetStreamSessionKV', open: async () => await jetStreamKV() })

for (const impl of impls) {
  describe(`session records: ${impl.name}`, () => {
    test('create, compare-and-set on the revision, delete, create again', async () => {
      const kv = await impl.open()
      try {
        assert.equal(await kv.get('a/b ü'), undefined)
        const first = await kv.put('a/b ü', rec(), 0)
        assert.equal(first.status, 'ok')
        const r1 = (first as { revision: number }).revision
        assert.deepEqual(await kv.put('a/b ü', rec(), 0), { status: 'conflict' })
        assert.deepEqual(await kv.get('a/b ü'), { record: rec(), revision: r1 })
        const second = await kv.put('a/b ü', rec({ cursor: 9, holder: 'n#1', epoch: 2 }), r1)
        assert.equal(second.status, 'ok')
        assert.deepEqual(await kv.put('a/b ü', rec({ cursor: 1 }), r1), { status: 'conflict' }, 'a stale revision is refused')
        assert.equal((await kv.get('a/b ü'))?.record.cursor, 9)
        await kv.delete('a/b ü')
        assert.equal(await kv.get('a/b ü'), undefined)
        assert.equal((await kv.put('a/b ü', rec({ epoch: 3 }), 0)).status, 'ok', 'a removed session can be created again')
        assert.equal((await kv.get('a/b ü'))?.record.epoch, 3)
      } finally { await kv.close() }
    })

    test('hand-over requests reach the holder that registered; nobody answers for a holder that is gone', async () => {
      const kv = await impl.open()
      try {
        const asked: string[] = []
        kv.onReleaseRequest('node-a#abc123', async (clientId) => { asked.push(clientId) })
        assert.equal(await kv.requestRelease('c1', 'node-a#abc123'), true)
        assert.deepEqual(asked, ['c1'])
        const started = Date.now()
        assert.equal(await kv.requestRelease('c1', 'node-z#dead00'), false)
        assert.ok(Date.now() - started < 1500, 'a gone holder is known at once (no responders), not after a timeout')
      } finally { await kv.close() }
    })
  })
}

test('JetStream session bucket: its TTL (the session expiry) removes a record nobody rewrote', { skip: natsServerPath() === undefined && process.env.CI !== 'true' ? 'nats-server not installed' : false }, async () => {
  const kv = await jetStreamKV(1_000)
  try {
    await kv.put('gone', rec(), 0)
    assert.ok(await kv.get('gone') !== undefined)
    await waitFor('the record expired', async () => await kv.get('gone') === undefined, 10_000, 200)
    assert.equal((await kv.put('gone', rec(), 0)).status, 'ok', 'and the client id starts a new session')
  } finally { await kv.close() }
})
