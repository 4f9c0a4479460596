// A lean, mutable Merkle Search Tree over a block map, for MST inversion. Nodes are decoded lazily
// and only when an operation walks through them; a node touched by an operation is marked dirty
// (its CID dropped) and only dirty nodes are re-encoded and re-hashed when the root CID is computed.
// The algorithms mirror @atproto/repo's MST (add / splitAround / deleteRecurse / appendMerge /
// trimTop) so that the set of blocks needed is the same as what PDSes put in commit diffs.
//
// Nodes in the canonical layout every producer writes are decoded by hand; anything else goes
// through the generic decoder, so acceptance and error details are the same either way. Decoding
// allocates no strings or views: CIDs are (buffer, offset) pairs into the block, and a key stays
// what the block says (its predecessor's first p bytes, then a suffix in the block) until its full
// bytes are needed, which a search through an unchanged node never does: it walks the prefix
// compression itself. Keys compare bytewise. Dirty nodes are encoded into one shared scratch buffer
// (children first, so encodings never nest) and hashed straight into their new CID.
//
// Most dirty nodes are ancestors of the changed key: same entries, only a child link (or, for an
// update, a value) differs. When the block is exactly what our encoder would write for its entries
// (canonical layout, maximal key prefixes), such a node is re-encoded as a copy of its block with
// the changed CIDs written over their old positions, instead of entry by entry.
import { decode } from '@atcute/cbor'
import { bytesKey } from './bytes.ts'
import { sha256Into, sha256Latin1 } from './sha256.ts'
import { CID_LENGTH, CODEC_DAG_CBOR } from './cid.ts'
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

// Keys and the CIDs of re-encoded nodes live in a module-wide arena that is only ever appended to:
// a full chunk is replaced by a fresh one and the old chunk stays alive exactly as long as leaves
// or nodes point into it. Bytes are never overwritten, so Mst instances can share the arena freely.
const ARENA_CHUNK = 16 * 1024
let arena = new Uint8Array(ARENA_CHUNK)
let arenaPos = 0

/** Reserves n bytes; returns their offset in `arena` (read `arena` after the call). */
function arenaAlloc(n: number): number {
  if (arenaPos + n > arena.length) {
    arena = new Uint8Array(Math.max(ARENA_CHUNK, n))
    arenaPos = 0
  }
  const at = arenaPos
  arenaPos += n
  return at
}

/** Copies a key (latin1: one byte per UTF-16 unit, as the encoder writes it) into the arena. */
function arenaKey(key: string): number {
  const len = key.length
  const at = arenaAlloc(len)
  const a = arena
  for (let i = 0; i < len; i++) a[at + i] = key.charCodeAt(i)
  return at
}

/** Bytewise comparison of two keys: sign of (a - b), like latin1 string comparison. */
function compareKeys(a: Uint8Array, as: number, al: number, b: Uint8Array, bs: number, bl: number): number {
  const n = al < bl ? al : bl
  for (let i = 0; i < n; i++) {
    const x = a[as + i]
    const y = b[bs + i]
    if (x !== y) return x - y
  }
  return al - bl
}

/** A 36-byte CID at buf[off] as a Uint8Array (the buffer itself when it is exactly that CID). */
function cidView(buf: Uint8Array, off: number): Uint8Array {
  return off === 0 && buf.length === CID_LENGTH ? buf : buf.subarray(off, off + CID_LENGTH)
}

class Leaf {
  /** full key kb[ks, ks + kl); kb is null until needed (see keyBytes) */
  kb: Uint8Array | null
  ks: number
  kl: number
  /** as decoded: the first p bytes of pre's key, then sb[ss, ss + kl - p) */
  pre: Leaf | null
  p: number
  sb: Uint8Array
  ss: number
  /** p is all that the key shares with pre's (what our encoder writes after pre) */
  whole: boolean
  /** value CID: vb[vo, vo + 36) */
  vb: Uint8Array
  vo: number
  /** offset of the value CID in the block the leaf was decoded from, else -1 */
  at: number
  constructor(
    kb: Uint8Array | null,
    ks: number,
    kl: number,
    pre: Leaf | null,
    p: number,
    sb: Uint8Array,
    ss: number,
    whole: boolean,
    vb: Uint8Array,
    vo: number,
    at: number,
  ) {
    this.kb = kb
    this.ks = ks
    this.kl = kl
    this.pre = pre
    this.p = p
    this.sb = sb
    this.ss = ss
    this.whole = whole
    this.vb = vb
    this.vo = vo
    this.at = at
  }
}

/** A leaf whose key is already whole (from a string or the generic decoder). */
function plainLeaf(kb: Uint8Array, ks: number, kl: number, vb: Uint8Array, vo: number): Leaf {
  return new Leaf(kb, ks, kl, null, 0, kb, ks, true, vb, vo, -1)
}

/** Byte j (< kl) of a decoded leaf's key, without building the key. */
function byteOf(leaf: Leaf, j: number): number {
  let l = leaf
  while (j < l.p) l = l.pre as Leaf
  return l.sb[l.ss + j - l.p]
}

/** Makes leaf.kb / leaf.ks hold the full key. */
function keyBytes(leaf: Leaf): void {
  if (leaf.kb !== null) return
  const pre = leaf.pre as Leaf
  keyBytes(pre)
  const kl = leaf.kl
  const p = leaf.p
  const at = arenaAlloc(kl)
  const a = arena
  const pb = pre.kb as Uint8Array
  const ps = pre.ks
  for (let i = 0; i < p; i++) a[at + i] = pb[ps + i]
  const sb = leaf.sb
  const off = leaf.ss - p
  for (let i = p; i < kl; i++) a[at + i] = sb[off + i]
  leaf.kb = a
  leaf.ks = at
}

class Node {
  /** -1 while unknown (only for a root loaded before its layer is computed) */
  layer: number
  /** CID: cb[co, co + 36); cb null when dirty / new */
  cb: Uint8Array | null
  co: number
  /** null while not loaded */
  entries: Entry[] | null
  /**
   * The block this node was decoded from, while `entries` still has the same leaves and children
   * in the same places and the block is what pointer() would encode for them: then only CIDs
   * can differ. null otherwise.
   */
  src: Uint8Array | null
  /** offset of this node's link CID in the parent's block, else -1 */
  at: number
  constructor(layer: number, cb: Uint8Array | null, co: number, entries: Entry[] | null, at: number) {
    this.layer = layer
    this.cb = cb
    this.co = co
    this.entries = entries
    this.src = null
    this.at = at
  }
}

type Entry = Leaf | Node

let keyScratch = new Uint8Array(256)

/** Placeholder entry while decodeNodeFast runs. */
const SLOT = new Node(-1, null, 0, [], -1)

/** Set by decodeNodeFast: whether the block is exactly what pointer() encodes for its entries. */
let reproducible = false

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
  // The `l` link is last in the block but first in entries: guess from the tail whether there is
  // one and keep its slot, rather than unshifting it in at the end (checked there).
  const lGuess = end >= 43 && b[end - 43] === 0x61 && b[end - 42] === 0x6c && b[end - 41] === 0xd8
  const entries: Entry[] = lGuess ? [SLOT] : []
  let prev: Leaf | null = null
  let prevLen = 0
  let subtree = false
  let exact = true
  let err: string | null = null
  for (let n = 0; n < count; n++) {
    if (pos + 4 > end || b[pos] !== 0xa4 || b[pos + 1] !== 0x61 || b[pos + 2] !== 0x6b) return null
    // short lengths (one-byte heads) inline
    let klen = b[pos + 3] - 0x40
    let kStart = pos + 4
    if (klen < 0 || klen >= 24) {
      klen = readArg(b, pos + 3, end, 2)
      if (klen < 0) return null
      kStart = cursor.next
    }
    const kEnd = kStart + klen
    if (kEnd + 3 > end || b[kEnd] !== 0x61 || b[kEnd + 1] !== 0x70) return null
    let p = b[kEnd + 2]
    pos = kEnd + 3
    if (p >= 24) {
      p = readArg(b, kEnd + 2, end, 0)
      if (p < 0) return null
      pos = cursor.next
    }
    if (pos + 3 > end || b[pos] !== 0x61 || b[pos + 1] !== 0x74) return null
    pos += 2
    let t = -1
    if (b[pos] === 0xf6) {
      pos++
    } else {
      const te = cidLinkEnd(b, pos, end)
      if (te < 0) return null
      t = te - CID_LENGTH
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
        // sign of (new key - previous key): they agree on [0, p), so from p on, usually decided by
        // the first suffix byte
        let cmp = 0
        let i = 0
        for (; i < klen; i++) {
          const j = p + i
          if (j >= prevLen) break
          const a = b[kStart + i]
          const c = byteOf(prev as Leaf, j)
          if (a !== c) {
            cmp = a > c ? 1 : -1
            break
          }
        }
        // past the first byte: a shorter prefix than the keys share, valid but not what our
        // encoder writes
        const whole = i === 0
        if (!whole) exact = false
        if (cmp === 0) cmp = len - prevLen
        if (cmp <= 0) err = 'mst keys not sorted'
        else {
          const v = ve - CID_LENGTH
          const leaf: Leaf = new Leaf(p === 0 ? b : null, kStart, len, prev, p, b, kStart, whole, b, v, v)
          entries.push(leaf)
          if (t >= 0) entries.push(new Node(childLayer, b, t, null, t))
          prev = leaf
          prevLen = len
        }
      }
    }
    if (t >= 0) subtree = true
  }
  if (pos + 3 > end || b[pos] !== 0x61 || b[pos + 1] !== 0x6c) return null
  pos += 2
  let l = -1
  if (b[pos] === 0xf6) {
    pos++
  } else {
    const le = cidLinkEnd(b, pos, end)
    if (le < 0) return null
    l = le - CID_LENGTH
    pos = le
  }
  if (pos !== end) return null
  if (layer === 0 && (l >= 0 || subtree)) throw new MstStructureError('subtree below layer 0')
  if (err !== null) throw new MstStructureError(err)
  if (l >= 0) {
    const n = new Node(childLayer, b, l, null, l)
    if (lGuess) entries[0] = n
    else entries.unshift(n)
  } else if (lGuess) entries.shift()
  reproducible = exact
  return entries
}

// Shared encoder scratch (see pointer()). The writers take and return the write position so the
// encoder keeps it in a local.
let enc = new Uint8Array(4096)

/** enc with room for n bytes (from 0: a node is encoded from the start of the buffer). */
function encFor(n: number): Uint8Array {
  if (n > enc.length) {
    let size = enc.length * 2
    while (size < n) size *= 2
    enc = new Uint8Array(size)
  }
  return enc
}

function writeHead(e: Uint8Array, q: number, major: number, n: number): number {
  const m = major << 5
  if (n < 24) e[q++] = m | n
  else if (n < 0x100) {
    e[q++] = m | 24
    e[q++] = n
  } else if (n < 0x10000) {
    e[q++] = m | 25
    e[q++] = n >>> 8
    e[q++] = n & 0xff
  } else {
    e[q++] = m | 26
    e[q++] = n >>> 24
    e[q++] = (n >>> 16) & 0xff
    e[q++] = (n >>> 8) & 0xff
    e[q++] = n & 0xff
  }
  return q
}

function copyCid(e: Uint8Array, q: number, from: Uint8Array, off: number): void {
  // measured faster than a 36-step byte loop, view included
  e.set(from.subarray(off, off + CID_LENGTH), q)
}

/** A CID link (or null when cb is null). */
function writeCid(e: Uint8Array, q: number, cb: Uint8Array | null, co: number): number {
  if (cb === null) {
    e[q] = 0xf6
    return q + 1
  }
  e[q] = 0xd8
  e[q + 1] = 0x2a
  e[q + 2] = 0x58
  e[q + 3] = 0x25
  e[q + 4] = 0x00
  copyCid(e, q + 5, cb, co)
  return q + 5 + CID_LENGTH
}

/** MST key height of key bytes b[start, start + len). */
function heightOf(b: Uint8Array, start: number, len: number): number {
  const h = sha256Latin1(b.subarray(start, start + len))
  let n = 0
  for (let i = 0; i < 32; i++) {
    const c = h.charCodeAt(i)
    if (c === 0) {
      n += 4
      continue
    }
    if (c & 0xc0) break
    n++
    if (c & 0x30) break
    n++
    if (c & 0x0c) break
    n++
    break
  }
  return n
}

/** MST key height: leading zero bits of sha256(key), counted in 2-bit chunks. */
export function keyHeight(key: string): number {
  const len = key.length
  if (keyScratch.length < len) keyScratch = new Uint8Array(Math.max(len, keyScratch.length * 2))
  for (let i = 0; i < len; i++) keyScratch[i] = key.charCodeAt(i)
  return heightOf(keyScratch, 0, len)
}

/** Set by seek(): whether the leaf at the returned index has exactly the key. */
let hit = false

/** Index of the first leaf whose key is >= the key kb[ks, ks + kl) (entries.length if none). */
function seek(node: Node, kb: Uint8Array, ks: number, kl: number): number {
  const entries = node.entries as Entry[]
  if (node.src !== null) return seekDecoded(entries, kb, ks, kl)
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (e instanceof Leaf) {
      keyBytes(e)
      const c = compareKeys(e.kb as Uint8Array, e.ks, e.kl, kb, ks, kl)
      if (c >= 0) {
        hit = c === 0
        return i
      }
    }
  }
  hit = false
  return entries.length
}

/**
 * seek() over the entries of an unchanged node whose prefix lengths are exact (src set), without
 * whole keys. With m = common prefix of the key and the previous (smaller) leaf key: a leaf that
 * shares more than m bytes with the previous one is also smaller; one that shares fewer is
 * greater; otherwise only its bytes from m on need comparing.
 */
function seekDecoded(entries: Entry[], kb: Uint8Array, ks: number, kl: number): number {
  let m = 0
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (!(e instanceof Leaf)) continue
    const p = e.p
    if (p > m) continue
    if (p < m) {
      hit = false
      return i
    }
    const el = e.kl
    const sb = e.sb
    const off = e.ss - p
    const n = el < kl ? el : kl
    let j = m
    while (j < n && sb[off + j] === kb[ks + j]) j++
    if (j === n) {
      if (el >= kl) {
        hit = el === kl
        return i
      }
    } else if (sb[off + j] > kb[ks + j]) {
      hit = false
      return i
    }
    m = j
  }
  hit = false
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
    return new Mst(blocks, new Node(-1, rootCid, 0, null, -1))
  }

  static empty(blocks: Blocks = new Map()): Mst {
    return new Mst(blocks, new Node(0, null, 0, [], -1))
  }

  private load(node: Node): Entry[] {
    if (node.entries !== null) return node.entries
    const cb = node.cb as Uint8Array
    const blocks = this.blocks
    const bytes = blocks instanceof CarBlocks ? blocks.get(cb, node.co) : blocks.get(bytesKey(cidView(cb, node.co)))
    if (bytes === undefined) throw new MissingBlockError(cidView(cb, node.co))
    this.loadedCount++
    const fast = decodeNodeFast(bytes, node.layer)
    if (fast !== null) {
      node.entries = fast
      if (reproducible) node.src = bytes
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
      entries.push(new Node(childLayer, l, 0, null, -1))
    }
    let pb = arena
    let ps = 0
    let prevLen = 0
    for (const raw of data.e) {
      if (!isPlainMap(raw)) throw new MstStructureError('mst entry shape')
      const p = raw.p
      const k = asBytes(raw.k)
      const v = asCid(raw.v)
      if (!isInt(p) || p < 0 || p > prevLen || k === null || v === null) throw new MstStructureError('mst entry fields')
      const len = p + k.length
      const at = arenaAlloc(len)
      const kb = arena
      for (let i = 0; i < p; i++) kb[at + i] = pb[ps + i]
      kb.set(k, at + p)
      if (compareKeys(kb, at, len, pb, ps, prevLen) <= 0) throw new MstStructureError('mst keys not sorted')
      entries.push(plainLeaf(kb, at, len, v, 0))
      if (raw.t !== null) {
        const t = asCid(raw.t)
        if (t === null) throw new MstStructureError('mst entry t')
        entries.push(new Node(childLayer, t, 0, null, -1))
      }
      pb = kb
      ps = at
      prevLen = len
    }
    node.entries = entries
    return entries
  }

  private layerOf(node: Node): number {
    if (node.layer >= 0) return node.layer
    const entries = this.load(node)
    let layer = 0
    const leaf = entries.find((e) => e instanceof Leaf)
    if (leaf) {
      keyBytes(leaf)
      layer = heightOf(leaf.kb as Uint8Array, leaf.ks, leaf.kl)
    } else if (entries.length > 0) layer = this.layerOf(entries[0] as Node) + 1
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
    const ks = arenaKey(key)
    const kb = arena
    let node = this.root
    for (;;) {
      const entries = this.load(node)
      const idx = seek(node, kb, ks, key.length)
      const found = entries[idx]
      if (hit) return cidView((found as Leaf).vb, (found as Leaf).vo)
      const prev = entries[idx - 1]
      if (prev instanceof Node) node = this.childOf(node, prev)
      else return null
    }
  }

  /** Insert a key that must not exist. Throws on existing key / missing block / bad structure. */
  add(key: string, val: Uint8Array, height?: number): void {
    const ks = arenaKey(key)
    const leaf = plainLeaf(arena, ks, key.length, val, 0)
    const h = height ?? heightOf(arena, ks, key.length)
    const layer = this.layerOf(this.root)
    if (h > layer) {
      let [lo, hi] = this.splitAround(this.root, leaf)
      for (let i = 1; i < h - layer; i++) {
        if (lo) lo = new Node(lo.layer + 1, null, 0, [lo], -1)
        if (hi) hi = new Node(hi.layer + 1, null, 0, [hi], -1)
      }
      const entries: Entry[] = []
      if (lo) entries.push(lo)
      entries.push(leaf)
      if (hi) entries.push(hi)
      this.root = new Node(h, null, 0, entries, -1)
      return
    }
    this.addRecurse(this.root, leaf, h)
  }

  private addRecurse(node: Node, leaf: Leaf, height: number): void {
    const entries = this.load(node)
    const idx = seek(node, leaf.kb as Uint8Array, leaf.ks, leaf.kl)
    const prev = entries[idx - 1]
    if (height === node.layer) {
      if (hit) throw new MstStructureError('key already exists')
      if (prev instanceof Node) {
        const [lo, hi] = this.splitAround(this.childOf(node, prev), leaf)
        const repl: Entry[] = []
        if (lo) repl.push(lo)
        repl.push(leaf)
        if (hi) repl.push(hi)
        entries.splice(idx - 1, 1, ...repl)
      } else {
        entries.splice(idx, 0, leaf)
      }
      node.src = null
    } else if (prev instanceof Node) {
      this.addRecurse(this.childOf(node, prev), leaf, height)
    } else {
      const child = new Node(node.layer - 1, null, 0, [], -1)
      this.addRecurse(child, leaf, height)
      entries.splice(idx, 0, child)
      node.src = null
    }
    node.cb = null
  }

  private splitAround(node: Node, key: Leaf): [Node | null, Node | null] {
    const entries = this.load(node)
    const idx = seek(node, key.kb as Uint8Array, key.ks, key.kl)
    const left = entries.slice(0, idx)
    const right = entries.slice(idx)
    const last = left[left.length - 1]
    if (last instanceof Node) {
      left.pop()
      const [a, b] = this.splitAround(this.childOf(node, last), key)
      if (a) left.push(a)
      if (b) right.unshift(b)
    }
    return [
      left.length > 0 ? new Node(node.layer, null, 0, left, -1) : null,
      right.length > 0 ? new Node(node.layer, null, 0, right, -1) : null,
    ]
  }

  /** Remove a key; returns its value. Throws when absent. */
  delete(key: string): Uint8Array {
    const ks = arenaKey(key)
    const val = this.deleteRecurse(this.root, arena, ks, key.length)
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

  private deleteRecurse(node: Node, kb: Uint8Array, ks: number, kl: number): Uint8Array {
    const entries = this.load(node)
    const idx = seek(node, kb, ks, kl)
    if (hit) {
      const found = entries[idx] as Leaf
      const prev = entries[idx - 1]
      const next = entries[idx + 1]
      if (prev instanceof Node && next instanceof Node) {
        const merged = this.appendMerge(this.childOf(node, prev), this.childOf(node, next))
        entries.splice(idx - 1, 3, merged)
      } else {
        entries.splice(idx, 1)
      }
      node.cb = null
      node.src = null
      return cidView(found.vb, found.vo)
    }
    const prev = entries[idx - 1]
    if (prev instanceof Node) {
      const child = this.childOf(node, prev)
      const val = this.deleteRecurse(child, kb, ks, kl)
      if ((child.entries as Entry[]).length === 0) {
        entries.splice(idx - 1, 1)
        node.src = null
      }
      node.cb = null
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
    return new Node(a.layer, null, 0, merged, -1)
  }

  /** Replace the value of an existing key; returns the old value. Throws when absent. */
  update(key: string, val: Uint8Array): Uint8Array {
    const ks = arenaKey(key)
    const kb = arena
    let node = this.root
    const path: Node[] = []
    for (;;) {
      path.push(node)
      const entries = this.load(node)
      const idx = seek(node, kb, ks, key.length)
      if (hit) {
        // A leaf belongs to one node only, so it can be changed in place; a node that keeps its
        // block then writes the new value over the old one's position (see pointer()).
        const found = entries[idx] as Leaf
        const old = cidView(found.vb, found.vo)
        found.vb = val
        found.vo = 0
        for (const n of path) n.cb = null
        return old
      }
      const prev = entries[idx - 1]
      if (prev instanceof Node) node = this.childOf(node, prev)
      else throw new MstStructureError('key not found')
    }
  }

  /** Root CID; re-encodes and hashes only dirty nodes. `out` collects the blocks it encodes. */
  rootCid(out?: BlockMap): Uint8Array {
    this.pointer(this.root, out)
    return cidView(this.root.cb as Uint8Array, this.root.co)
  }

  /** Computes node.cb for a dirty node (and its dirty descendants). */
  private pointer(node: Node, out?: BlockMap): void {
    if (node.cb !== null) return
    const entries = node.entries as Entry[]
    // Children first: the node's own encoding below then never nests inside another.
    let leaves = 0
    let keyTotal = 0
    for (const x of entries) {
      if (x instanceof Leaf) {
        leaves++
        keyTotal += x.kl
      } else if (x.cb === null) this.pointer(x, out)
    }
    const src = node.src
    let e: Uint8Array
    let q: number
    if (src !== null) {
      // Unchanged CIDs still point into src; write the others over their old positions.
      e = encFor(src.length)
      e.set(src, 0)
      q = src.length
      for (const x of entries) {
        if (x instanceof Leaf) {
          if (x.vb !== src) copyCid(e, x.at, x.vb, x.vo)
        } else if (x.cb !== src) copyCid(e, x.at, x.cb as Uint8Array, x.co)
      }
    } else {
      e = encFor(16 + keyTotal + leaves * 100 + 2 * 41)
      e[0] = 0xa2
      e[1] = 0x61
      e[2] = 0x65 // 'e'
      q = writeHead(e, 3, 4, leaves)
      let prev: Leaf | null = null
      for (let i = 0; i < entries.length; i++) {
        const x = entries[i]
        if (!(x instanceof Leaf)) continue
        const kl = x.kl
        // Still after the leaf it followed in its block: that block has the prefix length and suffix.
        let p = x.p
        let sb = x.sb
        let off = x.ss - p
        if (x.pre !== prev || !x.whole) {
          keyBytes(x)
          sb = x.kb as Uint8Array
          off = x.ks
          p = 0
          if (prev !== null) {
            keyBytes(prev)
            const pb = prev.kb as Uint8Array
            const ps = prev.ks
            const max = prev.kl < kl ? prev.kl : kl
            while (p < max && pb[ps + p] === sb[off + p]) p++
          }
        }
        const next = entries[i + 1]
        e[q++] = 0xa4
        e[q++] = 0x61
        e[q++] = 0x6b // 'k'
        q = writeHead(e, q, 2, kl - p)
        for (let j = p; j < kl; j++) e[q++] = sb[off + j]
        e[q++] = 0x61
        e[q++] = 0x70 // 'p'
        q = writeHead(e, q, 0, p)
        e[q++] = 0x61
        e[q++] = 0x74 // 't'
        q = next instanceof Node ? writeCid(e, q, next.cb, next.co) : writeCid(e, q, null, 0)
        e[q++] = 0x61
        e[q++] = 0x76 // 'v'
        q = writeCid(e, q, x.vb, x.vo)
        prev = x
      }
      e[q++] = 0x61
      e[q++] = 0x6c // 'l'
      const first = entries[0]
      q = first instanceof Node ? writeCid(e, q, first.cb, first.co) : writeCid(e, q, null, 0)
    }
    const bytes = e.subarray(0, q)
    // the new CID goes to the arena too: no typed array per node
    const at = arenaAlloc(CID_LENGTH)
    const a = arena
    a[at] = 0x01
    a[at + 1] = CODEC_DAG_CBOR
    a[at + 2] = 0x12
    a[at + 3] = 0x20
    sha256Into(bytes, a, at + 4)
    node.cb = a
    node.co = at
    if (out) out.set(bytesKey(cidView(a, at)), bytes.slice())
  }
}
