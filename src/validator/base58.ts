// base58btc (multibase 'z'), used by did:key and Multikey.
const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
const INDEX = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) INDEX[ALPHABET.charCodeAt(i)] = i

export function base58Decode(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 256) return null
  let zeros = 0
  while (zeros < s.length && s[zeros] === '1') zeros++
  const out: number[] = []
  for (let i = zeros; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const d = c < 128 ? INDEX[c] : -1
    if (d < 0) return null
    let carry = d
    for (let j = 0; j < out.length; j++) {
      carry += out[j] * 58
      out[j] = carry & 0xff
      carry >>= 8
    }
    while (carry > 0) {
      out.push(carry & 0xff)
      carry >>= 8
    }
  }
  const res = new Uint8Array(zeros + out.length)
  for (let i = 0; i < out.length; i++) res[zeros + i] = out[out.length - 1 - i]
  return res
}

export function base58Encode(b: Uint8Array): string {
  let zeros = 0
  while (zeros < b.length && b[zeros] === 0) zeros++
  const digits: number[] = []
  for (let i = zeros; i < b.length; i++) {
    let carry = b[i]
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] << 8
      digits[j] = carry % 58
      carry = (carry / 58) | 0
    }
    while (carry > 0) {
      digits.push(carry % 58)
      carry = (carry / 58) | 0
    }
  }
  let s = '1'.repeat(zeros)
  for (let i = digits.length - 1; i >= 0; i--) s += ALPHABET[digits[i]]
  return s
}
