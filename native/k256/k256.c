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
 */
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
  napi_value version;
  napi_create_string_utf8(env, K256_LIBSECP256K1_VERSION, NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, exports, "libsecp256k1", version);
  return exports;
}
