// One contract suite for every MetaStore implementation (DESIGN.md §3.3): the memory store and
// the LevelDB store must be indistinguishable to their callers.
import { describe, test, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import type { MetaStore } from '../../src/meta/types.js'
import { isTributaryError } from '../../src/errors/index.js'
import { tempDir } from '../helpers/net.js'
import { JetStreamMetaStore } from '../../src/meta/jetstream.js'
import { natsServerPath, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'

interface Impl {
  name: string
  open: () => Promise<MetaStore>
  // Opens the same database again after close (undefined: the implementation keeps nothing).
  reopen?: () => Promise<MetaStore>
}

const dirs: Array<{ remove: () => Promise<void> }> = []
after(async () => { for (const d of dirs) await d.remove() })

async function collect (store: MetaStore, prefix: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = []
  for await (const [k, v] of store.scan(prefix)) out.push([k, v.toString()])
  return out
}

function levelImpl (): Impl {
  let path = ''
  return {
    name: 'LevelMetaStore',
    open: async () => {
      const dir = await tempDir('meta')
      dirs.push(dir)
      path = join(dir.path, 'meta')
      return await LevelMetaStore.open(path)
    },
    reopen: async () => await LevelMetaStore.open(path)
  }
}

// JetStream KV (cloud sessions in a cluster): one nats-server, started on first use. Each open()
// gets a fresh namespace; reopen() opens the last one again (its lock was released by close()).
let nats: NatsCluster | undefined
after(async () => { await nats?.stop() })
function jetStreamImpl (): Impl {
  let n = 0
  let ns = ''
  const openNs = async (): Promise<MetaStore> => {
    nats ??= await startNatsCluster({ size: 1 })
    return await JetStreamMetaStore.open({ servers: nats.urls, bucket: 'META_CONTRACT', namespace: ns, replicas: 1 })
  }
  return {
    name: 'JetStreamMetaStore',
    open: async () => { ns = `ns${++n}`; return await openNs() },
    reopen: openNs
  }
}

const impls: Array<() => Impl> = [
  () => ({ name: 'MemoryMetaStore', open: async () => new MemoryMetaStore() }),
  levelImpl
]
// Without nats-server the JetStream implementation is left out, except under CI=true, where
// its first test fails (startNatsCluster throws).
if (natsServerPath() !== undefined || process.env.CI === 'true') impls.push(jetStreamImpl)

for (const makeImpl of impls) {
  const impl = makeImpl()
  describe(`MetaStore contract: ${impl.name}`, () => {
    test('get of a missing key is undefined; put then get round-trips bytes', async () => {
      const store = await impl.open()
      assert.equal(await store.get('nope'), undefined)
      const value = Buffer.from([0, 1, 2, 255])
      await store.put('k', value)
      assert.deepEqual(await store.get('k'), value)
      await store.put('k', Buffer.from('second'))
      assert.equal((await store.get('k'))?.toString(), 'second')
      await store.close()
    })

    test('stored values do not alias the caller\'s buffer', async () => {
      const store = await impl.open()
      const value = Buffer.from('abc')
      await store.put('k', value)
      value[0] = 0x7a
      const got = await store.get('k')
      assert.equal(got?.toString(), 'abc')
      if (got !== undefined) got[1] = 0x7a
      assert.equal((await store.get('k'))?.toString(), 'abc')
      await store.close()
    })

    test('del removes a key; deleting a missing key is not an error', async () => {
      const store = await impl.open()
      await store.put('a', Buffer.from('1'))
      await store.del('a')
      assert.equal(await store.get('a'), undefined)
      await store.del('never-there')
      await store.close()
    })

    test('sync writes are accepted', async () => {
      const store = await impl.open()
      await store.put('s', Buffer.from('x'), { sync: true })
      await store.batch([{ type: 'put', key: 't', value: Buffer.from('y') }], { sync: true })
      await store.del('s', { sync: true })
      assert.equal(await store.get('s'), undefined)
      assert.equal((await store.get('t'))?.toString(), 'y')
      await store.close()
    })

    test('batch applies puts and dels together, in order', async () => {
      const store = await impl.open()
      await store.put('old', Buffer.from('o'))
      await store.batch([
        { type: 'put', key: 'a', value: Buffer.from('1') },
        { type: 'put', key: 'b', value: Buffer.from('2') },
        { type: 'del', key: 'old' },
        { type: 'put', key: 'a', value: Buffer.from('3') }
      ])
      assert.deepEqual(await collect(store, ''), [['a', '3'], ['b', '2']])
      await store.close()
    })

    test('a batch with an invalid op is rejected whole: nothing of it is applied', async () => {
      const store = await impl.open()
      await assert.rejects(
        store.batch([
          { type: 'put', key: 'a', value: Buffer.from('1') },
          { type: 'put', key: 'b', value: 'not a buffer' as unknown as Buffer }
        ]),
        (err: unknown) => isTributaryError(err, 'TRIB_ERR_META_IO')
      )
      assert.equal(await store.get('a'), undefined)
      await store.close()
    })

    test('scan yields exactly the keys with the prefix, in UTF-8 byte order', async () => {
      const store = await impl.open()
      // 'sub:ab\u0000' must not match prefix 'sub:abc' and vice versa; the astral character
      // (U+1F600, UTF-8 F0..) sorts after U+FFEE (EF..) in byte order, before it in UTF-16 order.
      const keys = ['sub:b\u0000x', 'sub:a\u0000z', 'sub:a\u0000\u{1F600}', 'sub:a\u0000\uffee', 'sub:ab\u0000y', 'sua', 'su', 'sub;', 'ret:a']
      for (const k of keys) await store.put(k, Buffer.from(k))
      assert.deepEqual((await collect(store, 'sub:a\u0000')).map(([k]) => k), ['sub:a\u0000z', 'sub:a\u0000\uffee', 'sub:a\u0000\u{1F600}'])
      assert.deepEqual((await collect(store, 'sub:')).map(([k]) => k), ['sub:a\u0000z', 'sub:a\u0000\uffee', 'sub:a\u0000\u{1F600}', 'sub:ab\u0000y', 'sub:b\u0000x'])
      assert.deepEqual(await collect(store, 'none:'), [])
      const values = await collect(store, 'ret:')
      assert.deepEqual(values, [['ret:a', 'ret:a']])
      await store.close()
    })

    test('scan sees many keys (more than one iterator batch) in order', async () => {
      const store = await impl.open()
      const ops = []
      for (let i = 0; i < 3000; i++) ops.push({ type: 'put' as const, key: `n:${String(i).padStart(5, '0')}`, value: Buffer.from(String(i)) })
      await store.batch(ops)
      const got = await collect(store, 'n:')
      assert.equal(got.length, 3000)
      for (let i = 0; i < 3000; i++) assert.equal(got[i][1], String(i))
      await store.close()
    })

    test('operations after close fail with TRIB_ERR_META_IO', async () => {
      const store = await impl.open()
      await store.put('a', Buffer.from('1'))
      await store.close()
      await assert.rejects(store.get('a'), (err: unknown) => isTributaryError(err, 'TRIB_ERR_META_IO'))
      await assert.rejects(store.put('a', Buffer.from('2')), (err: unknown) => isTributaryError(err, 'TRIB_ERR_META_IO'))
      await assert.rejects(collect(store, ''), (err: unknown) => isTributaryError(err, 'TRIB_ERR_META_IO'))
    })

    if (impl.reopen !== undefined) {
      const reopen = impl.reopen
      test('data survives close and reopen', async () => {
        const store = await impl.open()
        await store.batch([
          { type: 'put', key: 'cur:a', value: Buffer.from('1') },
          { type: 'put', key: 'cur:b', value: Buffer.from('2') }
        ])
        await store.del('cur:a')
        await store.close()
        const again = await reopen()
        assert.deepEqual(await collect(again, 'cur:'), [['cur:b', '2']])
        await again.close()
      })

      test('a second open of the same directory fails while the first is open', async () => {
        const store = await impl.open()
        await assert.rejects(reopen(), (err: unknown) => isTributaryError(err, 'TRIB_ERR_META_IO'))
        await store.close()
      })
    }
  })
}
