/*
 * K-256 (secp256k1) ECDSA verification for the validator workers, over a current libsecp256k1.
 *
 * Why this exists: the `secp256k1` npm package bundles a 2019 libsecp256k1. The current library
 * verifies ~25% faster on the same machine (safegcd inversions, better ecmult), and the signature
 * is most of a validated commit's CPU. Only what the validator needs is exposed:
 *
 *   parsePubkey(point: Uint8Array): Uint8Array(64) | null
 *       a 33- or 65-byte SEC1 point into the library's parsed form, computed once per key (no square root per verify)
 *   verify(sig: Uint8Array(64) compact r||s, msg32: Uint8Array(32), parsed: Uint8Array(64)): boolean
 *       false for high-S (the library requires lower-S), r or s out of range, wrong lengths
 *
 * The parsed key is the opaque secp256k1_pubkey struct; it is only ever produced and consumed by
 * this same binary, so its layout never crosses a version boundary.
 *
 * It also exposes SHA-256 for the validator's per-block hashing (about a dozen small blocks per
 * commit), when the process has OpenSSL's SHA-256 functions (Node links OpenSSL and exports them):
 *
 *   sha256Into(data: Uint8Array, out: Uint8Array, outOffset: number): void
 *   sha256Equals(data: Uint8Array, start: number, end: number, expected: Uint8Array, expOffset: number): boolean
 *
 * node:crypto's hash() costs ~0.85 µs per call before hashing a byte; this is one N-API call into
 * the same OpenSSL block function. The symbols are looked up at load time, so a Node without them
 * simply does not get these two functions (the validator then keeps using node:crypto), instead of
 * failing on first use.
 */
#include <dlfcn.h>
#include <string.h>
#include <node_api.h>
#include "libsecp256k1/include/secp256k1.h"

#ifndef K256_LIBSECP256K1_VERSION
#define K256_LIBSECP256K1_VERSION "unknown"
#endif

/* Bytes of a Uint8Array (or Buffer) argument; *len = SIZE_MAX when it is not one. */
static const unsigned char *bytes_of(napi_env env, napi_value v, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *data = NULL;
  *len = (size_t)-1;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    *len = (size_t)-1;
    return NULL;
  }
  /* napi_get_typedarray_info already offsets data by the view's byteOffset */
  return (const unsigned char *)data;
}

/* OpenSSL's low-level SHA-256 (SHA256_Init/Update/Final: deprecated in 3.0, still exported, and
 * the same SHA-NI block function). The one-shot SHA256() is no good here: in OpenSSL 3 it fetches
 * the algorithm from a provider on every call, which is most of node:crypto's per-call cost. */
typedef int (*sha256_init_fn)(void *ctx);
typedef int (*sha256_update_fn)(void *ctx, const void *data, size_t len);
typedef int (*sha256_final_fn)(unsigned char *md, void *ctx);
static sha256_init_fn sha256_init = NULL;
static sha256_update_fn sha256_update = NULL;
static sha256_final_fn sha256_final = NULL;

/* SHA256_CTX is 112 bytes; room to spare, aligned for its 32-bit words */
typedef union { unsigned char bytes[256]; unsigned long long align; } sha256_ctx;

static void openssl_sha256(const unsigned char *data, size_t len, unsigned char *md) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, data, len);
  sha256_final(md, &ctx);
}

static napi_value boolean(napi_env env, bool b) {
  napi_value out;
  napi_get_boolean(env, b, &out);
  return out;
}

static napi_value verify(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return boolean(env, false);
  size_t sig_len, msg_len, key_len;
  const unsigned char *sig = bytes_of(env, argv[0], &sig_len);
  const unsigned char *msg = bytes_of(env, argv[1], &msg_len);
  const unsigned char *key = bytes_of(env, argv[2], &key_len);
  if (sig_len != 64 || msg_len != 32 || key_len != sizeof(secp256k1_pubkey)) return boolean(env, false);

  secp256k1_ecdsa_signature s;
  if (!secp256k1_ecdsa_signature_parse_compact(secp256k1_context_static, &s, sig)) return boolean(env, false);
  secp256k1_pubkey pk;
  memcpy(&pk, key, sizeof pk);
  return boolean(env, secp256k1_ecdsa_verify(secp256k1_context_static, &s, msg, &pk) == 1);
}

static napi_value parse_pubkey(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value out;
  napi_get_null(env, &out);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return out;
  size_t len;
  const unsigned char *point = bytes_of(env, argv[0], &len);
  if (point == NULL || (len != 33 && len != 65)) return out;
  secp256k1_pubkey pk;
  if (!secp256k1_ec_pubkey_parse(secp256k1_context_static, &pk, point, len)) return out;

  napi_value ab;
  void *dst = NULL;
  if (napi_create_arraybuffer(env, sizeof pk, &dst, &ab) != napi_ok) return out;
  memcpy(dst, &pk, sizeof pk);
  napi_create_typedarray(env, napi_uint8_array, sizeof pk, ab, 0, &out);
  return out;
}

static bool uint32_arg(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static const unsigned char empty[1] = {0};

static napi_value sha256_into(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t off;
  size_t data_len, out_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) goto bad;
  const unsigned char *data = bytes_of(env, argv[0], &data_len);
  unsigned char *out = (unsigned char *)bytes_of(env, argv[1], &out_len);
  if (data_len == (size_t)-1 || out == NULL || !uint32_arg(env, argv[2], &off) || off > out_len || out_len - off < 32) goto bad;
  openssl_sha256(data_len ? data : empty, data_len, out + off);
  return NULL;
bad:
  napi_throw_type_error(env, NULL, "sha256Into(data: Uint8Array, out: Uint8Array, outOffset) with 32 bytes of room");
  return NULL;
}

static napi_value sha256_equals(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint32_t start, end, exp_off;
  size_t data_len, exp_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) goto bad;
  const unsigned char *data = bytes_of(env, argv[0], &data_len);
  const unsigned char *expected = bytes_of(env, argv[3], &exp_len);
  if (data_len == (size_t)-1 || expected == NULL || !uint32_arg(env, argv[1], &start) || !uint32_arg(env, argv[2], &end) ||
      !uint32_arg(env, argv[4], &exp_off) || start > end || end > data_len || exp_off > exp_len || exp_len - exp_off < 32)
    goto bad;
  unsigned char md[32];
  openssl_sha256(end > start ? data + start : empty, end - start, md);
  return boolean(env, memcmp(md, expected + exp_off, 32) == 0);
bad:
  napi_throw_type_error(env, NULL, "sha256Equals(data, start, end, expected, expOffset): ranges out of bounds");
  return NULL;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  /* aborts on a miscompiled library (e.g. a broken 128-bit multiply) rather than verifying wrongly */
  secp256k1_selftest();
  export_function(env, exports, "verify", verify);
  export_function(env, exports, "parsePubkey", parse_pubkey);
  if (sha256_init == NULL) {
    sha256_init = (sha256_init_fn)dlsym(RTLD_DEFAULT, "SHA256_Init");
    sha256_update = (sha256_update_fn)dlsym(RTLD_DEFAULT, "SHA256_Update");
    sha256_final = (sha256_final_fn)dlsym(RTLD_DEFAULT, "SHA256_Final");
  }
  if (sha256_init != NULL && sha256_update != NULL && sha256_final != NULL) {
    export_function(env, exports, "sha256Into", sha256_into);
    export_function(env, exports, "sha256Equals", sha256_equals);
  }
  napi_value version;
  napi_create_string_utf8(env, K256_LIBSECP256K1_VERSION, NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, exports, "libsecp256k1", version);
  return exports;
}
