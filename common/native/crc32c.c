/*
 * CRC-32C (Castagnoli) for RobustMQ, as a Node-API addon.
 *
 * The x86 crc32 instruction has a throughput of one per cycle but a latency of three, so one
 * dependent chain of crc32q uses a third of it. Large inputs are therefore cut into three
 * adjacent blocks whose CRCs run as three independent chains; the partial CRCs are then merged
 * by "appending zeros" to the earlier ones — a linear operator on the 32-bit CRC, precomputed
 * per block size as four byte-indexed tables — and XORing. Inputs too small for that run as one
 * chain. Without SSE4.2 the module reports `hardware: false` and JavaScript uses its fallback.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <node_api.h>

#define CASTAGNOLI 0x82f63b78u /* reflected */
#define BIG_BLOCK 4096
#define SMALL_BLOCK 256

static uint32_t shift_big[4][256];
static uint32_t shift_small[4][256];

/* GF(2) matrix (32 columns, one uint32 per column) times vector. */
static uint32_t mat_vec(const uint32_t *m, uint32_t v) {
  uint32_t out = 0;
  for (int i = 0; v != 0; i++, v >>= 1)
    if (v & 1) out ^= m[i];
  return out;
}

static void mat_square(uint32_t *dst, const uint32_t *m) {
  for (int i = 0; i < 32; i++) dst[i] = mat_vec(m, m[i]);
}

/* Builds the operator that advances a CRC over `bytes` zero bytes (`bytes` a power of two). */
static void zeros_operator(uint32_t *op, size_t bytes) {
  uint32_t a[32], b[32];
  /* one zero bit: shift right, and fold the polynomial in when the low bit falls out */
  a[0] = CASTAGNOLI;
  for (int i = 1; i < 32; i++) a[i] = 1u << (i - 1);
  mat_square(b, a); /* two bits */
  mat_square(a, b); /* four bits */
  mat_square(b, a); /* one byte */
  uint32_t *cur = b, *other = a;
  for (size_t n = 1; n < bytes; n <<= 1) {
    mat_square(other, cur);
    uint32_t *t = cur;
    cur = other;
    other = t;
  }
  memcpy(op, cur, sizeof(uint32_t) * 32);
}

static void build_tables(uint32_t tables[4][256], size_t bytes) {
  uint32_t op[32];
  zeros_operator(op, bytes);
  for (uint32_t n = 0; n < 256; n++)
    for (int k = 0; k < 4; k++) tables[k][n] = mat_vec(op, n << (8 * k));
}

static inline uint32_t advance(uint32_t tables[4][256], uint32_t crc) {
  return tables[0][crc & 0xff] ^ tables[1][(crc >> 8) & 0xff] ^ tables[2][(crc >> 16) & 0xff] ^ tables[3][crc >> 24];
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len) {
  uint64_t c0 = crc ^ 0xffffffffu;
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    len--;
  }
  const size_t sizes[2] = {BIG_BLOCK, SMALL_BLOCK};
  for (int s = 0; s < 2; s++) {
    const size_t block = sizes[s];
    while (len >= 3 * block) {
      uint64_t c1 = 0, c2 = 0;
      const uint8_t *end = p + block;
      do {
        uint64_t w0, w1, w2;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + block, 8);
        memcpy(&w2, p + 2 * block, 8);
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
        p += 8;
      } while (p < end);
      uint32_t (*t)[256] = s == 0 ? shift_big : shift_small;
      c0 = advance(t, (uint32_t)c0) ^ (uint32_t)c1;
      c0 = advance(t, (uint32_t)c0) ^ (uint32_t)c2;
      p += 2 * block;
      len -= 3 * block;
    }
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c0 = _mm_crc32_u64(c0, w);
    p += 8;
    len -= 8;
  }
  while (len > 0) {
    c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    len--;
  }
  return (uint32_t)c0 ^ 0xffffffffu;
}

static int have_sse42(void) { return __builtin_cpu_supports("sse4.2"); }
#else
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len) {
  (void)p;
  (void)len;
  return crc;
}
static int have_sse42(void) { return 0; }
#endif

/* crc32c(data: Uint8Array, initial: number): number */
static napi_value js_crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "crc32c: data is required");
    return NULL;
  }
  bool is_typed = false;
  napi_is_typedarray(env, argv[0], &is_typed);
  if (!is_typed) {
    napi_throw_type_error(env, NULL, "crc32c: data must be a Uint8Array");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = NULL;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "crc32c: data must be a Uint8Array");
    return NULL;
  }
  uint32_t initial = 0;
  if (argc > 1) napi_get_value_uint32(env, argv[1], &initial);
  uint32_t crc = crc32c_sse42(initial, (const uint8_t *)data, length);
  napi_value out;
  napi_create_uint32(env, crc, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  build_tables(shift_big, BIG_BLOCK);
  build_tables(shift_small, SMALL_BLOCK);
  napi_value fn, hw;
  napi_create_function(env, "crc32c", NAPI_AUTO_LENGTH, js_crc32c, NULL, &fn);
  napi_set_named_property(env, exports, "crc32c", fn);
  napi_get_boolean(env, have_sse42() != 0, &hw);
  napi_set_named_property(env, exports, "hardware", hw);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
