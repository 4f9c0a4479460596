// The load harness's WebSocket reader decides the benchmark's message counts and latency
// samples, so its framing is tested like product code: against the relay's own framing and
// against a real `ws` server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { WsFrameParser, connectWsReader } from '../../../bench/load/ws-reader.ts'
import { wsBinaryMessage } from '../../../src/broadcaster/frames.ts'

function payload(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len)
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

test('frames of every header width, split at every chunk boundary, come out whole and in order', () => {
  const payloads = [0, 1, 125, 126, 1000, 65535, 65536, 70000].map((n, i) => payload(n, i))
  const stream = Buffer.concat(payloads.map((p) => wsBinaryMessage(p)))
  for (const chunk of [1, 2, 3, 7, 13, 1000, 65536, stream.length]) {
    const got: Array<[number, Buffer | undefined]> = []
    let n = 0
    const parser = new WsFrameParser({ wantPayload: () => n++ % 2 === 0, message: (len, p) => got.push([len, p && Buffer.from(p)]) }, () =>
      assert.fail('no control frames sent'),
    )
    for (let off = 0; off < stream.length; off += chunk) parser.push(stream.subarray(off, off + chunk))
    assert.equal(got.length, payloads.length, `chunk ${chunk}`)
    got.forEach(([len, p], i) => {
      assert.equal(len, payloads[i]!.length)
      if (i % 2 === 0) assert.deepEqual(p, payloads[i], `payload ${i} with chunk ${chunk}`)
      else assert.equal(p, undefined)
    })
  }
})

test('control frames are handed over; masked and fragmented server frames are refused', () => {
  const controls: Array<[number, string]> = []
  const parser = new WsFrameParser({ wantPayload: () => false, message: () => {} }, (op, p) => controls.push([op, p.toString()]))
  parser.push(Buffer.from([0x89, 0x02, 0x68, 0x69, 0x88, 0x00]))
  assert.deepEqual(controls, [
    [9, 'hi'],
    [8, ''],
  ])
  assert.throws(
    () => new WsFrameParser({ wantPayload: () => false, message: () => {} }, () => {}).push(Buffer.from([0x82, 0x81, 1, 2, 3, 4, 5])),
    /masked/,
  )
  assert.throws(
    () => new WsFrameParser({ wantPayload: () => false, message: () => {} }, () => {}).push(Buffer.from([0x02, 0x01, 5])),
    /fragmented/,
  )
})

test('against a real ws server: handshake, every message, pong to a ping, clean close', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((r) => wss.once('listening', r))
  const port = (wss.address() as AddressInfo).port
  const sizes = [10, 200, 5000, 100_000]
  const pong = new Promise<string>((resolve) => {
    wss.on('connection', (ws) => {
      ws.on('pong', (d) => resolve(d.toString()))
      for (const n of sizes) ws.send(payload(n, n))
      ws.ping('are you there')
      setTimeout(() => ws.close(1000, 'bye'), 50)
    })
  })
  const got: Buffer[] = []
  let opened = false
  const closed = new Promise<void>((resolve) => {
    connectWsReader(`ws://127.0.0.1:${port}/x`, {
      open: () => (opened = true),
      close: resolve,
      wantPayload: () => true,
      message: (_len, p) => got.push(Buffer.from(p!)),
    })
  })
  assert.equal(await pong, 'are you there')
  await closed
  assert.ok(opened)
  assert.deepEqual(
    got,
    sizes.map((n) => payload(n, n)),
  )
  await new Promise((r) => wss.close(r))
})

test('a protocol error in the bytes that follow the handshake closes that connection, nothing throws', async () => {
  const server = net.createServer((sock) => {
    sock.once('data', (req) => {
      const key = /Sec-WebSocket-Key: (\S+)/i.exec(req.toString('latin1'))![1]
      const accept = createHash('sha1')
        .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
        .digest('base64')
      // the 101 and a masked (hence invalid) server frame in one write: one chunk at the client
      sock.end(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
          ),
          Buffer.from([0x82, 0x81, 1, 2, 3, 4, 5]),
        ]),
      )
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  let messages = 0
  let opened = false
  await new Promise<void>((resolve) => {
    connectWsReader(`ws://127.0.0.1:${port}/x`, {
      open: () => (opened = true),
      close: resolve,
      wantPayload: () => true,
      message: () => messages++,
    })
  })
  assert.ok(opened)
  assert.equal(messages, 0)
  await new Promise((r) => server.close(r))
})
