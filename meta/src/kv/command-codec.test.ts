import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProposal, encodeProposal, type Proposal } from './command-codec.js';

test('a put is binary: golden bytes', () => {
  const enc = Buffer.from(encodeProposal({ id: '1:a:7', cmd: { op: 'put', key: '/k', value: Buffer.from('v') } }));
  assert.equal(enc.toString('hex'), '01' + '00' + '0500' + Buffer.from('1:a:7').toString('hex') + '02000000' + '2f6b' + '01000000' + '76');
});

test('puts with lease and prevKv, and every other command, round-trip', () => {
  const cases: Proposal[] = [
    { id: '1:x:1', cmd: { op: 'put', key: '/a/\u00ff', value: Buffer.from([0, 1, 2]), lease: 12345, prevKv: true } },
    { id: '1:x:2', cmd: { op: 'put', key: '', value: Buffer.alloc(0) } },
    { id: '1:x:3', cmd: { op: 'delete', key: '/a', rangeEnd: '/b', prevKv: true } },
    {
      id: '1:x:4',
      cmd: {
        op: 'txn',
        compare: [{ key: '/a', target: 'value', result: '=', value: Buffer.from('x') }],
        success: [{ op: 'put', key: '/a', value: Buffer.from('y') }],
        failure: [{ op: 'range', key: '/a' }],
      },
    },
    { id: '1:x:5', cmd: { op: 'leaseGrant', ttlMs: 5000, id: 9 } },
    { id: '1:x:6', cmd: { op: 'leaseRevoke', id: 9 } },
  ];
  for (const p of cases) assert.deepEqual(decodeProposal(encodeProposal(p)), p);
});

test('proposals written by earlier versions (plain JSON) are still read', () => {
  const legacy = Buffer.from(JSON.stringify({ id: '2:y:1', cmd: { op: 'put', key: '/old', value: Buffer.from('v').toString('base64') } }));
  assert.deepEqual(decodeProposal(legacy), { id: '2:y:1', cmd: { op: 'put', key: '/old', value: Buffer.from('v') } });
});

test('truncated or unknown payloads are refused with an error', () => {
  const enc = Buffer.from(encodeProposal({ id: '1:a:7', cmd: { op: 'put', key: '/key', value: Buffer.from('value'), lease: 3 } }));
  for (let n = 1; n < enc.length; n++) assert.throws(() => decodeProposal(enc.subarray(0, n)));
  assert.throws(() => decodeProposal(Buffer.from([0x09, 1, 2])), /unknown form/);
});
