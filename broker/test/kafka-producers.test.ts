import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MetaClient } from '@robustmq/meta';
import { ProducerStateManager } from '../src/kafka/producers.js';
import { KafkaApiError, KafkaError } from '../src/kafka/errors.js';

/** The two meta calls producer-id allocation makes, over one in-memory key. */
function fakeMeta(): MetaClient {
  let value: Buffer | undefined;
  let rev = 0;
  return {
    get: async () => (value === undefined ? undefined : { key: 'k', value, modRevision: rev, createRevision: 1, version: rev, lease: 0 }),
    txn: async (t: { success: { value: Buffer }[] }) => {
      value = t.success[0]!.value;
      rev++;
      return { succeeded: true, responses: [], revision: rev };
    },
  } as unknown as MetaClient;
}

test('a failed append rolls the sequence back past every batch claimed behind it; the retries are accepted in order', async () => {
  const m = new ProducerStateManager(fakeMeta(), 60_000);
  const { producerId, epoch } = await m.initProducerId(-1n, -1);
  const a = await m.claim('s', producerId, epoch, 0, 5); // seq 0–4
  const b = await m.claim('s', producerId, epoch, 5, 5); // seq 5–9, in flight behind a
  a.failed(); // a's append failed: b (queued behind it) fails too
  b.failed();
  const a2 = await m.claim('s', producerId, epoch, 0, 5);
  a2.done(100n);
  const b2 = await m.claim('s', producerId, epoch, 5, 5);
  b2.done(105n);
  assert.equal((await m.claim('s', producerId, epoch, 5, 5)).duplicateOf, 105n);
});

test('after a failed append the next batch (not the retry) is out of order', async () => {
  const m = new ProducerStateManager(fakeMeta(), 60_000);
  const { producerId, epoch } = await m.initProducerId(-1n, -1);
  (await m.claim('s', producerId, epoch, 0, 5)).done(0n);
  (await m.claim('s', producerId, epoch, 5, 5)).failed();
  await assert.rejects(m.claim('s', producerId, epoch, 10, 5), (e: unknown) => {
    assert.ok(e instanceof KafkaApiError);
    assert.equal(e.kafkaCode, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert.match(e.message, /expected sequence 5/);
    return true;
  });
});
