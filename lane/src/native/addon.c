/*
 * lane.node: the N-API face of the relay thread (relay.c). Its exports are wrapped and checked by
 * lane/src/native.ts; this file still checks every length and type it is handed.
 *
 *   dupFd(fd) -> fd                     dup with close-on-exec
 *   peek(fd, max) -> Buffer | null      up to max (≤ 64) bytes waiting on a socket, left there;
 *                                       empty if none yet, null once the peer has closed
 *   relay(options, onEvent) -> id       onEvent({ event: 'detach' } | { event: 'end', how, ... })
 *   release(id, side) / write(id, buffer) / close(id, buffer)
 *   fileLimit(id, limit: bigint, final: boolean)   a growing `file` relay's limit moves forward
 *   preferLatency(tid) -> 0 | -errno    the echo path's short slice for thread tid (0: this one)
 *
 * Each relay holds a threadsafe function (ref'd: an active relay keeps Node alive) until its end
 * event, after which it is released. The environment can go first (a Worker terminated, the
 * process torn down): Node then frees the threadsafe function, so the relay thread reaches it only
 * through a `relay_link` that the finalizer marks gone under a mutex, and that relay is closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>


#include <node_api.h>
#include <openssl/crypto.h>
#include <pthread.h>

#include "relay.h"

#define CHECK(call)                                    \
  do {                                                 \
    if ((call) != napi_ok) return throw_last(env);     \
  } while (0)

static napi_value throw_last(napi_env env) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, NULL, info && info->error_message ? info->error_message : "N-API call failed");
  }
  return NULL;
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value dup_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "dupFd: fd must be an integer ≥ 0");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    char message[160];
    snprintf(message, sizeof message, "dupFd(%d): %s", fd, strerror(errno));
    return fail(env, message);
  }
  napi_value result;
  CHECK(napi_create_int32(env, copy, &result));
  return result;
}

static int get_int(napi_env env, napi_value object, const char *name, int32_t *out) {
  napi_value value;
  if (napi_get_named_property(env, object, name, &value) != napi_ok) return 0;
  return napi_get_value_int32(env, value, out) == napi_ok;
}

static int get_bool(napi_env env, napi_value object, const char *name, int *out) {
  napi_value value;
  bool flag;
  if (napi_get_named_property(env, object, name, &value) != napi_ok) return 0;
  if (napi_get_value_bool(env, value, &flag) != napi_ok) return 0;
  *out = flag;
  return 1;
}

static int get_u64(napi_env env, napi_value object, const char *name, uint64_t *out) {
  napi_value value;
  bool lossless;
  if (napi_get_named_property(env, object, name, &value) != napi_ok) return 0;
  return napi_get_value_bigint_uint64(env, value, out, &lossless) == napi_ok && lossless;
}

/* A Buffer property copied into malloc'd memory (NULL, 0 when absent or empty). 0 on a bad type. */
static int get_bytes(napi_env env, napi_value object, const char *name, uint8_t **out, size_t *length) {
  napi_value value;
  napi_valuetype type;
  bool is_buffer;
  void *data;
  *out = NULL;
  *length = 0;
  if (napi_get_named_property(env, object, name, &value) != napi_ok) return 0;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_undefined) return 1;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return 0;
  if (napi_get_buffer_info(env, value, &data, length) != napi_ok) return 0;
  if (*length == 0) return 1;
  *out = malloc(*length);
  if (!*out) return 0;
  memcpy(*out, data, *length);
  return 1;
}

static int get_key(napi_env env, napi_value object, const char *name, uint8_t key[LANE_KEY_LENGTH]) {
  uint8_t *bytes;
  size_t length;
  if (!get_bytes(env, object, name, &bytes, &length)) return 0;
  int ok = length == LANE_KEY_LENGTH;
  if (ok) memcpy(key, bytes, LANE_KEY_LENGTH);
  if (bytes) {
    OPENSSL_cleanse(bytes, length);
    free(bytes);
  }
  return ok;
}

static const char *HOW[] = {"closed", "closed_here", "eof", "error"};

static void set_string(napi_env env, napi_value object, const char *name, const char *text) {
  napi_value value;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &value) == napi_ok) napi_set_named_property(env, object, name, value);
}

static void set_number(napi_env env, napi_value object, const char *name, double number) {
  napi_value value;
  if (napi_create_double(env, number, &value) == napi_ok) napi_set_named_property(env, object, name, value);
}

/* On the JS thread: one event of a relay, then freed. */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  lane_event *event = data;
  if (env && callback) {
    napi_value object, undefined;
    if (napi_create_object(env, &object) == napi_ok && napi_get_undefined(env, &undefined) == napi_ok) {
      set_string(env, object, "event", event->is_end ? "end" : "detach");
      if (event->is_end) {
        set_string(env, object, "how", HOW[event->how]);
        set_number(env, object, "bytesIn", event->bytes_in);
        set_number(env, object, "bytesOut", event->bytes_out);
        if (event->how == LANE_END_ERROR) set_string(env, object, "message", event->message);
        if (event->has_sha256) {
          char hex[2 * sizeof event->sha256 + 1];
          for (size_t i = 0; i < sizeof event->sha256; i++) snprintf(hex + 2 * i, 3, "%02x", event->sha256[i]);
          set_string(env, object, "sha256", hex);
        }
        if (event->how == LANE_END_CLOSED) {
          napi_value reason;
          void *copy;
          if (napi_create_buffer_copy(env, event->reason_length, event->reason ? (void *)event->reason : (void *)"",
                                      &copy, &reason) == napi_ok) {
            napi_set_named_property(env, object, "reason", reason);
          }
        }
      }
      napi_call_function(env, undefined, callback, 1, &object, NULL);
    }
  }
  free(event->reason);
  free(event);
}

/*
 * What the relay thread and the JS thread share about one relay. Freed by the second of: the relay's
 * end (it will not call again) and the threadsafe function's finalizer (after the last release, or
 * when the environment is torn down with the relay still running).
 */
typedef struct relay_link {
  napi_threadsafe_function tsfn;
  uint32_t id;
  int tsfn_gone;  /* finalized: never call or release it again */
  int relay_done; /* the relay sent its end event */
} relay_link;

static pthread_mutex_t link_mutex = PTHREAD_MUTEX_INITIALIZER;

/* On the relay thread. */
static void on_event(void *context, lane_event *event) {
  relay_link *link = context;
  int is_end = event->is_end, free_link = 0;
  pthread_mutex_lock(&link_mutex);
  if (link->tsfn_gone || napi_call_threadsafe_function(link->tsfn, event, napi_tsfn_nonblocking) != napi_ok) {
    free(event->reason);
    free(event);
  }
  if (is_end) {
    if (!link->tsfn_gone) napi_release_threadsafe_function(link->tsfn, napi_tsfn_release);
    link->relay_done = 1;
    free_link = link->tsfn_gone;
  }
  pthread_mutex_unlock(&link_mutex);
  if (free_link) free(link);
}

/* On the JS thread, once: after the end's release, or as the environment is torn down (Node frees the tsfn next). */
static void on_tsfn_finalized(napi_env env, void *data, void *hint) {
  relay_link *link = data;
  pthread_mutex_lock(&link_mutex);
  link->tsfn_gone = 1;
  int free_link = link->relay_done;
  pthread_mutex_unlock(&link_mutex);
  if (free_link) {
    free(link);
    return;
  }
  /* No one is left to hear this relay: it ends as a close() would (CLOSE, then the lane closes). */
  uint8_t *empty = malloc(1);
  if (empty) lane_relay_close(link->id, empty, 0);
}

/* Worker threads each call relay(): ids come from one counter. */
static uint32_t next_id = 1;

static void free_options(lane_relay_options *o) {
  free(o->from_net);
  free(o->to_net);
  free(o->to_local);
  OPENSSL_cleanse(o, sizeof *o); /* the keys too (a memset before going out of scope may be optimized away) */
}

static napi_value relay(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_valuetype type;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return fail(env, "relay(options, onEvent)");
  CHECK(napi_typeof(env, argv[1], &type));
  if (type != napi_function) return fail(env, "relay: onEvent must be a function");

  lane_relay_options o;
  memset(&o, 0, sizeof o);
  int32_t net, local_read, local_write, kind, detach;
  if (!get_int(env, argv[0], "net", &net) || !get_int(env, argv[0], "localRead", &local_read) ||
      !get_int(env, argv[0], "localWrite", &local_write) || net < 0 || local_read < 0 || local_write < 0)
    return fail(env, "relay: net, localRead and localWrite must be fds ≥ 0");
  if (!get_int(env, argv[0], "kind", &kind) || kind < 0 || kind > 3) return fail(env, "relay: kind must be 0-3");
  if (!get_int(env, argv[0], "detachByte", &detach) || detach < -1 || detach > 255)
    return fail(env, "relay: detachByte must be -1..255");
  if (!get_bool(env, argv[0], "closeLocal", &o.close_local) || !get_bool(env, argv[0], "holdNet", &o.hold_net) ||
      !get_bool(env, argv[0], "holdLocal", &o.hold_local))
    return fail(env, "relay: closeLocal, holdNet and holdLocal must be booleans");
  if (!get_key(env, argv[0], "sendKey", o.send_key) || !get_key(env, argv[0], "receiveKey", o.receive_key)) {
    free_options(&o);
    return fail(env, "relay: sendKey and receiveKey must be 32-byte Buffers");
  }
  if (!get_u64(env, argv[0], "sendSeq", &o.send_seq) || !get_u64(env, argv[0], "receiveSeq", &o.receive_seq)) {
    free_options(&o);
    return fail(env, "relay: sendSeq and receiveSeq must be bigints 0..2^64-1");
  }
  if (!get_u64(env, argv[0], "fileOffset", &o.file_offset) || !get_u64(env, argv[0], "fileLimit", &o.file_limit) ||
      !get_u64(env, argv[0], "fileReceiveLimit", &o.file_receive_limit)) {
    free_options(&o);
    return fail(env, "relay: fileOffset, fileLimit and fileReceiveLimit must be bigints 0..2^64-1");
  }
  if (!get_bool(env, argv[0], "fileGrowing", &o.file_growing) || !get_bool(env, argv[0], "fileSha256", &o.file_sha256)) {
    free_options(&o);
    return fail(env, "relay: fileGrowing and fileSha256 must be booleans");
  }
  if (!get_u64(env, argv[0], "fileHashPrefix", &o.file_hash_prefix)) {
    free_options(&o);
    return fail(env, "relay: fileHashPrefix must be a bigint 0..2^64-1");
  }
  o.net = net;
  o.local_read = local_read;
  o.local_write = local_write;
  o.kind = kind;
  o.detach_byte = detach;
  if (!get_bytes(env, argv[0], "fromNet", &o.from_net, &o.from_net_length) ||
      !get_bytes(env, argv[0], "toNet", &o.to_net, &o.to_net_length) ||
      !get_bytes(env, argv[0], "toLocal", &o.to_local, &o.to_local_length)) {
    free_options(&o);
    return fail(env, "relay: fromNet, toNet and toLocal must be Buffers or undefined");
  }

  napi_value name;
  relay_link *link = calloc(1, sizeof *link);
  if (!link) {
    free_options(&o);
    return fail(env, "relay: out of memory");
  }
  link->id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
  if (napi_create_string_utf8(env, "hangar lane relay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, link, on_tsfn_finalized, NULL, call_js,
                                      &link->tsfn) != napi_ok) {
    free(link);
    free_options(&o);
    return throw_last(env);
  }
  o.on_event = on_event;
  o.context = link;
  uint32_t id = link->id;
  char error[256];
  int started = lane_relay_start(id, &o, error, sizeof error);
  OPENSSL_cleanse(o.send_key, sizeof o.send_key);
  OPENSSL_cleanse(o.receive_key, sizeof o.receive_key);
  if (started != 0) {
    link->relay_done = 1; /* nothing will call: the finalizer frees the link */
    napi_release_threadsafe_function(link->tsfn, napi_tsfn_abort);
    free_options(&o);
    return fail(env, error);
  }
  napi_value result;
  CHECK(napi_create_uint32(env, id, &result));
  return result;
}

/* (id, side) or (id, buffer): the id and, for write/close, a malloc'd copy of the buffer. */
static int command_args(napi_env env, napi_callback_info info, uint32_t *id, uint8_t **data, size_t *length, int32_t *side) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return 0;
  if (napi_get_value_uint32(env, argv[0], id) != napi_ok) return 0;
  if (side) return napi_get_value_int32(env, argv[1], side) == napi_ok && (*side == 0 || *side == 1);
  bool is_buffer;
  void *bytes;
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) return 0;
  if (napi_get_buffer_info(env, argv[1], &bytes, length) != napi_ok) return 0;
  *data = malloc(*length > 0 ? *length : 1);
  if (!*data) return 0;
  if (*length > 0) memcpy(*data, bytes, *length);
  return 1;
}

static napi_value release(napi_env env, napi_callback_info info) {
  uint32_t id;
  int32_t side;
  if (!command_args(env, info, &id, NULL, NULL, &side)) return fail(env, "release(id, 0 | 1)");
  lane_relay_release(id, side);
  return NULL;
}

static napi_value write_(napi_env env, napi_callback_info info) {
  uint32_t id;
  uint8_t *data = NULL;
  size_t length = 0;
  if (!command_args(env, info, &id, &data, &length, NULL)) return fail(env, "write(id, buffer)");
  if (length == 0) {
    free(data);
    return NULL;
  }
  lane_relay_write(id, data, length);
  return NULL;
}

static napi_value close_(napi_env env, napi_callback_info info) {
  uint32_t id;
  uint8_t *data = NULL;
  size_t length = 0;
  if (!command_args(env, info, &id, &data, &length, NULL)) return fail(env, "close(id, buffer)");
  if (length > LANE_MAX_CONTROL) {
    free(data);
    return fail(env, "close: a reason is at most 4096 bytes");
  }
  lane_relay_close(id, data, length);
  return NULL;
}

/* (id, limit, final): a growing file's limit moves forward; final fixes it (then EOF). */
static napi_value file_limit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t id;
  uint64_t limit;
  bool lossless, final;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_uint32(env, argv[0], &id) != napi_ok ||
      napi_get_value_bigint_uint64(env, argv[1], &limit, &lossless) != napi_ok || !lossless ||
      napi_get_value_bool(env, argv[2], &final) != napi_ok)
    return fail(env, "fileLimit(id, limit: bigint, final: boolean)");
  lane_relay_file_limit(id, limit, final ? 1 : 0);
  return NULL;
}

/*
 * What a connection has sent so far, without taking it off the socket (MSG_PEEK): the link port
 * tells a lane from TLS by its first bytes while the TLS server still gets a socket that nothing
 * has read (one read in JavaScript and put back changed how TLS then read it).
 */
static napi_value peek(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, max;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "peek: fd must be an integer ≥ 0");
  if (napi_get_value_int32(env, argv[1], &max) != napi_ok || max < 1 || max > 64) return fail(env, "peek: max must be 1-64");
  unsigned char seen[64];
  ssize_t n;
  do {
    n = recv(fd, seen, (size_t)max, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      char message[160];
      snprintf(message, sizeof message, "peek(%d): %s", fd, strerror(errno));
      return fail(env, message);
    }
    n = 0;
  } else if (n == 0) {
    napi_value nothing;
    CHECK(napi_get_null(env, &nothing));
    return nothing;
  }
  napi_value result;
  void *data;
  CHECK(napi_create_buffer_copy(env, (size_t)n, seen, &data, &result));
  return result;
}

static napi_value prefer_latency(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t tid;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &tid) != napi_ok || tid < 0)
    return fail(env, "preferLatency: tid must be an integer ≥ 0");
  napi_value result;
  CHECK(napi_create_int32(env, lane_prefer_latency((pid_t)tid), &result));
  return result;
}

/*
 * What this addon exports and expects, as a number the JavaScript checks when it loads it
 * (native.ts ADDON_VERSION): raised with every change to either side of this file's interface, so
 * that JavaScript pulled without `npm rebuild @hangar/lane` turns lanes off instead of calling an
 * older addon with what it does not know.
 */
#define LANE_ADDON_VERSION 1

static napi_value init(napi_env env, napi_value exports) {
  napi_value version;
  if (napi_create_uint32(env, LANE_ADDON_VERSION, &version) != napi_ok) return NULL;
  napi_property_descriptor properties[] = {
      {"version", NULL, NULL, NULL, NULL, version, napi_enumerable, NULL},
      {"dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_default, NULL},
      {"peek", NULL, peek, NULL, NULL, NULL, napi_default, NULL},
      {"relay", NULL, relay, NULL, NULL, NULL, napi_default, NULL},
      {"release", NULL, release, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, write_, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_, NULL, NULL, NULL, napi_default, NULL},
      {"fileLimit", NULL, file_limit, NULL, NULL, NULL, napi_default, NULL},
      {"preferLatency", NULL, prefer_latency, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return NULL;
  lane_relay_prepare(); /* a failure shows at the first relay(), with its reason */
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
