// A lean, mutable Merkle Search Tree over a block map, for MST inversion. Nodes are decoded lazily
// and only when an operation walks through them; a node touched by an operation is marked dirty
// (cid = null) and only dirty nodes are re-encoded and re-hashed when the root CID is computed.
// The algorithms mirror @atproto/repo's MST (add / splitAround / deleteRecurse / appendMerge /
// trimTop) so that the set of blocks needed is the same as what PDSes put in commit diffs.
//
// Nodes in the canonical layout every producer writes are decoded by hand (CIDs stay views into the
// block, no intermediate objects); anything else goes through the generic decoder, so acceptance
// and error details are the same either way. Dirty nodes are encoded into one shared scratch buffer
// (children first, so encodings never nest) and hashed straight into their new CID.
import { decode } from '@atcute/cbor'
import { bytesKey } from './bytes.ts'
import { sha256Into, sha256Latin1 } from './sha256.ts'
import { CID_LENGTH, CODEC_DAG_CBOR, CODEC_RAW } from './cid.ts'
import { asBytes, asCid, isInt, isPlainMap } from './values.ts'
import { cidLinkEnd, cursor, readArg } from './cbor-fast.ts'
import { CarBlocks, type BlockMap, type Blocks } from './car.ts'

export class MissingBlockError extends Error {
  cid: Uint8Array
  constructor(cid: Uint8Array) {
    super('missing MST block')
    this.cid = cid
  }
}

export class MstStructureError extends Error {}

class Leaf {
  key: string // latin1: one char per key byte, so JS string order == byte order
  val: Uint8Array
  constructor(key: string, val: Uint8Array) {
    this.key = key
    this.val = val
  }
}

class Node {
  /** -1 while unknown (only for a root loaded before its layer is computed) */
  layer: number
  /** null when dirty / new */
  cid: Uint8Array | null
  /** null while not loaded */
  entries: Entry[] | null
  constructor(layer: number, cid: Uint8Array | null, entries: Entry[] | null) {
    this.layer = layer
    this.cid = cid
    this.entries = entries
  }
}

type Entry = Leaf | Node

let keyScratch = new Uint8Array(256)
let keyBuf = Buffer.allocUnsafeSlow(1024)

/**
 * Hand decoder for a node in canonical layout: {e: [{k, p, t, v}...], l}, CIDs blessed, every
 * length minimal. Returns null when the bytes are not in exactly that shape (the caller then uses
 * the generic decoder, which accepts or rejects them with the usual details); throws the same
 * structure errors as the generic path for well-shaped nodes whose content is invalid.
 */
function decodeNodeFast(b: Uint8Array, layer: number): Entry[] | null {
  const end = b.length
  if (end < 4 || b[0] !== 0xa2 || b[1] !== 0x61 || b[2] !== 0x65) return null
  const count = readArg(b, 3, end, 4)
  if (count < 0) return null
  let pos = cursor.next
  const childLayer = layer > 0 ? layer - 1 : -1
  const entries: Entry[] = []
  // The full previous key is kept as bytes in keyBuf; each key is built there from its shared
  // prefix and suffix, checked against the previous one byte by byte, and turned into one flat
  // string (no slice + concat cons strings, which later comparisons would have to flatten).
  let prevLen = 0
  let subtree = false
  let err: string | null = null
  for (let n = 0; n < count; n++) {
    if (pos + 3 > end || b[pos] !== 0xa4 || b[pos + 1] !== 0x61 || b[pos + 2] !== 0x6b) return null
    const klen = readArg(b, pos + 3, end, 2)
    if (klen < 0) return null
    const kStart = cursor.next
    const kEnd = kStart + klen
    if (kEnd + 2 > end || b[kEnd] !== 0x61 || b[kEnd + 1] !== 0x70) return null
    const p = readArg(b, kEnd + 2, end, 0)
    if (p < 0) return null
    pos = cursor.next
    if (pos + 3 > end || b[pos] !== 0x61 || b[pos + 1] !== 0x74) return null
    pos += 2
    let t: Uint8Array | null = null
    if (b[pos] === 0xf6) {
      pos++
    } else {
      const te = cidLinkEnd(b, pos, end)
      if (te < 0) return null
      t = b.subarray(te - CID_LENGTH, te)
      pos = te
    }
    if (pos + 2 > end || b[pos] !== 0x61 || b[pos + 1] !== 0x76) return null
    const ve = cidLinkEnd(b, pos + 2, end)
    if (ve < 0) return null
    pos = ve
    if (err === null) {
      if (p > prevLen) err = 'mst entry fields'
      else {
        const len = p + klen
        if (len > keyBuf.length) {
          const next = Buffer.allocUnsafeSlow(Math.max(len, keyBuf.length * 2))
          keyBuf.copy(next, 0, 0, prevLen)
          keyBuf = next
        }
        const kb = keyBuf
        // sign of (new key - previous key), both latin1, i.e. bytewise like JS string order
        let cmp = 0
        for (let i = 0; i < klen; i++) {
          const nb = b[kStart + i]
          const at = p + i
          if (cmp === 0 && at < prevLen && nb !== kb[at]) cmp = nb > kb[at] ? 1 : -1
          kb[at] = nb
        }
        if (cmp === 0) cmp = len - prevLen
        if (cmp <= 0) err = 'mst keys not sorted'
        else {
          entries.push(new Leaf(kb.toString('latin1', 0, len), b.subarray(ve - CID_LENGTH, ve)))
          if (t !== null) entries.push(new Node(childLayer, t, null))
          prevLen = len
        }
      }
    }
    if (t !== null) subtree = true
  }
  if (pos + 3 > end || b[pos] !== 0x61 || b[pos + 1] !== 0x6c) return null
  pos += 2
  let l: Uint8Array | null = null
  if (b[pos] === 0xf6) {
    pos++
  } else {
    const le = cidLinkEnd(b, pos, end)
    if (le < 0) return null
    l = b.subarray(le - CID_LENGTH, le)
    pos = le
  }
  if (pos !== end) return null
  if (layer === 0 && (l !== null || subtree)) throw new MstStructureError('subtree below layer 0')
  if (err !== null) throw new MstStructureError(err)
  if (l !== null) entries.unshift(new Node(childLayer, l, null))
  return entries
}

// Shared encoder scratch (see pointer()).
let enc = new Uint8Array(4096)
let encPos = 0

function encEnsure(n: number): void {
  if (encPos + n <= enc.length) return
  let size = enc.length * 2
  while (size < encPos + n) size *= 2
  const next = new Uint8Array(size)
  next.set(enc.subarray(0, encPos))
  enc = next
}

function encHead(major: number, n: number): void {
  const m = major << 5
  if (n < 24) enc[encPos++] = m | n
  else if (n < 0x100) {
    enc[encPos++] = m | 24
    enc[encPos++] = n
  } else if (n < 0x10000) {
    enc[encPos++] = m | 25
    enc[encPos++] = n >>> 8
    enc[encPos++] = n & 0xff
  } else {
    enc[encPos++] = m | 26
    enc[encPos++] = n >>> 24
    enc[encPos++] = (n >>> 16) & 0xff
    enc[encPos++] = (n >>> 8) & 0xff
    enc[encPos++] = n & 0xff
  }
}

function encCid(cid: Uint8Array | null): void {
  if (cid === null) {
    enc[encPos++] = 0xf6
    return
  }
  enc[encPos++] = 0xd8
  enc[encPos++] = 0x2a
  enc[encPos++] = 0x58
  enc[encPos++] = 0x25
  enc[encPos++] = 0x00
  enc.set(cid, encPos)
  encPos += CID_LENGTH
}

/** MST key height: leading zero bits of sha256(key), counted in 2-bit chunks. */
export function keyHeight(key: string): number {
  const len = key.length
  if (keyScratch.length < len) keyScratch = new Uint8Array(Math.max(len, keyScratch.length * 2))
  for (let i = 0; i < len; i++) keyScratch[i] = key.charCodeAt(i)
  const h = sha256Latin1(keyScratch.subarray(0, len))
  let n = 0
  for (let i = 0; i < 32; i++) {
    const b = h.charCodeAt(i)
    if (b === 0) {
      n += 4
      continue
    }
    if (b & 0xc0) break
    n++
    if (b & 0x30) break
    n++
    if (b & 0x0c) break
    n++
    break
  }
  return n
}

function findGtOrEqualLeafIndex(entries: Entry[], key: string): number {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (e instanceof Leaf && e.key >= key) return i
  }
  return entries.length
}

export class Mst {
  private blocks: Blocks
  private root: Node
  /** blocks decoded so far (for tests / diagnostics) */
  loadedCount = 0

  private constructor(blocks: Blocks, root: Node) {
    this.blocks = blocks
    this.root = root
  }

  static load(blocks: Blocks, rootCid: Uint8Array): Mst {
    return new Mst(blocks, new Node(-1, rootCid, null))
  }

  static empty(blocks: Blocks = new Map()): Mst {
    return new Mst(blocks, new Node(0, null, []))
  }

  private load(node: Node): Entry[] {
    if (node.entries !== null) return node.entries
    const cid = node.cid as Uint8Array
    const blocks = this.blocks
    const bytes = blocks instanceof CarBlocks ? blocks.get(cid) : blocks.get(bytesKey(cid))
    if (bytes === undefined) throw new MissingBlockError(cid)
    this.loadedCount++
    const fast = decodeNodeFast(bytes, node.layer)
    if (fast !== null) {
      node.entries = fast
      return fast
    }
    let data: unknown
    try {
      data = decode(bytes)
    } catch (err) {
      throw new MstStructureError(`mst node cbor: ${(err as Error).message}`)
    }
    if (!isPlainMap(data) || !Array.isArray(data.e) || !('l' in data)) throw new MstStructureError('mst node shape')
    const childLayer = node.layer > 0 ? node.layer - 1 : -1
    if (node.layer === 0 && (data.l !== null || data.e.some((x) => isPlainMap(x) && x.t !== null))) {
      throw new MstStructureError('subtree below layer 0')
    }
    const entries: Entry[] = []
    if (data.l !== null) {
      const l = asCid(data.l)
      if (l === null) throw new MstStructureError('mst node l')
      entries.push(new Node(childLayer, l, null))
    }
    let prevKey = ''
    for (const raw of data.e) {
      if (!isPlainMap(raw)) throw new MstStructureError('mst entry shape')
      const p = raw.p
      const k = asBytes(raw.k)
      const v = asCid(raw.v)
      if (!isInt(p) || p < 0 || p > prevKey.length || k === null || v === null) throw new MstStructureError('mst entry fields')
      const key = prevKey.slice(0, p) + Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1')
      if (key <= prevKey) throw new MstStructureError('mst keys not sorted')
      entries.push(new Leaf(key, v))
      if (raw.t !== null) {
        const t = asCid(raw.t)
        if (t === null) throw new MstStructureError('mst entry t')
        entries.push(new Node(childLayer, t, null))
      }
      prevKey = key
    }
    node.entries = entries
    return entries
  }

  private layerOf(node: Node): number {
    if (node.layer >= 0) return node.layer
    const entries = this.load(node)
    let layer = 0
    const leaf = entries.find((e) => e instanceof Leaf)
    if (leaf) layer = keyHeight(leaf.key)
    else if (entries.length > 0) layer = this.layerOf(entries[0] as Node) + 1
    node.layer = layer
    for (const e of entries) {
      if (e instanceof Node && e.layer < 0) e.layer = layer - 1
    }
    if (layer === 0 && entries.some((e) => e instanceof Node)) throw new MstStructureError('subtree below layer 0')
    return layer
  }

  private childOf(parent: Node, child: Node): Node {
    // A child's layer always derives from its parent's. Layers stay unknown (-1) until an insert
    // needs them (get/update/delete never do, which saves hashing the root's first key).
    if (parent.layer < 0) return child
    if (parent.layer === 0) throw new MstStructureError('subtree below layer 0')
    child.layer = parent.layer - 1
    return child
  }

  get(key: string): Uint8Array | null {
    let node = this.root
    for (;;) {
      const entries = this.load(node)
      const idx = findGtOrEqualLeafIndex(entries, key)
      const found = entries[idx]
      if (found instanceof Leaf && found.key === key) return found.val
      const prev = entries[idx - 1]
      if (prev instanceof Node) node = this.childOf(node, prev)
      else return null
    }
  }

  /** Insert a key that must not exist. Throws on existing key / missing block / bad structure. */
  add(key: string, val: Uint8Array, height = keyHeight(key)): void {
    const layer = this.layerOf(this.root)
    if (height > layer) {
      let [lo, hi] = this.splitAround(this.root, key)
      for (let i = 1; i < height - layer; i++) {
        if (lo) lo = new Node(lo.layer + 1, null, [lo])
        if (hi) hi = new Node(hi.layer + 1, null, [hi])
      }
      const entries: Entry[] = []
      if (lo) entries.push(lo)
      entries.push(new Leaf(key, val))
      if (hi) entries.push(hi)
      this.root = new Node(height, null, entries)
      return
    }
    this.addRecurse(this.root, key, val, height)
  }

  private addRecurse(node: Node, key: string, val: Uint8Array, height: number): void {
    const entries = this.load(node)
    const idx = findGtOrEqualLeafIndex(entries, key)
    const prev = entries[idx - 1]
    if (height === node.layer) {
      const found = entries[idx]
      if (found instanceof Leaf && found.key === key) throw new MstStructureError('key already exists')
      if (prev instanceof Node) {
        const [lo, hi] = this.splitAround(this.childOf(node, prev), key)
        const repl: Entry[] = []
        if (lo) repl.push(lo)
        repl.push(new Leaf(key, val))
        if (hi) repl.push(hi)
        entries.splice(idx - 1, 1, ...repl)
      } else {
        entries.splice(idx, 0, new Leaf(key, val))
      }
    } else if (prev instanceof Node) {
      this.addRecurse(this.childOf(node, prev), key, val, height)
    } else {
      const child = new Node(node.layer - 1, null, [])
      this.addRecurse(child, key, val, height)
      entries.splice(idx, 0, child)
    }
    node.cid = null
  }

  private splitAround(node: Node, key: string): [Node | null, Node | null] {
    const entries = this.load(node)
    const idx = findGtOrEqualLeafIndex(entries, key)
    const left = entries.slice(0, idx)
    const right = entries.slice(idx)
    const last = left[left.length - 1]
    if (last instanceof Node) {
      left.pop()
      const [a, b] = this.splitAround(this.childOf(node, last), key)
      if (a) left.push(a)
      if (b) right.unshift(b)
    }
    return [left.length > 0 ? new Node(node.layer, null, left) : null, right.length > 0 ? new Node(node.layer, null, right) : null]
  }

  /** Remove a key; returns its value. Throws when absent. */
  delete(key: string): Uint8Array {
    const val = this.deleteRecurse(this.root, key)
    // trimTop: a root holding only a subtree is replaced by that subtree.
    for (;;) {
      const entries = this.load(this.root)
      if (entries.length === 1 && entries[0] instanceof Node) {
        const child = this.childOf(this.root, entries[0])
        this.load(child)
        this.root = child
      } else break
    }
    return val
  }

  private deleteRecurse(node: Node, key: string): Uint8Array {
    const entries = this.load(node)
    const idx = findGtOrEqualLeafIndex(entries, key)
    const found = entries[idx]
    if (found instanceof Leaf && found.key === key) {
      const prev = entries[idx - 1]
      const next = entries[idx + 1]
      if (prev instanceof Node && next instanceof Node) {
        const merged = this.appendMerge(this.childOf(node, prev), this.childOf(node, next))
        entries.splice(idx - 1, 3, merged)
      } else {
        entries.splice(idx, 1)
      }
      node.cid = null
      return found.val
    }
    const prev = entries[idx - 1]
    if (prev instanceof Node) {
      const child = this.childOf(node, prev)
      const val = this.deleteRecurse(child, key)
      if ((child.entries as Entry[]).length === 0) entries.splice(idx - 1, 1)
      node.cid = null
      return val
    }
    throw new MstStructureError('key not found')
  }

  private appendMerge(a: Node, b: Node): Node {
    const ae = this.load(a)
    const be = this.load(b)
    const last = ae[ae.length - 1]
    const first = be[0]
    let merged: Entry[]
    if (last instanceof Node && first instanceof Node) {
      const m = this.appendMerge(this.childOf(a, last), this.childOf(b, first))
      merged = [...ae.slice(0, -1), m, ...be.slice(1)]
    } else {
      merged = [...ae, ...be]
    }
    return new Node(a.layer, null, merged)
  }

  /** Replace the value of an existing key; returns the old value. Throws when absent. */
  update(key: string, val: Uint8Array): Uint8Array {
    let node = this.root
    const path: Node[] = []
    for (;;) {
      path.push(node)
      const entries = this.load(node)
      const idx = findGtOrEqualLeafIndex(entries, key)
      const found = entries[idx]
      if (found instanceof Leaf && found.key === key) {
        entries[idx] = new Leaf(key, val)
        for (const n of path) n.cid = null
        return found.val
      }
      const prev = entries[idx - 1]
      if (prev instanceof Node) node = this.childOf(node, prev)
      else throw new MstStructureError('key not found')
    }
  }

  /** Root CID; re-encodes and hashes only dirty nodes. `out` collects the blocks it encodes. */
  rootCid(out?: BlockMap): Uint8Array {
    return this.pointer(this.root, out)
  }

  private pointer(node: Node, out?: BlockMap): Uint8Array {
    if (node.cid !== null) return node.cid
    const entries = node.entries as Entry[]
    // Children first: the node's own encoding below then never nests inside another.
    let leaves = 0
    let keyBytes = 0
    for (const e of entries) {
      if (e instanceof Leaf) {
        leaves++
        keyBytes += e.key.length
      } else if (e.cid === null) this.pointer(e, out)
    }
    encPos = 0
    encEnsure(16 + keyBytes + leaves * 100 + 2 * 41)
    enc[encPos++] = 0xa2
    enc[encPos++] = 0x61
    enc[encPos++] = 0x65 // 'e'
    encHead(4, leaves)
    let prevKey = ''
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]
      if (!(e instanceof Leaf)) continue
      const key = e.key
      let p = 0
      const max = Math.min(prevKey.length, key.length)
      while (p < max && prevKey.charCodeAt(p) === key.charCodeAt(p)) p++
      const next = entries[i + 1]
      enc[encPos++] = 0xa4
      enc[encPos++] = 0x61
      enc[encPos++] = 0x6b // 'k'
      encHead(2, key.length - p)
      for (let j = p; j < key.length; j++) enc[encPos++] = key.charCodeAt(j)
      enc[encPos++] = 0x61
      enc[encPos++] = 0x70 // 'p'
      encHead(0, p)
      enc[encPos++] = 0x61
      enc[encPos++] = 0x74 // 't'
      encCid(next instanceof Node ? next.cid : null)
      enc[encPos++] = 0x61
      enc[encPos++] = 0x76 // 'v'
      encCid(e.val)
      prevKey = key
    }
    enc[encPos++] = 0x61
    enc[encPos++] = 0x6c // 'l'
    const first = entries[0]
    encCid(first instanceof Node ? first.cid : null)
    const bytes = enc.subarray(0, encPos)
    const cid = new Uint8Array(CID_LENGTH)
    cid[0] = 0x01
    cid[1] = CODEC_DAG_CBOR
    cid[2] = 0x12
    cid[3] = 0x20
    sha256Into(bytes, cid, 4)
    node.cid = cid
    if (out) out.set(bytesKey(cid), bytes.slice())
    return cid
  }
}
