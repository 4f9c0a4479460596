// Frames/s of the main-thread routing decode (src/subscriber/route.ts) on a ~1 KB #commit (a
// typical real one) and a ~2 MB #commit (max `blocks`), next to a full @atcute/cbor decode of
// the same frame for comparison. Run: node_modules/.bin/node bench/subscriber/route.bench.ts
import { decodeFirst, encode, toBytes } from '@atcute/cbor'
import { routeFrame } from '../../src/subscriber/route.ts'

const CID = { $link: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' }

function commitFrame(seq: number, blocksLen: number, nOps: number): Uint8Array {
  const header = encode({ t: '#commit', op: 1 })
  const ops = []
  for (let i = 0; i < nOps; i++) ops.push({ action: 'create', path: `app.bsky.feed.post/3lbbqqxm6wk${i}`, cid: CID, prev: null })
  const body = encode({
    seq,
    rebase: false,
    tooBig: false,
    repo: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz',
    commit: CID,
    rev: '3lbbqqxm7ok2c',
    since: '3lbbqqkbtnk2c',
    blocks: toBytes(new Uint8Array(blocksLen).fill(1)),
    ops,
    blobs: [],
    prevData: CID,
    time: '2024-11-20T12:00:00.000Z',
  })
  const out = new Uint8Array(header.length + body.length)
  out.set(header)
  out.set(body, header.length)
  return out
}

function fullDecode(f: Uint8Array): unknown {
  const [h, rest] = decodeFirst(f)
  const [b] = decodeFirst(rest)
  return [h, b]
}

function bench(name: string, fn: (f: Uint8Array) => unknown, f: Uint8Array, minMs = 400): void {
  for (let i = 0; i < 2_000; i++) fn(f) // warm up
  let n = 0
  let sink = 0
  const t0 = performance.now()
  let t = t0
  while (t - t0 < minMs) {
    for (let i = 0; i < 500; i++) {
      if (fn(f) !== null) sink++
    }
    n += 500
    t = performance.now()
  }
  const perSec = (n / (t - t0)) * 1000
  const us = ((t - t0) * 1000) / n
  console.log(
    `${name.padEnd(44)} ${Math.round(perSec).toLocaleString('en-US').padStart(12)} frames/s  ${us.toFixed(2).padStart(8)} µs/frame${sink < 0 ? '' : ''}`,
  )
}

const small = commitFrame(123456789, 700, 1)
const typical = commitFrame(123456789, 700, 3)
const large = commitFrame(123456789, 2_000_000, 200)
const largeFew = commitFrame(123456789, 2_000_000, 3)
console.log(`frame sizes: small ${small.length} B, large ${large.length} B (200 ops)`)
bench(`routeFrame  small (${small.length} B, 1 op)`, routeFrame, small)
bench(`routeFrame  small (${typical.length} B, 3 ops)`, routeFrame, typical)
bench(`routeFrame  large (${(largeFew.length / 1e6).toFixed(2)} MB, 3 ops)`, routeFrame, largeFew)
bench(`routeFrame  large (${(large.length / 1e6).toFixed(2)} MB, 200 ops)`, routeFrame, large)
bench(`atcute full decode small (${small.length} B)`, fullDecode, small)
bench(`atcute full decode large (${(large.length / 1e6).toFixed(2)} MB)`, fullDecode, large)
