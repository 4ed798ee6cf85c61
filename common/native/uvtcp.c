// A TCP transport on libuv for connections that are many and mostly idle (MQTT devices).
//
// Node's net.Socket costs ~1.4 KB of objects per connection (the TCPWrap, the Socket with its
// stream states, listener tables, bound callbacks). Here a connection is this file's `conn_t`
// (a uv_tcp_t and a few fields, ~280 B) plus one small JavaScript object made by
// common/src/uv-tcp.ts. JavaScript names a connection by a 32-bit id: a slot index in the low
// 20 bits and the slot's generation above it, so an id kept after its connection closed never
// reaches the connection that reuses the slot.
//
// Calls into JavaScript go through napi_make_callback, so promises and process.nextTick
// callbacks run after each one as they do after a net.Socket event. A JavaScript exception in
// a callback becomes an 'uncaughtException' (napi_fatal_exception); nothing here aborts on
// anything a peer does: resets, EOF and read errors close that connection only.
//
// One event loop: the addon serves the thread that first called init() (the main thread).

#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_BITS 20
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define MAX_SERVERS 64

enum {
  F_CLOSING = 1,  // uv_close called
  F_READING = 2,  // uv_read_start in effect
  F_PAUSED = 4,   // JavaScript asked to stop reading
  F_EOF = 8,      // the peer ended its side
  F_SHUT = 16,    // our side was shut down (end)
  F_DRAIN = 32,   // JavaScript wants onDrain when the queue empties
  F_CONNECTING = 64,
  F_SHUT_DONE = 128,  // the shutdown completed: queued bytes and our FIN went out
};

// Framed reading (a listener opened with maxFrame > 0, for size-prefixed protocols: Kafka).
// Bytes are read straight into a slab, a JavaScript Buffer the connection holds; each read is
// cut into whole `int32 size + size bytes` frames, handed to JavaScript as one range of the
// slab (onFrames), so frames are views of the bytes the kernel wrote: no copy per read and no
// joining of frames that span reads. A new slab is taken when the current one has no room for
// the rest of the frame being read; only that frame's partial bytes move. Slabs grow from
// SLAB_MIN to SLAB_MAX while reads fill them (a bulk producer) and shrink when reads are small.
#define SLAB_MIN (16 * 1024)
#define SLAB_MAX (256 * 1024)
#define READ_MIN 4096  // a slab with less room than this is replaced before the next read
// Writes whose unsent rest exceeds this hold references to the caller's buffers until written
// (large Fetch responses); smaller rests are copied, which costs less than two references.
#define WRITE_REF_MIN (64 * 1024)

typedef struct framer {
  napi_ref slab;  // NULL until the first read
  char* base;
  size_t cap;
  size_t woff;  // bytes read into the slab
  size_t roff;  // start of the first frame not yet handed out
  size_t next_cap;
  uint32_t max_frame;
} framer_t;

typedef struct conn {
  uv_tcp_t h;  // first: a handle pointer is the connection pointer
  uint32_t id;
  uint32_t flags;
  int32_t err;    // why it closed (0: normal)
  size_t queued;  // bytes accepted by write() that the kernel has not taken yet
  framer_t* fr;   // framed reading; NULL for a byte stream
} conn_t;

typedef struct {
  uv_write_t req;
  size_t len;
  size_t nrefs;  // > 0: data holds napi_refs to the buffers written; 0: data holds the bytes
  char data[];
} wreq_t;

typedef struct {
  uv_tcp_t h;
  uint32_t sid;
  int used;
  uint32_t max_frame;  // > 0: accepted connections read frames
  int nodelay;         // accepted sockets inherit TCP_NODELAY from the listening one (Linux)
} server_t;

static napi_env g_env;
static napi_async_context g_async;
static napi_ref g_on_connection, g_on_data, g_on_end, g_on_close, g_on_drain, g_on_connect, g_on_frames;
static uv_loop_t* g_loop;

static conn_t** g_slots;
static uint16_t* g_gens;
static uint32_t g_nslots;
static uint32_t* g_free;
static uint32_t g_nfree;
static uint32_t g_open;
static server_t* g_servers[MAX_SERVERS];
static char g_read_buf[65536];

// ------------------------------------------------------------------------------------------
// calling JavaScript

static void call_js(napi_ref ref, size_t argc, napi_value* argv) {
  napi_value fn, recv, result;
  if (napi_get_reference_value(g_env, ref, &fn) != napi_ok) return;
  napi_get_global(g_env, &recv);
  napi_status st = napi_make_callback(g_env, g_async, recv, fn, argc, argv, &result);
  if (st == napi_pending_exception) {
    napi_value e;
    if (napi_get_and_clear_last_exception(g_env, &e) == napi_ok) napi_fatal_exception(g_env, e);
  }
}

static napi_value num(double v) {
  napi_value r;
  napi_create_double(g_env, v, &r);
  return r;
}

// ------------------------------------------------------------------------------------------
// connection slots

static conn_t* slot_alloc(void) {
  uint32_t slot;
  if (g_nfree > 0) {
    slot = g_free[--g_nfree];
  } else {
    if (g_nslots > SLOT_MASK) return NULL;
    uint32_t n = g_nslots == 0 ? 1024 : g_nslots * 2;
    if (n > SLOT_MASK + 1) n = SLOT_MASK + 1;
    conn_t** s = realloc(g_slots, n * sizeof *s);
    if (s == NULL) return NULL;
    g_slots = s;
    uint16_t* g = realloc(g_gens, n * sizeof *g);
    if (g == NULL) return NULL;
    g_gens = g;
    uint32_t* f = realloc(g_free, n * sizeof *f);
    if (f == NULL) return NULL;
    g_free = f;
    for (uint32_t i = g_nslots; i < n; i++) {
      g_slots[i] = NULL;
      g_gens[i] = 0;
    }
    // hand out the lowest new slot now, keep the rest free (highest first, so low ones go first)
    slot = g_nslots;
    for (uint32_t i = n - 1; i > g_nslots; i--) g_free[g_nfree++] = i;
    g_nslots = n;
  }
  conn_t* c = calloc(1, sizeof *c);
  if (c == NULL) {
    g_free[g_nfree++] = slot;
    return NULL;
  }
  c->id = ((uint32_t)(g_gens[slot] & 0x7ff) << SLOT_BITS) | slot;
  g_slots[slot] = c;
  g_open++;
  return c;
}

static conn_t* lookup(uint32_t id) {
  uint32_t slot = id & SLOT_MASK;
  if (slot >= g_nslots) return NULL;
  conn_t* c = g_slots[slot];
  return c != NULL && c->id == id ? c : NULL;
}

static void framer_drop_slab(framer_t* f) {
  if (f->slab != NULL) napi_delete_reference(g_env, f->slab);
  f->slab = NULL;
  f->base = NULL;
  f->cap = f->woff = f->roff = 0;
}

static void on_closed(uv_handle_t* h) {
  conn_t* c = (conn_t*)h;
  if (c->fr != NULL) {
    framer_drop_slab(c->fr);
    free(c->fr);
    c->fr = NULL;
  }
  uint32_t slot = c->id & SLOT_MASK;
  g_slots[slot] = NULL;
  g_gens[slot]++;
  g_free[g_nfree++] = slot;
  g_open--;
  napi_handle_scope scope;
  napi_open_handle_scope(g_env, &scope);
  napi_value argv[2] = {num(c->id), num(c->err)};
  free(c);
  call_js(g_on_close, 2, argv);
  napi_close_handle_scope(g_env, scope);
}

static void close_conn(conn_t* c, int err) {
  if (c->flags & F_CLOSING) return;
  c->flags |= F_CLOSING;
  c->err = err;
  uv_close((uv_handle_t*)&c->h, on_closed);
}

// ------------------------------------------------------------------------------------------
// reading

static uint32_t be32(const char* p) {
  const unsigned char* u = (const unsigned char*)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | (uint32_t)u[3];
}

// Replaces the slab by one of at least `need` bytes, the bytes not yet handed out moved to its start.
static int framer_new_slab(framer_t* f, size_t need) {
  size_t cap = f->next_cap < need ? need : f->next_cap;
  napi_handle_scope scope;
  napi_open_handle_scope(g_env, &scope);
  void* data;
  napi_value buf;
  napi_ref ref = NULL;
  int ok = 0;
  if (napi_create_buffer(g_env, cap, &data, &buf) == napi_ok && napi_create_reference(g_env, buf, 1, &ref) == napi_ok) {
    size_t keep = f->woff - f->roff;
    if (keep > 0) memcpy(data, f->base + f->roff, keep);
    framer_drop_slab(f);
    f->slab = ref;
    f->base = data;
    f->cap = cap;
    f->woff = keep;
    ok = 1;
  }
  napi_close_handle_scope(g_env, scope);
  return ok;
}

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  framer_t* f = ((conn_t*)h)->fr;
  if (f == NULL) {
    buf->base = g_read_buf;
    buf->len = sizeof g_read_buf;
    return;
  }
  size_t pending = f->woff - f->roff;
  size_t room = READ_MIN;  // wanted after the pending bytes: at least the rest of the frame begun
  if (pending >= 4) {
    size_t frame = 4 + (size_t)be32(f->base + f->roff);  // its size was checked when it was read
    if (frame > pending + room) room = frame - pending;
  }
  if (f->slab == NULL || f->cap - f->woff < room) {
    if (!framer_new_slab(f, pending + room)) {
      buf->base = NULL;  // on_read gets UV_ENOBUFS
      buf->len = 0;
      return;
    }
  }
  buf->base = f->base + f->woff;
  buf->len = f->cap - f->woff;
}

// Hands the whole frames of a read to JavaScript: onFrames(id, slab, start, end, badSize), the
// frames lying in slab[start, end); badSize is a size prefix out of range (nothing more is read
// then), or -1.
static void on_read_framed(conn_t* c, framer_t* f, size_t n) {
  size_t room = f->cap - f->woff;
  f->woff += n;
  size_t start = f->roff, pos = start;
  int bad = 0;
  double bad_size = -1;
  while (f->woff - pos >= 4) {
    uint32_t size = be32(f->base + pos);
    if (size > f->max_frame) {
      bad = 1;
      bad_size = (double)(int32_t)size;
      break;
    }
    if (f->woff - pos - 4 < size) break;
    pos += 4 + (size_t)size;
  }
  f->roff = pos;
  if (n == room) {
    if (f->next_cap < SLAB_MAX) f->next_cap *= 2;  // more was waiting: read more at a time
  } else if (n < room / 4 && f->next_cap > SLAB_MIN) {
    f->next_cap /= 2;
  }
  if (pos == start && !bad) return;
  if (bad) {
    uv_read_stop((uv_stream_t*)&c->h);
    c->flags &= ~F_READING;
    c->flags |= F_PAUSED;
  }
  napi_value argv[5];
  argv[0] = num(c->id);
  napi_get_reference_value(g_env, f->slab, &argv[1]);
  argv[2] = num((double)start);
  argv[3] = num((double)pos);
  argv[4] = num(bad_size);
  // Drained with nothing pending and the slab half used: let it go with its frames.
  if (pos == f->woff && n < room && f->woff > f->cap / 2) framer_drop_slab(f);
  call_js(g_on_frames, 5, argv);
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  conn_t* c = (conn_t*)s;
  if (n == 0 || (c->flags & F_CLOSING)) return;
  napi_handle_scope scope;
  napi_open_handle_scope(g_env, &scope);
  if (n > 0 && c->fr != NULL) {
    on_read_framed(c, c->fr, (size_t)n);
  } else if (n == UV_ENOBUFS) {
    close_conn(c, UV_ENOMEM);
  } else if (n > 0) {
    napi_value argv[2];
    void* data;
    argv[0] = num(c->id);
    // A copy of exactly what was read: the caller may keep slices of it (message payloads).
    if (napi_create_buffer_copy(g_env, (size_t)n, buf->base, &data, &argv[1]) == napi_ok) call_js(g_on_data, 2, argv);
    else close_conn(c, UV_ENOMEM);  // never drop bytes silently: the stream would be corrupt
  } else if (n == UV_EOF) {
    c->flags |= F_EOF;
    uv_read_stop(s);
    c->flags &= ~F_READING;
    napi_value argv[1] = {num(c->id)};
    call_js(g_on_end, 1, argv);
    // JavaScript decides what follows (end() or destroy()). A connection whose shutdown already
    // completed is done; one whose shutdown is pending closes when it completes, after the bytes
    // queued before it (as a net.Socket ends its side after its writes).
    if ((c->flags & F_SHUT_DONE) && !(c->flags & F_CLOSING)) close_conn(c, 0);
  } else {
    close_conn(c, (int)n);
  }
  napi_close_handle_scope(g_env, scope);
}

static int start_reading(conn_t* c) {
  if (c->flags & (F_READING | F_CLOSING | F_EOF | F_PAUSED)) return 0;
  int r = uv_read_start((uv_stream_t*)&c->h, on_alloc, on_read);
  if (r == 0) c->flags |= F_READING;
  return r;
}

// ------------------------------------------------------------------------------------------
// accepting and connecting

static void peer_name(conn_t* c, char* ip, size_t iplen, int* port) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  ip[0] = 0;
  *port = 0;
  if (uv_tcp_getpeername(&c->h, (struct sockaddr*)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET) {
    uv_ip4_name((struct sockaddr_in*)&ss, ip, iplen);
    *port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6*)&ss, ip, iplen);
    *port = ntohs(((struct sockaddr_in6*)&ss)->sin6_port);
  }
}

static void on_connection(uv_stream_t* srv, int status) {
  server_t* s = (server_t*)srv;
  if (status < 0) return;
  conn_t* c = slot_alloc();
  if (c == NULL) {
    // Out of slots or memory: take the connection off the backlog and drop it.
    uv_tcp_t* t = malloc(sizeof *t);
    if (t == NULL) return;
    uv_tcp_init(g_loop, t);
    uv_accept(srv, (uv_stream_t*)t);
    uv_close((uv_handle_t*)t, (uv_close_cb)free);
    return;
  }
  uv_tcp_init(g_loop, &c->h);
  if (uv_accept(srv, (uv_stream_t*)&c->h) != 0) {
    close_conn(c, 0);
    return;
  }
  if (!s->nodelay) uv_tcp_nodelay(&c->h, 1);  // one setsockopt per connection saved where inherited
  if (s->max_frame > 0) {
    c->fr = calloc(1, sizeof *c->fr);
    if (c->fr == NULL) {
      close_conn(c, UV_ENOMEM);
      return;
    }
    c->fr->max_frame = s->max_frame;
    c->fr->next_cap = SLAB_MIN;
  }
  char ip[64];
  int port;
  peer_name(c, ip, sizeof ip, &port);
  start_reading(c);
  napi_handle_scope scope;
  napi_open_handle_scope(g_env, &scope);
  napi_value argv[4];
  argv[0] = num(s->sid);
  argv[1] = num(c->id);
  napi_create_string_latin1(g_env, ip, NAPI_AUTO_LENGTH, &argv[2]);
  argv[3] = num(port);
  call_js(g_on_connection, 4, argv);
  napi_close_handle_scope(g_env, scope);
}

static void on_connect(uv_connect_t* req, int status) {
  conn_t* c = (conn_t*)req->handle;
  free(req);
  c->flags &= ~F_CONNECTING;
  napi_handle_scope scope;
  napi_open_handle_scope(g_env, &scope);
  if (status == 0 && !(c->flags & F_CLOSING)) {
    uv_tcp_nodelay(&c->h, 1);
    start_reading(c);
  }
  napi_value argv[2] = {num(c->id), num(status)};
  call_js(g_on_connect, 2, argv);
  if (status != 0) close_conn(c, status);
  napi_close_handle_scope(g_env, scope);
}

// ------------------------------------------------------------------------------------------
// writing

// Frees a write request and the buffer references it holds.
static void wreq_free(wreq_t* w) {
  for (size_t i = 0; i < w->nrefs; i++) napi_delete_reference(g_env, ((napi_ref*)w->data)[i]);
  free(w);
}

static void on_written(uv_write_t* req, int status) {
  wreq_t* w = (wreq_t*)req;
  conn_t* c = (conn_t*)req->handle;
  c->queued -= w->len;
  wreq_free(w);
  if (c->flags & F_CLOSING) return;
  if (status < 0) {
    close_conn(c, status);
    return;
  }
  if (c->queued == 0 && (c->flags & F_DRAIN)) {
    c->flags &= ~F_DRAIN;
    napi_handle_scope scope;
    napi_open_handle_scope(g_env, &scope);
    napi_value argv[1] = {num(c->id)};
    call_js(g_on_drain, 1, argv);
    napi_close_handle_scope(g_env, scope);
  }
}

// Queues the rest of `bufs` (after `skip` bytes) without copying: references to `vals` keep the
// buffers alive until the write completes.
static int64_t write_refs(conn_t* c, uv_buf_t* bufs, napi_value* vals, unsigned n, size_t skip, size_t rest) {
  unsigned first = 0;
  while (skip >= bufs[first].len) skip -= bufs[first++].len;
  unsigned count = n - first;
  wreq_t* w = malloc(sizeof *w + count * sizeof(napi_ref));
  if (w == NULL) return UV_ENOMEM;
  w->len = rest;
  w->nrefs = 0;
  napi_ref* refs = (napi_ref*)w->data;
  for (unsigned i = 0; i < count; i++) {
    if (napi_create_reference(g_env, vals[first + i], 1, &refs[i]) != napi_ok) {
      wreq_free(w);
      return UV_ENOMEM;
    }
    w->nrefs++;
  }
  bufs[first].base += skip;
  bufs[first].len -= skip;
  int r = uv_write(&w->req, (uv_stream_t*)&c->h, bufs + first, count, on_written);  // copies the uv_buf_t array
  if (r != 0) {
    wreq_free(w);
    return r;
  }
  c->queued += rest;
  c->flags |= F_DRAIN;
  return (int64_t)c->queued;
}

// Queues `bufs` after what is queued already; writes at once what the kernel takes when nothing
// is queued. Returns the bytes left queued, or a negative libuv error. `vals` (the JavaScript
// buffers behind `bufs`, or NULL) allow a large rest to be queued by reference.
static int64_t write_bufs(conn_t* c, uv_buf_t* bufs, napi_value* vals, unsigned n) {
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += bufs[i].len;
  if (total == 0) return (int64_t)c->queued;
  size_t skip = 0;
  if (c->queued == 0) {
    int r = uv_try_write((uv_stream_t*)&c->h, bufs, n);
    if (r == (int)total) return 0;
    if (r >= 0) skip = (size_t)r;
    else if (r != UV_EAGAIN) return r;
  }
  size_t rest = total - skip;
  if (vals != NULL && rest >= WRITE_REF_MIN) return write_refs(c, bufs, vals, n, skip, rest);
  wreq_t* w = malloc(sizeof *w + rest);
  if (w == NULL) return UV_ENOMEM;
  w->len = rest;
  w->nrefs = 0;
  size_t o = 0;
  for (unsigned i = 0; i < n; i++) {
    size_t l = bufs[i].len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    memcpy(w->data + o, bufs[i].base + skip, l - skip);
    o += l - skip;
    skip = 0;
  }
  uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
  int r = uv_write(&w->req, (uv_stream_t*)&c->h, &b, 1, on_written);
  if (r != 0) {
    free(w);
    return r;
  }
  c->queued += rest;
  c->flags |= F_DRAIN;
  return (int64_t)c->queued;
}

static void on_shutdown(uv_shutdown_t* req, int status) {
  conn_t* c = (conn_t*)req->handle;
  free(req);
  if (c->flags & F_CLOSING) return;
  c->flags |= F_SHUT_DONE;
  if (status < 0) close_conn(c, 0);
  else if (c->flags & F_EOF) close_conn(c, 0);
}

// ------------------------------------------------------------------------------------------
// JavaScript API

#define ARGS(n)                                                  \
  size_t argc = n;                                               \
  napi_value argv[n];                                            \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);

static uint32_t arg_u32(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return (uint32_t)d;
}

static napi_value ret_num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static napi_value throw_uv(napi_env env, const char* what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, uv_strerror(err), uv_err_name(err));
  napi_throw_error(env, uv_err_name(err), msg);
  return NULL;
}

// init({ onConnection, onData, onEnd, onClose, onDrain, onConnect })
static napi_value js_init(napi_env env, napi_callback_info info) {
  ARGS(1);
  if (g_env != NULL) {
    if (g_env != env) napi_throw_error(env, NULL, "uvtcp serves one thread (the first to call init)");
    return NULL;
  }
  g_env = env;
  napi_get_uv_event_loop(env, &g_loop);
  napi_value name;
  napi_create_string_utf8(env, "robustmq.uvtcp", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &g_async);
  const char* names[] = {"onConnection", "onData", "onEnd", "onClose", "onDrain", "onConnect", "onFrames"};
  napi_ref* refs[] = {&g_on_connection, &g_on_data, &g_on_end, &g_on_close, &g_on_drain, &g_on_connect, &g_on_frames};
  for (int i = 0; i < 7; i++) {
    napi_value fn;
    napi_get_named_property(env, argv[0], names[i], &fn);
    napi_create_reference(env, fn, 1, refs[i]);
  }
  return NULL;
}

// The address of (host, port) JavaScript arguments: an IPv4 or IPv6 literal (no name lookup).
static int parse_addr(napi_env env, napi_value host_v, napi_value port_v, struct sockaddr_storage* ss) {
  char host[256];
  size_t hl;
  if (napi_get_value_string_utf8(env, host_v, host, sizeof host, &hl) != napi_ok) return UV_EINVAL;
  int port = (int)arg_u32(env, port_v);
  if (strchr(host, ':') != NULL) return uv_ip6_addr(host, port, (struct sockaddr_in6*)ss);
  return uv_ip4_addr(host, port, (struct sockaddr_in*)ss);
}

// listen(host, port, backlog, maxFrame) → [serverId, boundPort]; maxFrame > 0: framed reading
static napi_value js_listen(napi_env env, napi_callback_info info) {
  ARGS(4);
  int backlog = (int)arg_u32(env, argv[2]);
  uint32_t max_frame = arg_u32(env, argv[3]);  // 0 or absent: a byte stream
  if (max_frame > INT32_MAX) max_frame = INT32_MAX;
  int sid = -1;
  for (int i = 0; i < MAX_SERVERS; i++)
    if (g_servers[i] == NULL) {
      sid = i;
      break;
    }
  if (sid < 0) return throw_uv(env, "listen", UV_EMFILE);
  struct sockaddr_storage ss;
  int r = parse_addr(env, argv[0], argv[1], &ss);
  if (r != 0) return throw_uv(env, "listen: bad address", r);
  server_t* s = calloc(1, sizeof *s);
  if (s == NULL) return throw_uv(env, "listen", UV_ENOMEM);
  s->sid = (uint32_t)sid;
  s->max_frame = max_frame;
  uv_tcp_init(g_loop, &s->h);
  r = uv_tcp_bind(&s->h, (struct sockaddr*)&ss, 0);
#ifdef __linux__
  // Linux copies the listening socket's TCP_NODELAY to every socket it accepts.
  if (r == 0) s->nodelay = uv_tcp_nodelay(&s->h, 1) == 0;
#endif
  if (r == 0) r = uv_listen((uv_stream_t*)&s->h, backlog > 0 ? backlog : 511, on_connection);
  if (r != 0) {
    uv_close((uv_handle_t*)&s->h, (uv_close_cb)free);
    return throw_uv(env, "listen", r);
  }
  g_servers[sid] = s;
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_getsockname(&s->h, (struct sockaddr*)&got, &len);
  int bound = got.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6*)&got)->sin6_port) : ntohs(((struct sockaddr_in*)&got)->sin_port);
  napi_value out, v;
  napi_create_array_with_length(env, 2, &out);
  napi_create_uint32(env, (uint32_t)sid, &v);
  napi_set_element(env, out, 0, v);
  napi_create_uint32(env, (uint32_t)bound, &v);
  napi_set_element(env, out, 1, v);
  return out;
}

static napi_value js_close_server(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t sid = arg_u32(env, argv[0]);
  if (sid < MAX_SERVERS && g_servers[sid] != NULL) {
    uv_close((uv_handle_t*)&g_servers[sid]->h, (uv_close_cb)free);
    g_servers[sid] = NULL;
  }
  return NULL;
}

// connect(host, port) → id; onConnect(id, status) follows
static napi_value js_connect(napi_env env, napi_callback_info info) {
  ARGS(2);
  struct sockaddr_storage ss;
  int r = parse_addr(env, argv[0], argv[1], &ss);
  if (r != 0) return throw_uv(env, "connect: bad address", r);
  conn_t* c = slot_alloc();
  if (c == NULL) return throw_uv(env, "connect", UV_ENOMEM);
  uv_tcp_init(g_loop, &c->h);
  uv_connect_t* req = malloc(sizeof *req);
  if (req == NULL) {
    close_conn(c, UV_ENOMEM);
    return ret_num(env, c->id);
  }
  c->flags |= F_CONNECTING;
  r = uv_tcp_connect(req, &c->h, (struct sockaddr*)&ss, on_connect);
  if (r != 0) {
    free(req);
    c->flags &= ~F_CONNECTING;
    close_conn(c, r);
  }
  return ret_num(env, c->id);
}

// write(id, buffer) → bytes still queued (0: all taken), or a negative libuv error
static napi_value js_write(napi_env env, napi_callback_info info) {
  ARGS(2);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  if (c == NULL || (c->flags & F_CLOSING)) return ret_num(env, UV_EPIPE);
  if (c->flags & F_CONNECTING) return ret_num(env, UV_ENOTCONN);
  void* data;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "write: a Buffer is required");
    return NULL;
  }
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  return ret_num(env, (double)write_bufs(c, &b, &argv[1], 1));
}

// writev(id, buffers[]) → as write
static napi_value js_writev(napi_env env, napi_callback_info info) {
  ARGS(2);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  if (c == NULL || (c->flags & F_CLOSING)) return ret_num(env, UV_EPIPE);
  if (c->flags & F_CONNECTING) return ret_num(env, UV_ENOTCONN);
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  uv_buf_t stackbufs[16];
  napi_value stackvals[16];
  uv_buf_t* bufs = n <= 16 ? stackbufs : malloc(n * sizeof *bufs);
  napi_value* vals = n <= 16 ? stackvals : malloc(n * sizeof *vals);
  if (bufs == NULL || vals == NULL) {
    if (bufs != stackbufs) free(bufs);
    if (vals != stackvals) free(vals);
    return ret_num(env, UV_ENOMEM);
  }
  for (uint32_t i = 0; i < n; i++) {
    void* data = NULL;
    size_t len = 0;
    napi_get_element(env, argv[1], i, &vals[i]);
    if (napi_get_buffer_info(env, vals[i], &data, &len) != napi_ok) len = 0;
    bufs[i] = uv_buf_init(data, (unsigned)len);
  }
  int64_t r = write_bufs(c, bufs, vals, n);
  if (bufs != stackbufs) free(bufs);
  if (vals != stackvals) free(vals);
  return ret_num(env, (double)r);
}

static napi_value js_queued(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  return ret_num(env, c == NULL ? 0 : (double)c->queued);
}

static napi_value js_pause(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  if (c != NULL) {
    c->flags |= F_PAUSED;
    if (c->flags & F_READING) {
      uv_read_stop((uv_stream_t*)&c->h);
      c->flags &= ~F_READING;
    }
  }
  return NULL;
}

static napi_value js_resume(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  if (c != NULL && !(c->flags & F_CONNECTING)) {
    c->flags &= ~F_PAUSED;
    int r = start_reading(c);
    if (r != 0) close_conn(c, r);
  }
  return NULL;
}

// end(id): shut our side down once the queued bytes are written
static napi_value js_end(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  if (c == NULL || (c->flags & (F_CLOSING | F_SHUT))) return NULL;
  c->flags |= F_SHUT;
  if (c->flags & F_CONNECTING) {
    close_conn(c, 0);
    return NULL;
  }
  uv_shutdown_t* req = malloc(sizeof *req);
  if (req == NULL || uv_shutdown(req, (uv_stream_t*)&c->h, on_shutdown) != 0) {
    free(req);
    close_conn(c, 0);
  }
  return NULL;
}

static napi_value js_destroy(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  if (c != NULL) close_conn(c, 0);
  return NULL;
}

// Whether the connection's socket has TCP_NODELAY set: -1 when it is gone or cannot tell.
static napi_value js_no_delay(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn_t* c = lookup(arg_u32(env, argv[0]));
  uv_os_fd_t fd;
  if (c == NULL || uv_fileno((uv_handle_t*)&c->h, &fd) != 0) return ret_num(env, -1);
  int on = 0;
  socklen_t len = sizeof on;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return ret_num(env, -1);
  return ret_num(env, on != 0);
}

static napi_value js_open_count(napi_env env, napi_callback_info info) {
  (void)info;
  return ret_num(env, g_open);
}

static napi_value js_err_name(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t code = 0;
  napi_get_value_int32(env, argv[0], &code);
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s", uv_err_name(code), uv_strerror(code));
  napi_value r;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &r);
  return r;
}

NAPI_MODULE_INIT() {
  struct {
    const char* name;
    napi_callback fn;
  } fns[] = {
      {"init", js_init},       {"listen", js_listen},   {"closeServer", js_close_server}, {"connect", js_connect},
      {"write", js_write},     {"writev", js_writev},   {"queued", js_queued},            {"pause", js_pause},
      {"resume", js_resume},   {"end", js_end},         {"destroy", js_destroy},          {"openCount", js_open_count},
      {"errName", js_err_name}, {"noDelay", js_no_delay},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}
