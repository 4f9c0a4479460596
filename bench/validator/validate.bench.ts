// Single-thread validator throughput on real signed commits (warm key cache), with a per-stage split,
// side by side with @atproto/repo's validation path on the same frames.
// Run: node_modules/.bin/node bench/validator/validate.bench.ts [commitsPerCurve=300] [seconds=1]
import { MST, MemoryBlockstore, readCarWithRoot, def, verifyCommitSig, verifyProofs } from '@atproto/repo';
import { CID } from 'multiformats/cid';
import { makeKeypair, createRepo, buildCommit, create } from '../../test/unit/validator/helpers.ts';
import { decodeEvent, validateCommit } from '../../src/validator/validate.ts';
import { parseCar, getBlock } from '../../src/validator/car.ts';
import { decodeCommit, unsignedCommitBytes } from '../../src/validator/commit.ts';
import { invertOps, normalizeOps, checkRecordBlocks } from '../../src/validator/invert.ts';
import { verifySignature } from '../../src/validator/signature.ts';
import { encodeCommitFrame } from '../../src/validator/encode.ts';
import { verifierFromDidKey, k256Backend, type Verifier } from '../../src/validator/keys.ts';
import type { CommitEvent } from '../../src/validator/schema.ts';

const N = Number(process.argv[2] ?? 300);
const SECONDS = Number(process.argv[3] ?? 1);

function rate(fn: (i: number) => void, count: number): number {
  const deadline = performance.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < count; i++) fn(i);
    ops += count;
  }
  return ops / ((performance.now() - t0) / 1000);
}

async function rateAsync(fn: (i: number) => Promise<unknown>, count: number): Promise<number> {
  const deadline = performance.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < count && performance.now() < deadline; i++) {
      await fn(i);
      ops++;
    }
  }
  return ops / ((performance.now() - t0) / 1000);
}

const rows: string[][] = [];
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const us = (r: number) => (1e6 / r).toFixed(1);

for (const curve of ['k256', 'p256'] as const) {
  const kp = await makeKeypair(curve);
  const verifier: Verifier = verifierFromDidKey(kp.did())!;
  let repo = await createRepo(kp, `did:plc:bench${curve}000000000000000000`, 300);
  const frames: Uint8Array[] = [];
  const bodies: Record<string, unknown>[] = [];
  for (let i = 0; i < N; i++) {
    const b = await buildCommit(repo, kp, [create()], { seq: i + 1 });
    frames.push(b.frame);
    bodies.push(b.body);
    repo = b.repo;
  }
  const avgFrame = frames.reduce((a, f) => a + f.length, 0) / frames.length;
  const events = frames.map((f) => {
    const d = decodeEvent(f);
    if (d.kind !== 'event' || d.event.type !== '#commit') throw new Error('bad fixture');
    return d.event as CommitEvent;
  });
  const nowMs = Date.now();
  for (const e of events) {
    const r = validateCommit(e, null, verifier, { nowMs });
    if (!r.ok) throw new Error(`fixture invalid: ${r.reason} ${r.detail}`);
  }
  const cars = events.map((e) => (parseCar(e.blocks) as { ok: true; car: ReturnType<typeof parseCar> extends infer R ? R extends { ok: true; car: infer C } ? C : never : never }).car);
  const commits = events.map((e, i) => (decodeCommit(getBlock(cars[i].blocks, cars[i].root)!) as { ok: true; commit: ReturnType<typeof decodeCommit> extends infer R ? R extends { ok: true; commit: infer C } ? C : never : never }).commit);
  const unsigned = commits.map(unsignedCommitBytes);
  const ops = events.map((e) => normalizeOps(e.ops) as Exclude<ReturnType<typeof normalizeOps>, string>);

  const decode = rate((i) => decodeEvent(frames[i]), N);
  const car = rate((i) => {
    const c = parseCar(events[i].blocks);
    if (c.ok) unsignedCommitBytes((decodeCommit(getBlock(c.car.blocks, c.car.root)!) as { ok: true; commit: never }).commit);
  }, N);
  const inversion = rate((i) => {
    invertOps(cars[i].blocks, commits[i].data, ops[i], events[i].prevData!);
    checkRecordBlocks(cars[i].blocks, ops[i]);
  }, N);
  const sig = rate((i) => verifySignature(verifier, unsigned[i], commits[i].sig), N);
  const encode = rate((i) => encodeCommitFrame(events[i]), N);
  const full = rate((i) => {
    const d = decodeEvent(frames[i]);
    if (d.kind === 'event' && d.event.type === '#commit') validateCommit(d.event, null, verifier, { nowMs });
  }, N);

  const didKey = kp.did();
  const atprotoInvert = await rateAsync(async (i) => {
    const b = bodies[i];
    const parsed = await readCarWithRoot(b.blocks as Uint8Array);
    const bs = new MemoryBlockstore(parsed.blocks);
    const commit = await bs.readObj(parsed.root, def.commit);
    if (!(await verifyCommitSig(commit, didKey))) throw new Error('sig');
    let mst = MST.load(bs, commit.data);
    for (const op of b.ops as { path: string }[]) mst = await mst.delete(op.path);
    const ptr = await mst.getPointer();
    if (!CID.decode(ptr.bytes).equals(b.prevData as CID)) throw new Error('inv');
  }, N);
  const atprotoProofs = await rateAsync(async (i) => {
    const b = bodies[i];
    const claims = (b.ops as { path: string; cid: CID }[]).map((op) => {
      const [collection, rkey] = op.path.split('/');
      return { collection, rkey, cid: op.cid as never };
    });
    await verifyProofs(b.blocks as Uint8Array, claims, b.repo as string, didKey);
  }, N);

  rows.push([
    curve,
    fmt(avgFrame),
    fmt(full),
    `${fmt(decode)} (${us(decode)})`,
    `${fmt(car)} (${us(car)})`,
    `${fmt(inversion)} (${us(inversion)})`,
    `${fmt(sig)} (${us(sig)})`,
    `${fmt(encode)} (${us(encode)})`,
    fmt(atprotoInvert),
    fmt(atprotoProofs),
  ]);
}

console.log(`K-256 backend: ${k256Backend}; ${N} single-op commits per curve on a 300-record repo; ${SECONDS}s per measurement; Node ${process.version}`);
const header = ['curve', 'frame B', 'full validate/s', 'decode/s (µs)', 'CAR+commit/s (µs)', 'inversion/s (µs)', 'signature/s (µs)', 'encode/s (µs)', '@atproto/repo car+sig+invert/s', '@atproto/repo verifyProofs/s'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
console.log(line(header));
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
for (const r of rows) console.log(line(r));
