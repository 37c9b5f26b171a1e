// Fencing, deterministically (issue 5): "if an edge reconnects to a second node while the first
// still believes it holds it, only one writes". Real processes: a 3-node NATS cluster and two
// `tributary cloud` nodes; the edge is played by raw bridge connections, so the test decides
// exactly what each node is sent and when:
//   1. the edge connects to node A, which takes its lease, and writes offsets 0..10;
//   2. A is frozen (SIGSTOP) and so stops renewing; the edge connects to node B, which is
//      refused (FENCED) until A's lease has run out, then gets WELCOME with a newer lease;
//   3. a batch for offsets 10..20 ("stale") is sent on the old connection, into frozen A's socket,
//      and a batch for the same offsets ("fresh") through B, which B acknowledges;
//   4. A is resumed, still believing it holds the edge: whatever it tries first (renewing its
//      lease or appending the stale batch), the store refuses it and A closes the old connection
//      with TRIB_ERR_STORE_FENCED (close 4004). The store holds "fresh" and never "stale".
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { waitFor } from '../helpers/net.js'
import type { NatsCluster } from '../helpers/nats-cluster.js'
import { FrameType, RefuseCode, encodeFrame, type BridgeFrame } from '../../src/protocol/bridge-frames.js'
import { openBridge, type BridgeConn } from '../helpers/bridge-conn.js'
import { clusterAvailable, sleep, startCluster, startClusterCloud, type CloudNodeHandle } from '../integration/cluster-harness.js'

const REPLACED = 4004 // cloud/bridge-session.ts CloseCode.REPLACED

type Conn = BridgeConn
const open = openBridge

async function hello (c: Conn): Promise<BridgeFrame> {
  c.ws.send(encodeFrame({ type: FrameType.HELLO, edgeId: 'edge-a', token: 'tok-a', checkpoint: 0, lastDownlinkSeq: 0 }))
  await waitFor('an answer to HELLO', () => c.frames.length > 0, 10_000)
  return c.frames[0]
}

function batch (fromOffset: number, payload: string): Buffer {
  return encodeFrame({ type: FrameType.BATCH, edgeId: 'edge-a', fromOffset, toOffset: fromOffset + 10, records: [{ offset: fromOffset, nextOffset: fromOffset + 10, timestampMs: Date.now(), qos: 1, retain: false, topic: 'devices/1/t', payload: Buffer.from(payload) }] })
}

async function acked (c: Conn, committedOffset: number): Promise<void> {
  await waitFor(`ACK ${committedOffset}`, () => c.frames.some((f) => f.type === FrameType.ACK && f.committedOffset === committedOffset), 15_000)
}

async function metric (httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
  return m === null ? -1 : Number(m[1])
}

test('an edge moved to node B while node A was frozen: only B writes; A, resumed, is refused (TRIB_ERR_STORE_FENCED)', { timeout: 60_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  const dirs: Array<{ remove: () => Promise<void> }> = []
  let nats: NatsCluster | undefined
  let nodeA: CloudNodeHandle | undefined
  let nodeB: CloudNodeHandle | undefined
  const conns: Conn[] = []
  try {
    nats = await startCluster()
    nodeA = await startClusterCloud(nats, 'node-a', dirs)
    nodeB = await startClusterCloud(nats, 'node-b', dirs)

    const old = await open(nodeA.proc.bridgeUrl)
    conns.push(old)
    assert.equal((await hello(old)).type, FrameType.WELCOME)
    old.ws.send(batch(0, 'a0'))
    await acked(old, 10)

    const pidA = nodeA.proc.child.pid as number
    process.kill(pidA, 'SIGSTOP')
    try {
      // B refuses the edge while A's lease (3 s in the harness) is alive, then takes it.
      let fresh: Conn | undefined
      let refusals = 0
      const deadline = Date.now() + 20_000
      while (fresh === undefined) {
        assert.ok(Date.now() < deadline, 'node B never took the edge')
        const c = await open(nodeB.proc.bridgeUrl)
        conns.push(c)
        const answer = await hello(c)
        if (answer.type === FrameType.WELCOME) { fresh = c; break }
        assert.equal(answer.type, FrameType.REFUSE)
        assert.equal((answer as { code: number }).code, RefuseCode.FENCED)
        refusals++
        c.ws.close()
        await sleep(250)
      }
      t.diagnostic(`node B refused the edge ${refusals} times while A's lease was alive`)
      assert.equal((fresh.frames[0] as { committedOffset: number }).committedOffset, 10)
      old.ws.send(batch(10, 'stale')) // sits in frozen A's socket
      fresh.ws.send(batch(10, 'fresh'))
      await acked(fresh, 20)
    } finally {
      process.kill(pidA, 'SIGCONT')
    }

    const closed = await Promise.race([old.closed, sleep(15_000).then(() => undefined)])
    assert.deepEqual(closed, { code: REPLACED, reason: 'TRIB_ERR_STORE_FENCED' }, 'node A closed the stale connection as fenced')
    assert.ok(!old.frames.some((f) => f.type === FrameType.ACK && f.committedOffset === 20), 'node A acknowledged nothing after the move')
    assert.ok(old.frames.some((f) => f.type === FrameType.ERROR && (f as { code: string }).code === 'TRIB_ERR_STORE_FENCED'))
    assert.ok(await metric(nodeA.proc.httpPort, 'tributary_cloud_bridge_fenced_total') >= 1)

    // Only one wrote: offsets 0..20 are "a0" and "fresh", once each.
    const res = await (await fetch(`http://127.0.0.1:${nodeB.proc.httpPort}/replay?edge=edge-a&topic=devices/1/t&fromSeq=0`)).json() as { records: Array<{ edgeOffset: number, payloadBase64: string }> }
    assert.deepEqual(res.records.map((r) => [r.edgeOffset, Buffer.from(r.payloadBase64, 'base64').toString()]), [[0, 'a0'], [10, 'fresh']])
  } finally {
    for (const c of conns) c.ws.terminate()
    await nodeA?.proc.kill()
    await nodeB?.proc.kill()
    await nats?.stop()
    for (const d of dirs) await d.remove()
  }
})
