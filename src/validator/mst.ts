// A lean, mutable Merkle Search Tree over a block map, for MST inversion. Nodes are decoded lazily
// and only when an operation walks through them; a node touched by an operation is marked dirty
// (cid = null) and only dirty nodes are re-encoded and re-hashed when the root CID is computed.
// The algorithms mirror @atproto/repo's MST (add / splitAround / deleteRecurse / appendMerge /
// trimTop) so that the set of blocks needed is the same as what PDSes put in commit diffs.
import { decode } from '@atcute/cbor';
import { bytesKey, sha256 } from './bytes.ts';
import { CborWriter } from './cbor-writer.ts';
import { cidForCbor } from './cid.ts';
import { asBytes, asCid, isInt, isPlainMap } from './values.ts';
import type { BlockMap } from './car.ts';

export class MissingBlockError extends Error {
  cid: Uint8Array;
  constructor(cid: Uint8Array) {
    super('missing MST block');
    this.cid = cid;
  }
}

export class MstStructureError extends Error {}

class Leaf {
  key: string; // latin1: one char per key byte, so JS string order == byte order
  val: Uint8Array;
  constructor(key: string, val: Uint8Array) {
    this.key = key;
    this.val = val;
  }
}

class Node {
  /** -1 while unknown (only for a root loaded before its layer is computed) */
  layer: number;
  /** null when dirty / new */
  cid: Uint8Array | null;
  /** null while not loaded */
  entries: Entry[] | null;
  constructor(layer: number, cid: Uint8Array | null, entries: Entry[] | null) {
    this.layer = layer;
    this.cid = cid;
    this.entries = entries;
  }
}

type Entry = Leaf | Node;

/** MST key height: leading zero bits of sha256(key), counted in 2-bit chunks. */
export function keyHeight(key: string): number {
  const h = sha256(Buffer.from(key, 'latin1'));
  let n = 0;
  for (let i = 0; i < h.length; i++) {
    const b = h[i];
    if (b === 0) {
      n += 4;
      continue;
    }
    if (b & 0xc0) break;
    n++;
    if (b & 0x30) break;
    n++;
    if (b & 0x0c) break;
    n++;
    break;
  }
  return n;
}

function findGtOrEqualLeafIndex(entries: Entry[], key: string): number {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e instanceof Leaf && e.key >= key) return i;
  }
  return entries.length;
}

export class Mst {
  private blocks: BlockMap;
  private root: Node;
  /** blocks decoded so far (for tests / diagnostics) */
  loadedCount = 0;

  private constructor(blocks: BlockMap, root: Node) {
    this.blocks = blocks;
    this.root = root;
  }

  static load(blocks: BlockMap, rootCid: Uint8Array): Mst {
    return new Mst(blocks, new Node(-1, rootCid, null));
  }

  static empty(blocks: BlockMap = new Map()): Mst {
    return new Mst(blocks, new Node(0, null, []));
  }

  private load(node: Node): Entry[] {
    if (node.entries !== null) return node.entries;
    const cid = node.cid as Uint8Array;
    const bytes = this.blocks.get(bytesKey(cid));
    if (bytes === undefined) throw new MissingBlockError(cid);
    this.loadedCount++;
    let data: unknown;
    try {
      data = decode(bytes);
    } catch (err) {
      throw new MstStructureError(`mst node cbor: ${(err as Error).message}`);
    }
    if (!isPlainMap(data) || !Array.isArray(data.e) || !('l' in data)) throw new MstStructureError('mst node shape');
    const childLayer = node.layer > 0 ? node.layer - 1 : -1;
    if (node.layer === 0 && (data.l !== null || data.e.some((x) => isPlainMap(x) && x.t !== null))) {
      throw new MstStructureError('subtree below layer 0');
    }
    const entries: Entry[] = [];
    if (data.l !== null) {
      const l = asCid(data.l);
      if (l === null) throw new MstStructureError('mst node l');
      entries.push(new Node(childLayer, l, null));
    }
    let prevKey = '';
    for (const raw of data.e) {
      if (!isPlainMap(raw)) throw new MstStructureError('mst entry shape');
      const p = raw.p;
      const k = asBytes(raw.k);
      const v = asCid(raw.v);
      if (!isInt(p) || p < 0 || p > prevKey.length || k === null || v === null) throw new MstStructureError('mst entry fields');
      const key = prevKey.slice(0, p) + Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
      if (key <= prevKey) throw new MstStructureError('mst keys not sorted');
      entries.push(new Leaf(key, v));
      if (raw.t !== null) {
        const t = asCid(raw.t);
        if (t === null) throw new MstStructureError('mst entry t');
        entries.push(new Node(childLayer, t, null));
      }
      prevKey = key;
    }
    node.entries = entries;
    return entries;
  }

  private layerOf(node: Node): number {
    if (node.layer >= 0) return node.layer;
    const entries = this.load(node);
    let layer = 0;
    const leaf = entries.find((e) => e instanceof Leaf);
    if (leaf) layer = keyHeight(leaf.key);
    else if (entries.length > 0) layer = this.layerOf(entries[0] as Node) + 1;
    node.layer = layer;
    for (const e of entries) {
      if (e instanceof Node && e.layer < 0) e.layer = layer - 1;
    }
    if (layer === 0 && entries.some((e) => e instanceof Node)) throw new MstStructureError('subtree below layer 0');
    return layer;
  }

  private childOf(parent: Node, child: Node): Node {
    // A child's layer always derives from its parent's. Layers stay unknown (-1) until an insert
    // needs them (get/update/delete never do, which saves hashing the root's first key).
    if (parent.layer < 0) return child;
    if (parent.layer === 0) throw new MstStructureError('subtree below layer 0');
    child.layer = parent.layer - 1;
    return child;
  }

  get(key: string): Uint8Array | null {
    let node = this.root;
    for (;;) {
      const entries = this.load(node);
      const idx = findGtOrEqualLeafIndex(entries, key);
      const found = entries[idx];
      if (found instanceof Leaf && found.key === key) return found.val;
      const prev = entries[idx - 1];
      if (prev instanceof Node) node = this.childOf(node, prev);
      else return null;
    }
  }

  /** Insert a key that must not exist. Throws on existing key / missing block / bad structure. */
  add(key: string, val: Uint8Array, height = keyHeight(key)): void {
    const layer = this.layerOf(this.root);
    if (height > layer) {
      let [lo, hi] = this.splitAround(this.root, key);
      for (let i = 1; i < height - layer; i++) {
        if (lo) lo = new Node(lo.layer + 1, null, [lo]);
        if (hi) hi = new Node(hi.layer + 1, null, [hi]);
      }
      const entries: Entry[] = [];
      if (lo) entries.push(lo);
      entries.push(new Leaf(key, val));
      if (hi) entries.push(hi);
      this.root = new Node(height, null, entries);
      return;
    }
    this.addRecurse(this.root, key, val, height);
  }

  private addRecurse(node: Node, key: string, val: Uint8Array, height: number): void {
    const entries = this.load(node);
    const idx = findGtOrEqualLeafIndex(entries, key);
    const prev = entries[idx - 1];
    if (height === node.layer) {
      const found = entries[idx];
      if (found instanceof Leaf && found.key === key) throw new MstStructureError('key already exists');
      if (prev instanceof Node) {
        const [lo, hi] = this.splitAround(this.childOf(node, prev), key);
        const repl: Entry[] = [];
        if (lo) repl.push(lo);
        repl.push(new Leaf(key, val));
        if (hi) repl.push(hi);
        entries.splice(idx - 1, 1, ...repl);
      } else {
        entries.splice(idx, 0, new Leaf(key, val));
      }
    } else if (prev instanceof Node) {
      this.addRecurse(this.childOf(node, prev), key, val, height);
    } else {
      const child = new Node(node.layer - 1, null, []);
      this.addRecurse(child, key, val, height);
      entries.splice(idx, 0, child);
    }
    node.cid = null;
  }

  private splitAround(node: Node, key: string): [Node | null, Node | null] {
    const entries = this.load(node);
    const idx = findGtOrEqualLeafIndex(entries, key);
    const left = entries.slice(0, idx);
    const right = entries.slice(idx);
    const last = left[left.length - 1];
    if (last instanceof Node) {
      left.pop();
      const [a, b] = this.splitAround(this.childOf(node, last), key);
      if (a) left.push(a);
      if (b) right.unshift(b);
    }
    return [
      left.length > 0 ? new Node(node.layer, null, left) : null,
      right.length > 0 ? new Node(node.layer, null, right) : null,
    ];
  }

  /** Remove a key; returns its value. Throws when absent. */
  delete(key: string): Uint8Array {
    const val = this.deleteRecurse(this.root, key);
    // trimTop: a root holding only a subtree is replaced by that subtree.
    for (;;) {
      const entries = this.load(this.root);
      if (entries.length === 1 && entries[0] instanceof Node) {
        const child = this.childOf(this.root, entries[0]);
        this.load(child);
        this.root = child;
      } else break;
    }
    return val;
  }

  private deleteRecurse(node: Node, key: string): Uint8Array {
    const entries = this.load(node);
    const idx = findGtOrEqualLeafIndex(entries, key);
    const found = entries[idx];
    if (found instanceof Leaf && found.key === key) {
      const prev = entries[idx - 1];
      const next = entries[idx + 1];
      if (prev instanceof Node && next instanceof Node) {
        const merged = this.appendMerge(this.childOf(node, prev), this.childOf(node, next));
        entries.splice(idx - 1, 3, merged);
      } else {
        entries.splice(idx, 1);
      }
      node.cid = null;
      return found.val;
    }
    const prev = entries[idx - 1];
    if (prev instanceof Node) {
      const child = this.childOf(node, prev);
      const val = this.deleteRecurse(child, key);
      if ((child.entries as Entry[]).length === 0) entries.splice(idx - 1, 1);
      node.cid = null;
      return val;
    }
    throw new MstStructureError('key not found');
  }

  private appendMerge(a: Node, b: Node): Node {
    const ae = this.load(a);
    const be = this.load(b);
    const last = ae[ae.length - 1];
    const first = be[0];
    let merged: Entry[];
    if (last instanceof Node && first instanceof Node) {
      const m = this.appendMerge(this.childOf(a, last), this.childOf(b, first));
      merged = [...ae.slice(0, -1), m, ...be.slice(1)];
    } else {
      merged = [...ae, ...be];
    }
    return new Node(a.layer, null, merged);
  }

  /** Replace the value of an existing key; returns the old value. Throws when absent. */
  update(key: string, val: Uint8Array): Uint8Array {
    let node = this.root;
    const path: Node[] = [];
    for (;;) {
      path.push(node);
      const entries = this.load(node);
      const idx = findGtOrEqualLeafIndex(entries, key);
      const found = entries[idx];
      if (found instanceof Leaf && found.key === key) {
        entries[idx] = new Leaf(key, val);
        for (const n of path) n.cid = null;
        return found.val;
      }
      const prev = entries[idx - 1];
      if (prev instanceof Node) node = this.childOf(node, prev);
      else throw new MstStructureError('key not found');
    }
  }

  /** Root CID; re-encodes and hashes only dirty nodes. `out` collects the blocks it encodes. */
  rootCid(out?: BlockMap): Uint8Array {
    return this.pointer(this.root, out);
  }

  private pointer(node: Node, out?: BlockMap): Uint8Array {
    if (node.cid !== null) return node.cid;
    const entries = node.entries as Entry[];
    const w = new CborWriter(64 + entries.length * 80);
    let leaves = 0;
    for (const e of entries) if (e instanceof Leaf) leaves++;
    w.head(5, 2);
    w.str('e');
    w.head(4, leaves);
    let prevKey = '';
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (!(e instanceof Leaf)) continue;
      let p = 0;
      const max = Math.min(prevKey.length, e.key.length);
      while (p < max && prevKey.charCodeAt(p) === e.key.charCodeAt(p)) p++;
      const next = entries[i + 1];
      w.head(5, 4);
      w.str('k');
      w.bytes(Buffer.from(e.key.slice(p), 'latin1'));
      w.str('p');
      w.int(p);
      w.str('t');
      if (next instanceof Node) w.cid(this.pointer(next, out));
      else w.nil();
      w.str('v');
      w.cid(e.val);
      prevKey = e.key;
    }
    w.str('l');
    const first = entries[0];
    if (first instanceof Node) w.cid(this.pointer(first, out));
    else w.nil();
    const bytes = w.finishView();
    const cid = cidForCbor(bytes);
    node.cid = cid;
    if (out) out.set(bytesKey(cid), bytes);
    return cid;
  }
}
