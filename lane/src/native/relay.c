/*
 * The relay threads of lanes (lane/PROTOCOL.md, "Native relay"). Two threads, each with its own libuv
 * loop, relay the lanes of the process: terminals' on one at the process's priority, the rest (bulk)
 * on one at BULK_NICE. Each relay has a uv_poll_t per fd, level-triggered, and one `pump` that makes
 * every bit of progress it can without blocking, then asks the polls only for what it can take:
 *
 *   local ── read ≤ 64 KiB straight into `nout` ── seal in place ── one send() ──▶ net
 *   net ── recv into `nin` ── open each whole record in place ── write its payload ──▶ local
 *
 * Memory per relay is bounded: `nout` ~256 KiB (local is read only while it has room for a whole
 * record), `nin` one record plus 64 KiB (net is read only while nothing waits to be written
 * locally). A record that does not open ends the relay at once; nothing after it is delivered.
 */
#define _GNU_SOURCE
#include "relay.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif
#include <unistd.h>
#include <uv.h>

#define NIN_CAP (LANE_MAX_RECORD + 65536)
#define NOUT_CAP (4 * LANE_MAX_RECORD)
#define RECORD_OVERHEAD (4 + 1 + LANE_TAG_LENGTH)
/*
 * A file's lane (LANE_KIND_FILE) moves bulk: the receiving side reads the lane up to FILE_BATCH
 * records at a time (nin is that big) and writes their payloads with one writev, and the sending
 * side reads and seals up to FILE_BATCH records per loop turn (nout's room) before one send():
 * a syscall and a loop turn per ~256 KiB instead of per 64 KiB record (bench:jobs, artifacts).
 */
#define FILE_BATCH 4
#define FILE_NIN_CAP (FILE_BATCH * LANE_MAX_RECORD + 65536)
/*
 * From close(), how long the relay waits for CLOSE to go out and for the peer's end before closing
 * anyway (not a hot path): a peer that reads nothing (a revoked device) cannot keep its lane open.
 */
#define LINGER_MS 5000
/*
 * Bulk lanes (every kind but a terminal's) have a relay thread of their own, this much nicer than
 * the process: a keystroke's echo on the link's streams (the main threads) or on a terminal lane
 * (the other relay thread) is not kept waiting for a CPU behind a download. Nice only weighs
 * threads that want a CPU at once: a download with the machine to itself goes as fast as before.
 */
#define BULK_NICE 10
/*
 * A keystroke's echo passes threads that sleep between keys (the main threads of the agent and of
 * a core, the terminals' relay thread, the agent's tmux server) while a download keeps others busy
 * on the same CPUs. EEVDF (Linux 6.6) lets the running thread finish
 * its slice (1.4 ms on 2 CPUs) before a woken one of the same weight runs, and since 6.12 a woken
 * thread with a shorter slice than the running one cuts that short (PREEMPT_SHORT). So the threads
 * of the echo's path get the shortest slice the kernel takes, 0.1 ms (sched_setattr's
 * sched_runtime, no privilege needed, ignored before 6.12): a woken key runs at once. Their share
 * of the CPUs stays what their nice gives; only when they run changes. Bulk threads keep the
 * default slice: with a 0.1 ms one (as before) each of their wake-ups, thousands a second during a
 * download, in turn cut short whatever ran, the tmux server echoing a key included.
 */
#define INTERACTIVE_SLICE_NS 100000

#define LANE_SCHED_FLAG_RESET_ON_FORK 0x01

/* The kernel's struct sched_attr (glibc's sched.h has none before 2.41, and linux/sched/types.h clashes with it). */
struct lane_sched_attr {
  uint32_t size, sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
};

typedef struct worker worker;
typedef struct hasher hasher;

typedef struct chunk {
  struct chunk *next;
  uint8_t *data;
  size_t length, offset;
} chunk;

typedef struct relay {
  struct relay *next;
  worker *w;
  uint32_t id;
  lane_relay_options o;
  EVP_CIPHER_CTX *enc, *dec;
  uint64_t send_seq, receive_seq;
  int send_spent, receive_spent;

  uint8_t *nin;
  size_t nin_cap, nin_start, nin_end;
  const uint8_t *lout; /* plaintext waiting to be written locally: in nin, or o.to_local */
  size_t lout_length;   /* LANE_KIND_FILE: all of lv's bytes (lout unused) */
  int lout_counted;     /* lout (or lv) holds DATA payload already counted in bytes_in */
  struct iovec lv[FILE_BATCH]; /* LANE_KIND_FILE: payloads opened in nin, written with one writev */
  int lv_at, lv_n;

  uint8_t *nout;
  size_t nout_start, nout_end;
  chunk *js_head, *js_tail; /* toNet and write(): sealed before anything read locally */
  uint8_t *close_reason;
  size_t close_reason_length;

  int net_held, local_held, detached, local_eof, eof_sealed, net_eof, local_shut, net_shut;
  int close_requested, close_sealed, lingering, ended;
  double bytes_in, bytes_out;

  /* Polls: net; local read; local write when it is another fd. *_always: a regular file (no epoll). */
  uv_poll_t net_poll, lr_poll, lw_poll;
  int net_polled, lr_polled, lw_polled, lr_always, lw_always, lw_separate;
  int net_events, lr_events, lw_events;
  uv_timer_t linger;
  uv_idle_t lr_idle; /* reads a regular-file stdin once per loop turn (it is never "ready" to epoll) */
  int linger_inited, idle_inited, idle_active, open_handles;
  uint64_t file_at; /* LANE_KIND_FILE: the next byte of local_read to send */
  uint64_t file_in; /* LANE_KIND_FILE: DATA bytes taken (at most o.file_receive_limit) */
  EVP_MD_CTX *sha;  /* o.file_sha256: the digest of what local_write holds, fed as DATA is taken */
  /* o.file_sha256 with a prefix: read back a piece per loop turn; no DATA is opened meanwhile. */
  uv_idle_t hash_idle;
  int hash_inited, hashing;
  hasher *hasher;   /* o.file_sha256: DATA is hashed on a thread of its own (NULL: on this one) */
  int hash_wait;    /* the hasher's ring has no room for the next record: it wakes the relay */
  uint64_t hash_at;
  uint8_t *hash_buffer;
} relay;

typedef struct command {
  struct command *next;
  enum { CMD_START, CMD_RELEASE, CMD_WRITE, CMD_CLOSE, CMD_FILE_LIMIT, CMD_HASHED } op;
  uint32_t id;
  relay *start;
  uint8_t *data;
  size_t length;
  int side;
} command;

/* A relay thread: its loop, its commands, its relays. */
struct worker {
  const char *name;
  int nice; /* added to the process's */
  int latency; /* lane_prefer_latency on its thread */
  uv_loop_t loop;
  uv_async_t wake;
  uv_thread_t thread;
  command *queue_head, *queue_tail; /* under `mutex` */
  relay *relays;                    /* its loop thread only */
};

/* Which worker has a relay, for commands from JS (under `mutex`; removed by finish). */
typedef struct route {
  struct route *next;
  uint32_t id;
  worker *w;
} route;

enum { INTERACTIVE = 0, BULK = 1 };
static worker workers[2] = {{.name = "lane-relay", .nice = 0, .latency = 1}, {.name = "lane-bulk", .nice = BULK_NICE}};
static uv_once_t once = UV_ONCE_INIT;
static int init_error;
static uv_mutex_t mutex;
static route *routes;

static void pump(relay *r);
static void sha_end(relay *r, lane_event *event);
static void send_command(int op, uint32_t id, int side, uint8_t *data, size_t length);

/* ---- crypto ---------------------------------------------------------------------------------- */

static void nonce_of(uint64_t seq, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Seals, in place, the record at `at`: at[4] is the type, at[5..5+n) the payload; writes length and tag. */
static int seal_in_place(relay *r, uint8_t *at, size_t n) {
  uint8_t nonce[12];
  int out = 0;
  uint32_t body = (uint32_t)(1 + n + LANE_TAG_LENGTH);
  if (r->send_spent) return -1;
  put_be32(at, body);
  nonce_of(r->send_seq, nonce);
  if (EVP_EncryptInit_ex(r->enc, NULL, NULL, NULL, nonce) != 1) return -1;
  if (EVP_EncryptUpdate(r->enc, NULL, &out, at, 4) != 1) return -1;
  if (EVP_EncryptUpdate(r->enc, at + 4, &out, at + 4, (int)(1 + n)) != 1 || (size_t)out != 1 + n) return -1;
  if (EVP_EncryptFinal_ex(r->enc, at + 5 + n, &out) != 1 || out != 0) return -1;
  if (EVP_CIPHER_CTX_ctrl(r->enc, EVP_CTRL_GCM_GET_TAG, LANE_TAG_LENGTH, at + 5 + n) != 1) return -1;
  r->send_seq++;
  if (r->send_seq == 0) r->send_spent = 1;
  return 0;
}

/* Opens, in place, a whole record at `at` of body length `body` (checked by the caller). */
static int open_in_place(relay *r, uint8_t *at, uint32_t body) {
  uint8_t nonce[12];
  int out = 0;
  size_t plain = body - LANE_TAG_LENGTH;
  if (r->receive_spent) return -1;
  nonce_of(r->receive_seq, nonce);
  if (EVP_DecryptInit_ex(r->dec, NULL, NULL, NULL, nonce) != 1) return -1;
  if (EVP_DecryptUpdate(r->dec, NULL, &out, at, 4) != 1) return -1;
  if (EVP_DecryptUpdate(r->dec, at + 4, &out, at + 4, (int)plain) != 1 || (size_t)out != plain) return -1;
  if (EVP_CIPHER_CTX_ctrl(r->dec, EVP_CTRL_GCM_SET_TAG, LANE_TAG_LENGTH, at + 4 + plain) != 1) return -1;
  if (EVP_DecryptFinal_ex(r->dec, at + 4 + plain, &out) != 1) return -1;
  r->receive_seq++;
  if (r->receive_seq == 0) r->receive_spent = 1;
  return 0;
}

/* ---- the end --------------------------------------------------------------------------------- */

static void free_relay(relay *r) {
  chunk *c = r->js_head;
  while (c) {
    chunk *next = c->next;
    free(c->data);
    free(c);
    c = next;
  }
  EVP_CIPHER_CTX_free(r->enc);
  EVP_CIPHER_CTX_free(r->dec);
  EVP_MD_CTX_free(r->sha);
  free(r->hash_buffer);
  free(r->nin);
  free(r->nout);
  free(r->close_reason);
  free(r->o.from_net);
  free(r->o.to_net);
  free(r->o.to_local);
  free(r);
}

static void on_handle_closed(uv_handle_t *handle) {
  relay *r = handle->data;
  if (--r->open_handles == 0) free_relay(r);
}

static void close_handle(relay *r, uv_handle_t *handle) {
  r->open_handles++;
  uv_close(handle, on_handle_closed);
}

/* Ends the relay once: stops its polls, closes its fds, reports `how` and frees it when libuv is done. */
static void finish(relay *r, int how, const uint8_t *reason, size_t reason_length, const char *format, ...) {
  if (r->ended) return;
  r->ended = 1;
  lane_event *event = calloc(1, sizeof *event);
  if (event) {
    event->is_end = 1;
    event->how = how;
    /* What reached the local side: a record opened but not (wholly) written there is not counted
       (a follower resumes from bytesIn: counted and dropped would be a gap). */
    event->bytes_in = r->bytes_in - (r->lout_counted ? (double)r->lout_length : 0);
    event->bytes_out = r->bytes_out;
    if (how == LANE_END_CLOSED && reason_length > 0) {
      event->reason = malloc(reason_length);
      if (event->reason) {
        memcpy(event->reason, reason, reason_length);
        event->reason_length = reason_length;
      }
    }
    if (format) {
      va_list args;
      va_start(args, format);
      vsnprintf(event->message, sizeof event->message, format, args);
      va_end(args);
    }
  }
  for (relay **p = &r->w->relays; *p; p = &(*p)->next) {
    if (*p == r) {
      *p = r->next;
      break;
    }
  }
  uv_mutex_lock(&mutex);
  for (route **p = &routes; *p; p = &(*p)->next) {
    if ((*p)->id == r->id) {
      route *gone = *p;
      *p = gone->next;
      free(gone);
      break;
    }
  }
  uv_mutex_unlock(&mutex);
  r->open_handles = 1; /* held until the handles below are closed */
  if (r->net_polled) close_handle(r, (uv_handle_t *)&r->net_poll);
  if (r->lr_polled) close_handle(r, (uv_handle_t *)&r->lr_poll);
  if (r->lw_polled) close_handle(r, (uv_handle_t *)&r->lw_poll);
  if (r->linger_inited) close_handle(r, (uv_handle_t *)&r->linger);
  if (r->idle_inited) close_handle(r, (uv_handle_t *)&r->lr_idle);
  if (r->hash_inited) close_handle(r, (uv_handle_t *)&r->hash_idle);
  if (how == LANE_END_ERROR && r->o.kind == LANE_KIND_SOCKET && r->o.close_local) {
    /* A cut stays a cut: the local peer gets a reset, never a clean end it could take for the whole stream. */
    struct linger abortive = {1, 0};
    setsockopt(r->o.local_read, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
  }
  close(r->o.net);
  if (r->o.close_local) {
    close(r->o.local_read);
    if (r->o.local_write != r->o.local_read) close(r->o.local_write);
  }
  sha_end(r, event);
  if (event) r->o.on_event(r->o.context, event);
  if (--r->open_handles == 0) free_relay(r); /* drops the hold taken above */
}

/* A seal that failed: the sequence numbers used up (2^64 records: a nonce is never used twice), or OpenSSL. */
static void fail_seal(relay *r) {
  if (r->send_spent) finish(r, LANE_END_ERROR, NULL, 0, "bad_record: the sequence numbers this side sends are used up");
  else finish(r, LANE_END_ERROR, NULL, 0, "sealing a record failed in OpenSSL's AES-256-GCM");
}

static void fail_errno(relay *r, const char *what, int error) {
  finish(r, LANE_END_ERROR, NULL, 0, "%s: %s", what, strerror(error));
}

/* ---- the written file's sha256 (o.file_sha256) ----------------------------------------------- */

/*
 * A download checks the file's sha256 before it renames it into place. Hashing each DATA payload as
 * it is taken for writing (hot in cache, on this thread) costs its sha256 alone; reading the file
 * back behind the writer on another thread cost that plus a second copy out of the page cache and
 * a thread (bench:jobs). What was written before this relay (a resumed download) is read back once.
 */
static int sha_begin(relay *r) {
  r->sha = EVP_MD_CTX_new();
  if (r->sha && EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) == 1) return 0;
  EVP_MD_CTX_free(r->sha);
  r->sha = NULL;
  return -1;
}

/* Bytes taken to be written to the file, declared for the prefix's end below. */
static int sha_taken(relay *r, const uint8_t *data, size_t length);

/* Pieces of the prefix read back per loop turn: 1 MiB, about a millisecond of the thread. */
#define HASH_PIECES_PER_TURN 16

/*
 * The file's first file_hash_prefix bytes (an earlier try's), read back a few pieces per turn of
 * the loop: a resumed download of gigabytes holds the bulk thread's other lanes up for a
 * millisecond at a time, never for the seconds the whole prefix takes. No DATA is opened until it
 * is done (it is hashed after the prefix); toLocal, already given, is hashed then too.
 */
static void hash_prefix_piece(uv_idle_t *idle) {
  relay *r = idle->data;
  uint64_t end = r->o.file_hash_prefix;
  if (r->ended || !r->hashing) return;
  for (int piece = 0; piece < HASH_PIECES_PER_TURN && r->hash_at < end; piece++) {
    size_t want = end - r->hash_at < LANE_MAX_PAYLOAD ? (size_t)(end - r->hash_at) : LANE_MAX_PAYLOAD;
    ssize_t n = pread(r->o.local_write, r->hash_buffer, want, (off_t)r->hash_at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) finish(r, LANE_END_ERROR, NULL, 0, "truncated: the file ends at byte %llu, before the %llu to hash",
                         (unsigned long long)r->hash_at, (unsigned long long)end);
      else fail_errno(r, "reading the file back to hash it", errno);
      return;
    }
    if (EVP_DigestUpdate(r->sha, r->hash_buffer, (size_t)n) != 1) {
      finish(r, LANE_END_ERROR, NULL, 0, "sha256 failed in OpenSSL");
      return;
    }
    r->hash_at += (uint64_t)n;
  }
  if (r->hash_at < end) return;
  uv_idle_stop(&r->hash_idle);
  r->hashing = 0;
  free(r->hash_buffer);
  r->hash_buffer = NULL;
  if (sha_taken(r, r->o.to_local, r->o.to_local_length) < 0) return;
  pump(r);
}

/* The relay's start, on its thread: toLocal hashed now, or the prefix's read-back begun. */
static int sha_prefix(relay *r) {
  if (r->o.file_hash_prefix == 0) return sha_taken(r, r->o.to_local, r->o.to_local_length);
  r->hash_buffer = malloc(LANE_MAX_PAYLOAD);
  int rc = r->hash_buffer ? uv_idle_init(&r->w->loop, &r->hash_idle) : UV_ENOMEM;
  if (rc != 0) {
    finish(r, LANE_END_ERROR, NULL, 0, "hashing the file's first %llu bytes: %s",
           (unsigned long long)r->o.file_hash_prefix, uv_strerror(rc));
    return -1;
  }
  r->hash_inited = 1;
  r->hash_idle.data = r;
  r->hashing = 1;
  uv_idle_start(&r->hash_idle, hash_prefix_piece);
  return 0;
}

/* Bytes taken to be written to the file (all of them are, before EOF can end the relay). */
static int sha_taken(relay *r, const uint8_t *data, size_t length) {
  if (!r->sha || length == 0 || EVP_DigestUpdate(r->sha, data, length) == 1) return 0;
  finish(r, LANE_END_ERROR, NULL, 0, "sha256 failed in OpenSSL");
  return -1;
}

/*
 * The hasher: a download's sha256 on a thread of its own. On the relay's thread it was the biggest
 * cost of a download (about 40 % of that thread under perf, bench:jobs): the thread that receives,
 * opens and writes the file was the download's ceiling with the machine's other CPU to spare.
 * Each DATA payload is copied (in cache, just opened) into a ring the hasher reads in order; a
 * record is opened only when the ring has room for it, else the relay waits (reads nothing off the
 * lane) until the hasher wakes it (CMD_HASHED). A clean end waits for the rest to be hashed the same
 * way (not reading the lane's end until then); any other end waits only for the piece being hashed.
 */
#ifndef HASH_RING
#define HASH_RING (16 * LANE_MAX_PAYLOAD)
#endif
/*
 * Hashers at once in the process: a download beyond them hashes on the relay's thread, as before.
 * They are all fed by the one bulk thread, so more would add no speed, only a thread and a ring
 * each (a core serving many `hangar artifacts` at once stays within 4 MiB of rings).
 */
#define HASHERS_MAX 4
static int hashers; /* under `mutex` */

struct hasher {
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t more, done;
  uint8_t *ring;
  uint64_t queued, hashed; /* bytes put in the ring (relay) and hashed (hasher), ever: under lock */
  int stop, failed, notify;
  uint32_t relay_id;
  EVP_MD_CTX *sha;
};

static void hasher_main(void *arg) {
  hasher *h = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  uv_mutex_lock(&h->lock);
  for (;;) {
    while (h->queued == h->hashed && !h->stop) uv_cond_wait(&h->more, &h->lock);
    if (h->stop) break;
    size_t at = (size_t)(h->hashed % HASH_RING);
    size_t n = (size_t)(h->queued - h->hashed);
    if (n > HASH_RING - at) n = HASH_RING - at;
    int failed = h->failed;
    uv_mutex_unlock(&h->lock);
    if (!failed && EVP_DigestUpdate(h->sha, h->ring + at, n) != 1) failed = 1;
    uv_mutex_lock(&h->lock);
    h->failed = failed;
    h->hashed += n;
    uv_cond_signal(&h->done);
    if (h->notify) {
      h->notify = 0;
      uv_mutex_unlock(&h->lock);
      send_command(CMD_HASHED, h->relay_id, 0, NULL, 0); /* the relay has ended: dropped */
      uv_mutex_lock(&h->lock);
    }
  }
  uv_mutex_unlock(&h->lock);
}

static void hasher_count(int change) {
  uv_mutex_lock(&mutex);
  hashers += change;
  uv_mutex_unlock(&mutex);
}

/* Starts r's hasher; without one (HASHERS_MAX running, no memory, no thread) the relay hashes on its own thread, as before. */
static void hasher_start(relay *r) {
  uv_mutex_lock(&mutex);
  int room = hashers < HASHERS_MAX;
  if (room) hashers++;
  uv_mutex_unlock(&mutex);
  if (!room) return;
  hasher *h = calloc(1, sizeof *h);
  if (!h) {
    hasher_count(-1);
    return;
  }
  h->ring = malloc(HASH_RING);
  h->sha = r->sha;
  h->relay_id = r->id;
  int inited = 0;
  if (h->ring && uv_mutex_init(&h->lock) == 0) {
    inited = 1;
    if (uv_cond_init(&h->more) == 0) {
      inited = 2;
      if (uv_cond_init(&h->done) == 0) {
        inited = 3;
        if (uv_thread_create(&h->thread, hasher_main, h) == 0) {
#ifdef __linux__
          /* Named here, not when it first runs (at lane-bulk's nice, inherited, that can be late). */
          pthread_setname_np(h->thread, "lane-hash");
#endif
          r->hasher = h;
          return;
        }
      }
    }
  }
  if (inited >= 3) uv_cond_destroy(&h->done);
  if (inited >= 2) uv_cond_destroy(&h->more);
  if (inited >= 1) uv_mutex_destroy(&h->lock);
  free(h->ring);
  free(h);
  hasher_count(-1);
}

/* Room in the ring for a payload of `n`; none: the hasher wakes the relay once it has hashed more. */
static int hasher_room(relay *r, size_t n) {
  hasher *h = r->hasher;
  uv_mutex_lock(&h->lock);
  int room = HASH_RING - (h->queued - h->hashed) >= n;
  if (!room) h->notify = 1;
  uv_mutex_unlock(&h->lock);
  return room;
}

/* Queues a payload hasher_room made room for: the hasher reads only [hashed, queued), never this. */
static void hasher_put(relay *r, const uint8_t *data, size_t n) {
  hasher *h = r->hasher;
  size_t at = (size_t)(h->queued % HASH_RING); /* queued is written on this thread only */
  size_t first = n < HASH_RING - at ? n : HASH_RING - at;
  memcpy(h->ring + at, data, first);
  memcpy(h->ring, data + first, n - first);
  uv_mutex_lock(&h->lock);
  h->queued += n;
  uv_cond_signal(&h->more);
  uv_mutex_unlock(&h->lock);
}

/* Whether the hasher still has bytes to hash; if so it wakes the relay (CMD_HASHED) when it has hashed more. */
static int hasher_busy(relay *r) {
  hasher *h = r->hasher;
  uv_mutex_lock(&h->lock);
  int busy = h->hashed != h->queued;
  if (busy) h->notify = 1;
  uv_mutex_unlock(&h->lock);
  return busy;
}

/* Stops and joins the hasher: after all of it is hashed (`drain`) or the piece in hand. 0: hashed fine. */
static int hasher_end(relay *r, int drain) {
  hasher *h = r->hasher;
  if (!h) return 0;
  uv_mutex_lock(&h->lock);
  while (drain && h->hashed != h->queued) uv_cond_wait(&h->done, &h->lock);
  h->stop = 1;
  uv_cond_signal(&h->more);
  uv_mutex_unlock(&h->lock);
  uv_thread_join(&h->thread);
  int failed = h->failed;
  uv_cond_destroy(&h->done);
  uv_cond_destroy(&h->more);
  uv_mutex_destroy(&h->lock);
  free(h->ring);
  free(h);
  r->hasher = NULL;
  hasher_count(-1);
  return failed ? -1 : 0;
}

/* At a clean end (EOF both ways, everything written): the digest goes with the end event. */
static void sha_end(relay *r, lane_event *event) {
  unsigned int length = 0;
  int eof = event && event->how == LANE_END_EOF;
  if (hasher_end(r, eof) < 0) return; /* sha256 failed in OpenSSL: no digest, the download is not taken */
  if (r->sha && eof && EVP_DigestFinal_ex(r->sha, event->sha256, &length) == 1 && length == sizeof event->sha256)
    event->has_sha256 = 1;
}

/* ---- moving bytes ---------------------------------------------------------------------------- */

static int would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

static ssize_t send_all_flags(int fd, const void *data, size_t length, int is_socket) {
  return is_socket ? send(fd, data, length, MSG_NOSIGNAL) : write(fd, data, length);
}

/* Writes what waits for the local side. 1: progress, 0: blocked or nothing, -1: ended. */
static int flush_file(relay *r);

static int flush_local(relay *r) {
  int progress = 0;
  if (r->o.kind == LANE_KIND_FILE && r->lv_n > 0) return flush_file(r);
  while (r->lout_length > 0) {
    ssize_t n = send_all_flags(r->o.local_write, r->lout, r->lout_length, r->o.kind == LANE_KIND_SOCKET);
    if (n < 0) {
      if (would_block(errno)) return progress;
      if (errno == EIO && r->o.kind == LANE_KIND_PTY) {
        r->lout_length = 0; /* the pty's process is gone: keys for it go nowhere */
        return 1;
      }
      fail_errno(r, "writing the local side", errno);
      return -1;
    }
    r->lout += n;
    r->lout_length -= (size_t)n;
    progress = 1;
  }
  return progress;
}

/* A file's batch of payloads (lv), in one writev while the file takes all of it. As flush_local. */
static int flush_file(relay *r) {
  int progress = 0;
  while (r->lout_length > 0) {
    ssize_t n = writev(r->o.local_write, r->lv + r->lv_at, r->lv_n - r->lv_at);
    if (n < 0) {
      if (would_block(errno)) return progress;
      fail_errno(r, "writing the local side", errno);
      return -1;
    }
    progress = 1;
    r->lout_length -= (size_t)n;
    for (size_t left = (size_t)n; left > 0 || (r->lv_at < r->lv_n && r->lv[r->lv_at].iov_len == 0);) {
      struct iovec *v = &r->lv[r->lv_at];
      size_t taken = left < v->iov_len ? left : v->iov_len;
      v->iov_base = (uint8_t *)v->iov_base + taken;
      v->iov_len -= taken;
      left -= taken;
      if (v->iov_len == 0) r->lv_at++;
    }
  }
  r->lv_at = r->lv_n = 0;
  return progress;
}

/* Sends what is sealed. 1: progress, 0: blocked or nothing, -1: ended. */
static int flush_net(relay *r) {
  int progress = 0;
  while (r->nout_start < r->nout_end) {
    ssize_t n = send(r->o.net, r->nout + r->nout_start, r->nout_end - r->nout_start, MSG_NOSIGNAL);
    if (n < 0) {
      if (would_block(errno)) return progress;
      fail_errno(r, "writing the lane", errno);
      return -1;
    }
    r->nout_start += (size_t)n;
    progress = 1;
  }
  r->nout_start = r->nout_end = 0;
  return progress;
}

/* Room for a record of `n` bytes of payload at the end of nout, compacting if that makes it. */
static uint8_t *nout_room(relay *r, size_t n) {
  size_t need = RECORD_OVERHEAD + n;
  if (NOUT_CAP - r->nout_end < need && r->nout_start > 0) {
    memmove(r->nout, r->nout + r->nout_start, r->nout_end - r->nout_start);
    r->nout_end -= r->nout_start;
    r->nout_start = 0;
  }
  if (NOUT_CAP - r->nout_end < need) return NULL;
  return r->nout + r->nout_end;
}

static int seal_copy(relay *r, int type, const uint8_t *payload, size_t n) {
  uint8_t *at = nout_room(r, n);
  if (!at) return 0;
  at[4] = (uint8_t)type;
  if (n > 0) memcpy(at + 5, payload, n);
  if (seal_in_place(r, at, n) != 0) {
    fail_seal(r);
    return -1;
  }
  r->nout_end += RECORD_OVERHEAD + n;
  return 1;
}

/* Seals what JS queued, then EOF or CLOSE when their time comes. */
static int fill_nout(relay *r) {
  int progress = 0;
  while (r->js_head) {
    chunk *c = r->js_head;
    size_t n = c->length - c->offset;
    if (n > LANE_MAX_PAYLOAD) n = LANE_MAX_PAYLOAD;
    int sealed = seal_copy(r, LANE_DATA, c->data + c->offset, n);
    if (sealed <= 0) return sealed < 0 ? -1 : progress;
    r->bytes_out += (double)n;
    c->offset += n;
    progress = 1;
    if (c->offset == c->length) {
      r->js_head = c->next;
      if (!r->js_head) r->js_tail = NULL;
      free(c->data);
      free(c);
    }
  }
  if (r->close_requested && !r->close_sealed) {
    int sealed = seal_copy(r, LANE_CLOSE, r->close_reason, r->close_reason_length);
    if (sealed < 0) return -1;
    if (sealed > 0) r->close_sealed = progress = 1;
  } else if (r->local_eof && !r->eof_sealed && !r->close_requested) {
    int sealed = seal_copy(r, LANE_EOF, NULL, 0);
    if (sealed < 0) return -1;
    if (sealed > 0) r->eof_sealed = progress = 1;
  }
  return progress;
}

/*
 * A file's batch waits for its writev while the relay opens the next record: before that record
 * ends the relay (an error, CLOSE), the batch is written, as each DATA was before the next record
 * was opened. finish() after it does nothing if the write has ended the relay itself.
 */
static void write_batch(relay *r) {
  if (r->lv_n > 0) flush_local(r);
}

/* Room for one more payload: nothing waits for the local side, or (a file) a batch not yet full. */
static int lout_room(relay *r) {
  return r->lout_length == 0 || (r->lv_n > 0 && r->lv_n < FILE_BATCH);
}

/* Opens every whole record in nin while nothing waits for the local side (a file: up to FILE_BATCH). */
static int open_records(relay *r) {
  int progress = 0;
  /* held: fromNet waits too; hashing: DATA is hashed after the prefix */
  while (lout_room(r) && !r->lingering && !r->net_held && !r->hashing) {
    size_t available = r->nin_end - r->nin_start;
    uint8_t *at = r->nin + r->nin_start;
    if (available < 4) break;
    uint32_t body = get_be32(at);
    if (body < LANE_MIN_BODY || body > LANE_MAX_BODY) {
      write_batch(r);
      finish(r, LANE_END_ERROR, NULL, 0, "too_big: record %llu has length %u, outside %u..%u",
             (unsigned long long)r->receive_seq, body, LANE_MIN_BODY, LANE_MAX_BODY);
      return -1;
    }
    if (available < 4 + (size_t)body) break;
    if (r->hasher) {
      r->hash_wait = !hasher_room(r, body - LANE_MIN_BODY);
      if (r->hash_wait) break; /* the lane is not read until CMD_HASHED (or room found sooner) */
    }
    uint64_t seq = r->receive_seq;
    if (r->receive_spent) {
      write_batch(r);
      finish(r, LANE_END_ERROR, NULL, 0, "bad_record: the sequence numbers of the lane's records are used up");
      return -1;
    }
    if (open_in_place(r, at, body) != 0) {
      write_batch(r);
      finish(r, LANE_END_ERROR, NULL, 0, "tampered: record %llu does not open (changed, out of order or the wrong key)",
             (unsigned long long)seq);
      return -1;
    }
    r->nin_start += 4 + (size_t)body;
    progress = 1;
    int type = at[4];
    uint8_t *payload = at + 5;
    size_t n = body - LANE_MIN_BODY;
    switch (type) {
      case LANE_DATA:
        if (r->net_eof) {
          write_batch(r);
          finish(r, LANE_END_ERROR, NULL, 0, "bad_record: DATA after EOF (record %llu)", (unsigned long long)seq);
          return -1;
        }
        /* After close() the peer's DATA is opened and dropped: nothing more reaches the local side
           (a revoked device's lane), while its EOF or CLOSE still ends the lane. */
        if (r->close_requested) break;
        if (r->o.kind == LANE_KIND_FILE) {
          /* A peer that sends more than the file it announced must not fill the disk. */
          if (n > r->o.file_receive_limit - r->file_in) {
            write_batch(r);
            finish(r, LANE_END_ERROR, NULL, 0, "too_big: the peer sent more than %llu bytes (record %llu)",
                   (unsigned long long)r->o.file_receive_limit, (unsigned long long)seq);
            return -1;
          }
          r->file_in += n;
        }
        if (r->hasher) {
          if (r->sha && n > 0) hasher_put(r, payload, n);
        } else if (sha_taken(r, payload, n) < 0) {
          return -1;
        }
        r->bytes_in += (double)n;
        if (n > 0) r->lout_counted = 1;
        if (r->o.kind == LANE_KIND_FILE && n > 0) {
          r->lv[r->lv_n].iov_base = payload;
          r->lv[r->lv_n].iov_len = n;
          r->lv_n++;
          r->lout_length += n;
        } else if (n > 0) {
          r->lout = payload;
          r->lout_length = n;
        }
        break;
      case LANE_EOF:
        if (n != 0 || r->net_eof) {
          write_batch(r);
          finish(r, LANE_END_ERROR, NULL, 0, "bad_record: a second EOF, or one with a payload (record %llu)",
                 (unsigned long long)seq);
          return -1;
        }
        r->net_eof = 1;
        break;
      case LANE_CLOSE:
        if (n > LANE_MAX_CONTROL) {
          write_batch(r);
          finish(r, LANE_END_ERROR, NULL, 0, "too_big: a CLOSE of %zu bytes (at most %d)", n, LANE_MAX_CONTROL);
          return -1;
        }
        write_batch(r);
        finish(r, LANE_END_CLOSED, payload, n, NULL);
        return -1;
      default:
        write_batch(r);
        finish(r, LANE_END_ERROR, NULL, 0, "bad_type: record %llu has type %d, which a relay does not take",
               (unsigned long long)seq, type);
        return -1;
    }
  }
  if (r->lout_length == 0 && r->nin_start > 0) {
    memmove(r->nin, r->nin + r->nin_start, r->nin_end - r->nin_start);
    r->nin_end -= r->nin_start;
    r->nin_start = 0;
  }
  return progress;
}

static int net_readable_wanted(relay *r) {
  /* Lingering: only the peer's end is waited for (nothing it sends is opened). */
  if (r->lingering) return !r->ended && r->nin_end < r->nin_cap;
  return !r->ended && !r->net_held && !r->hashing && !r->hash_wait && r->lout_length == 0 && r->nin_end < r->nin_cap;
}

/* LANE_KIND_FILE with a growing limit: every byte up to it is sent, and more may come (not EOF yet). */
static int file_waits(relay *r) {
  return r->o.kind == LANE_KIND_FILE && r->o.file_growing && r->file_at >= r->o.file_limit;
}

static int local_readable_wanted(relay *r) {
  if (r->ended || r->local_held || r->detached || r->local_eof || r->close_requested || r->js_head) return 0;
  if (file_waits(r)) return 0;
  return NOUT_CAP - (r->nout_end - r->nout_start) >= LANE_MAX_RECORD;
}

/*
 * lane_relay_file_limit on the loop thread: a growing file's limit moves forward (a log that
 * learned its new size), never back; `final` fixes it, and EOF follows the bytes up to it.
 * Ignored for a relay whose limit is already final.
 */
static void move_file_limit(relay *r, uint64_t limit, int final) {
  if (r->o.kind != LANE_KIND_FILE || !r->o.file_growing) return;
  if (limit > r->o.file_limit) r->o.file_limit = limit;
  if (final) r->o.file_growing = 0;
}

static void report_detach(relay *r) {
  lane_event *event = calloc(1, sizeof *event);
  if (!event) return;
  event->is_end = 0;
  r->o.on_event(r->o.context, event);
}

/*
 * LANE_KIND_FILE: the next piece of [file_at, file_limit) of a regular file, read with pread (the
 * fd's own offset is never used, so it may be shared), then EOF. A file shorter than its limit is
 * an error, never an early EOF: the receiver would take a cut for the whole file.
 * 1: a record sealed or EOF reached, 0: nothing to read now, -1: ended.
 */
static int read_file(relay *r, uint8_t *at) {
  uint64_t left = r->o.file_limit - r->file_at;
  if (left == 0) {
    r->local_eof = 1;
    return 1;
  }
  ssize_t n = pread(r->o.local_read, at + 5, left < LANE_MAX_PAYLOAD ? (size_t)left : LANE_MAX_PAYLOAD,
                    (off_t)r->file_at);
  if (n < 0 && would_block(errno)) return 0;
  if (n <= 0) {
    int error = errno;
    flush_net(r); /* the records sealed before this one in the same turn go out first, as they did one a turn */
    if (r->ended) return -1;
    errno = error;
    if (n == 0) finish(r, LANE_END_ERROR, NULL, 0, "truncated: the file ends at byte %llu, before %llu",
                       (unsigned long long)r->file_at, (unsigned long long)r->o.file_limit);
    else fail_errno(r, "reading the local file", errno);
    return -1;
  }
  at[4] = LANE_DATA;
  if (seal_in_place(r, at, (size_t)n) != 0) {
    fail_seal(r);
    return -1;
  }
  r->file_at += (uint64_t)n;
  r->nout_end += RECORD_OVERHEAD + (size_t)n;
  r->bytes_out += (double)n;
  return 1;
}

static void read_local(relay *r) {
  if (!local_readable_wanted(r)) return;
  if (r->o.kind == LANE_KIND_FILE) {
    /* Up to FILE_BATCH records per turn, while nout has room for them: then one send() for all. */
    int any = 0;
    for (int i = 0; i < FILE_BATCH && local_readable_wanted(r); i++) {
      uint8_t *room = nout_room(r, LANE_MAX_PAYLOAD);
      int step = room ? read_file(r, room) : 0;
      if (step < 0) return;
      if (step == 0) break;
      any = 1;
    }
    if (any) pump(r);
    return;
  }
  uint8_t *at = nout_room(r, LANE_MAX_PAYLOAD);
  if (!at) return;
  ssize_t n = read(r->o.local_read, at + 5, LANE_MAX_PAYLOAD);
  if (n < 0) {
    if (would_block(errno)) return;
    if (errno == EIO && r->o.kind == LANE_KIND_PTY) {
      r->local_eof = 1; /* the pty's other side closed: its end of output */
    } else {
      fail_errno(r, "reading the local side", errno);
      return;
    }
  } else if (n == 0) {
    r->local_eof = 1;
  } else {
    if (r->o.detach_byte >= 0) {
      uint8_t *hit = memchr(at + 5, r->o.detach_byte, (size_t)n);
      if (hit) {
        n = hit - (at + 5);
        r->detached = 1;
      }
    }
    if (n > 0) {
      at[4] = LANE_DATA;
      if (seal_in_place(r, at, (size_t)n) != 0) {
        fail_seal(r);
        return;
      }
      r->nout_end += RECORD_OVERHEAD + (size_t)n;
      r->bytes_out += (double)n;
    }
    if (r->detached) report_detach(r);
  }
  pump(r);
}

static void on_linger(uv_timer_t *timer) {
  relay *r = timer->data;
  if (r->lingering) finish(r, LANE_END_CLOSED_HERE, NULL, 0, NULL);
  else
    finish(r, LANE_END_ERROR, NULL, 0, "closing: the peer took nothing for %d ms, so CLOSE could not go out",
           LINGER_MS);
}

/* close(): the lane ends within LINGER_MS whatever the peer does (the timer runs from here). */
static void start_linger(relay *r) {
  if (r->linger_inited) return;
  if (uv_timer_init(&r->w->loop, &r->linger) != 0) return;
  r->linger_inited = 1;
  r->linger.data = r;
  uv_timer_start(&r->linger, on_linger, LINGER_MS, 0);
}

static void read_net(relay *r) {
  if (!net_readable_wanted(r)) return;
  ssize_t n = recv(r->o.net, r->nin + r->nin_end, r->nin_cap - r->nin_end, 0);
  if (n < 0) {
    if (would_block(errno)) return;
    if (r->lingering) {
      finish(r, LANE_END_CLOSED_HERE, NULL, 0, NULL);
      return;
    }
    fail_errno(r, "reading the lane", errno);
    return;
  }
  if (n == 0) {
    if (r->lingering) {
      finish(r, LANE_END_CLOSED_HERE, NULL, 0, NULL);
    } else if (r->net_eof && r->eof_sealed && r->nout_start == r->nout_end && r->nin_end == r->nin_start &&
               r->lout_length == 0) {
      if (r->hasher && hasher_busy(r)) {
        /* The end waits for the rest of the hash without holding the thread up: the lane is read
           again (its end found again) once the hasher wakes the relay. */
        r->hash_wait = 1;
        return;
      }
      if (!r->net_shut) shutdown(r->o.net, SHUT_WR);
      finish(r, LANE_END_EOF, NULL, 0, NULL);
    } else if (r->nin_end > r->nin_start) {
      finish(r, LANE_END_ERROR, NULL, 0, "truncated: the lane's connection ended inside record %llu",
             (unsigned long long)r->receive_seq);
    } else {
      finish(r, LANE_END_ERROR, NULL, 0, "truncated: the lane's connection ended without CLOSE or EOF both ways");
    }
    return;
  }
  if (r->lingering) {
    r->nin_end = r->nin_start = 0; /* after our CLOSE nothing the peer says is delivered */
    return;
  }
  r->nin_end += (size_t)n;
  pump(r);
}

/* ---- polls ----------------------------------------------------------------------------------- */

static void set_poll(relay *r, uv_poll_t *poll, int polled, int *current, int wanted, uv_poll_cb cb) {
  if (!polled || *current == wanted) return;
  *current = wanted;
  if (wanted) uv_poll_start(poll, wanted, cb);
  else uv_poll_stop(poll);
}

static void on_net_poll(uv_poll_t *poll, int status, int events);
static void on_local_poll(uv_poll_t *poll, int status, int events);
static void on_local_write_poll(uv_poll_t *poll, int status, int events);

static void on_idle(uv_idle_t *idle) { read_local(idle->data); }

static void update_polls(relay *r) {
  if (r->ended) return;
  if (r->idle_inited) {
    int wanted = local_readable_wanted(r);
    if (wanted && !r->idle_active) uv_idle_start(&r->lr_idle, on_idle);
    if (!wanted && r->idle_active) uv_idle_stop(&r->lr_idle);
    r->idle_active = wanted;
  }
  int net = (net_readable_wanted(r) ? UV_READABLE : 0) | (r->nout_start < r->nout_end ? UV_WRITABLE : 0);
  int lr = local_readable_wanted(r) && !r->lr_always ? UV_READABLE : 0;
  int lw = r->lout_length > 0 && !r->lw_always ? UV_WRITABLE : 0;
  set_poll(r, &r->net_poll, r->net_polled, &r->net_events, net, on_net_poll);
  if (r->lw_separate) {
    set_poll(r, &r->lr_poll, r->lr_polled, &r->lr_events, lr, on_local_poll);
    set_poll(r, &r->lw_poll, r->lw_polled, &r->lw_events, lw, on_local_write_poll);
  } else {
    set_poll(r, &r->lr_poll, r->lr_polled, &r->lr_events, lr | lw, on_local_poll);
  }
}

/* Every bit of progress that needs no readiness, then the polls for the rest. */
static void pump(relay *r) {
  for (int progress = 1; progress && !r->ended;) {
    progress = 0;
    int step;
    if ((step = flush_local(r)) < 0) return;
    progress |= step;
    if ((step = open_records(r)) < 0) return;
    progress |= step;
    if ((step = flush_local(r)) < 0) return;
    progress |= step;
    if (r->net_eof && r->lout_length == 0 && !r->local_shut) {
      r->local_shut = 1;
      if (r->o.kind == LANE_KIND_SOCKET) shutdown(r->o.local_write, SHUT_WR);
    }
    if ((step = fill_nout(r)) < 0) return;
    progress |= step;
    if ((step = flush_net(r)) < 0) return;
    progress |= step;
    int drained = r->nout_start == r->nout_end;
    if (r->close_sealed && drained && !r->lingering) {
      /* CLOSE is out: half-close and wait (bounded) for the peer's end, so our close sends no reset over it. */
      r->lingering = 1;
      r->net_held = 0;
      if (r->lout_counted) r->bytes_in -= (double)r->lout_length; /* dropped: never reached the local side */
      r->lout_counted = 0;
      r->lout_length = 0;
      r->lv_at = r->lv_n = 0;
      r->nin_start = r->nin_end = 0; /* what the peer sent after our close() is not delivered */
      shutdown(r->o.net, SHUT_WR);
      start_linger(r);
    }
    if (r->eof_sealed && drained && r->net_eof && r->lout_length == 0 && !r->net_shut && !r->close_requested) {
      r->net_shut = 1;
      shutdown(r->o.net, SHUT_WR);
    }
  }
  update_polls(r);
}

static void on_net_poll(uv_poll_t *poll, int status, int events) {
  relay *r = poll->data;
  if (r->ended) return;
  if (status < 0) {
    finish(r, LANE_END_ERROR, NULL, 0, "polling the lane: %s", uv_strerror(status));
    return;
  }
  if (events & UV_READABLE) read_net(r);
  if (!r->ended) pump(r);
}

static void on_local_poll(uv_poll_t *poll, int status, int events) {
  relay *r = poll->data;
  if (r->ended) return;
  if (status < 0) {
    finish(r, LANE_END_ERROR, NULL, 0, "polling the local side: %s", uv_strerror(status));
    return;
  }
  if (events & UV_READABLE) read_local(r);
  if (!r->ended) pump(r);
}

static void on_local_write_poll(uv_poll_t *poll, int status, int events) {
  on_local_poll(poll, status, events & ~UV_READABLE);
}

/* ---- commands from JS ------------------------------------------------------------------------ */

static relay *find(worker *w, uint32_t id) {
  for (relay *r = w->relays; r; r = r->next)
    if (r->id == id) return r;
  return NULL;
}

static int init_poll(relay *r, uv_poll_t *poll, int fd, int *always) {
  int rc = uv_poll_init(&r->w->loop, poll, fd);
  if (rc == UV_EPERM && always && (r->o.kind == LANE_KIND_TERMINAL || r->o.kind == LANE_KIND_FILE)) {
    *always = 1; /* stdin/stdout redirected to a regular file: epoll refuses it, and it never blocks */
    return 0;
  }
  if (rc != 0) return rc;
  poll->data = r;
  return 1;
}

static void start(relay *r) {
  int rc;
  r->next = r->w->relays;
  r->w->relays = r;
  if ((rc = init_poll(r, &r->net_poll, r->o.net, NULL)) < 0) {
    finish(r, LANE_END_ERROR, NULL, 0, "watching the lane fd %d: %s", r->o.net, uv_strerror(rc));
    return;
  }
  r->net_polled = 1;
  if ((rc = init_poll(r, &r->lr_poll, r->o.local_read, &r->lr_always)) < 0) {
    finish(r, LANE_END_ERROR, NULL, 0, "watching the local fd %d: %s", r->o.local_read, uv_strerror(rc));
    return;
  }
  r->lr_polled = rc == 1;
  if (r->lr_always) {
    if ((rc = uv_idle_init(&r->w->loop, &r->lr_idle)) != 0) {
      finish(r, LANE_END_ERROR, NULL, 0, "reading the local file: %s", uv_strerror(rc));
      return;
    }
    r->idle_inited = 1;
    r->lr_idle.data = r;
  }
  if (r->lw_separate) {
    if ((rc = init_poll(r, &r->lw_poll, r->o.local_write, &r->lw_always)) < 0) {
      finish(r, LANE_END_ERROR, NULL, 0, "watching the local fd %d: %s", r->o.local_write, uv_strerror(rc));
      return;
    }
    r->lw_polled = rc == 1;
  }
  if (r->sha) hasher_start(r);
  if (r->sha && sha_prefix(r) < 0) return;
  pump(r);
}

static void run(worker *w, command *c) {
  if (c->op == CMD_START) {
    start(c->start);
    return;
  }
  relay *r = find(w, c->id);
  if (!r) {
    free(c->data);
    return;
  }
  switch (c->op) {
    case CMD_RELEASE:
      if (c->side == 0) r->net_held = 0;
      else r->local_held = 0;
      break;
    case CMD_WRITE: {
      chunk *k = calloc(1, sizeof *k);
      if (!k || r->close_requested) {
        free(k);
        free(c->data);
        break;
      }
      k->data = c->data;
      k->length = c->length;
      if (r->js_tail) r->js_tail->next = k;
      else r->js_head = k;
      r->js_tail = k;
      c->data = NULL;
      break;
    }
    case CMD_FILE_LIMIT: { /* data: the limit (a uint64_t) */
      uint64_t limit;
      memcpy(&limit, c->data, sizeof limit);
      free(c->data);
      move_file_limit(r, limit, c->side);
      break;
    }
    case CMD_HASHED:
      r->hash_wait = 0;
      break;
    case CMD_CLOSE:
      if (r->close_requested) {
        free(c->data);
        break;
      }
      r->close_requested = 1;
      r->close_reason = c->data;
      r->close_reason_length = c->length;
      c->data = NULL;
      start_linger(r);
      break;
    default:
      break;
  }
  pump(r);
}

static void on_wake(uv_async_t *async) {
  worker *w = async->data;
  uv_mutex_lock(&mutex);
  command *c = w->queue_head;
  w->queue_head = w->queue_tail = NULL;
  uv_mutex_unlock(&mutex);
  while (c) {
    command *next = c->next;
    run(w, c);
    free(c);
    c = next;
  }
}

/*
 * Slices, per-thread nice and thread ids are Linux's: elsewhere (macOS) the relay threads run at the
 * process's priority and preferLatency changes nothing (ENOSYS), so the addon builds and loads there.
 */
#ifdef __linux__
int lane_prefer_latency(pid_t tid) {
  /* Only a SCHED_OTHER thread: one the user made batch, idle or real-time keeps what it was given. */
  int policy = sched_getscheduler(tid);
  if (policy < 0) return -errno;
  if ((policy & ~SCHED_RESET_ON_FORK) != SCHED_OTHER) return -EPERM;
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, (id_t)(tid == 0 ? (pid_t)syscall(SYS_gettid) : tid));
  if (errno != 0) return -errno;
  /* Its nice as it is (the user's `nice hangar-agent` stays); reset on fork: what it starts (a
   * pane's programs, under the tmux server) begins with the default slice, not ours (and, as the
   * kernel resets on fork, at nice 0 if this one's was below). */
  struct lane_sched_attr attr = {.size = sizeof attr,
                                 .sched_policy = SCHED_OTHER,
                                 .sched_flags = LANE_SCHED_FLAG_RESET_ON_FORK,
                                 .sched_nice = nice,
                                 .sched_runtime = INTERACTIVE_SLICE_NS};
  return syscall(SYS_sched_setattr, tid, &attr, 0) == 0 ? 0 : -errno;
}

/* The relay thread's own scheduling: its name, and for the bulk one a higher nice. */
static void set_up_thread(worker *w) {
  pthread_setname_np(pthread_self(), w->name); /* what ps -L, top -H and /proc/<pid>/task/<tid>/comm show */
  if (w->latency) lane_prefer_latency(0); /* fails only on an old kernel or a policy set by the user: as before */
  if (w->nice != 0) {
    /* This thread only (Linux: nice is per thread). Raising nice needs no privilege; if it fails
     * anyway, bulk runs at the process's priority, as before. */
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0) setpriority(PRIO_PROCESS, (id_t)tid, base + w->nice > 19 ? 19 : base + w->nice);
  }
}
#else
int lane_prefer_latency(pid_t tid) {
  (void)tid;
  return -ENOSYS;
}

static void set_up_thread(worker *w) {
#ifdef __APPLE__
  pthread_setname_np(w->name); /* macOS names only the calling thread */
#else
  (void)w;
#endif
  /* No per-thread nice here (setpriority would renice the whole process). */
}
#endif

static void thread_main(void *arg) {
  worker *w = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are Node's business, on its own thread */
  set_up_thread(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void init_once(void) {
  /* The thread runs this library's code for the rest of the process, but Node unloads an addon with
   * the last environment that loaded it (a Worker's): pin it (RTLD_NODELETE) before starting. */
  Dl_info self;
  if (dladdr((void *)init_once, &self) == 0 || !self.dli_fname ||
      !dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) {
    init_error = UV_ENOENT;
    return;
  }
  if ((init_error = uv_mutex_init(&mutex)) != 0) return;
  for (int i = 0; i < 2; i++) {
    worker *w = &workers[i];
    if ((init_error = uv_loop_init(&w->loop)) != 0) return;
    if ((init_error = uv_async_init(&w->loop, &w->wake, on_wake)) != 0) return;
    w->wake.data = w;
    if ((init_error = uv_thread_create(&w->thread, thread_main, w)) != 0) return;
  }
}

/* Queues `c` for `w`; NULL: for the worker that has relay c->id (none: the relay has ended). */
static int enqueue(worker *w, command *c) {
  uv_mutex_lock(&mutex);
  if (!w) {
    for (route *k = routes; k && !w; k = k->next)
      if (k->id == c->id) w = k->w;
  }
  if (w) {
    if (w->queue_tail) w->queue_tail->next = c;
    else w->queue_head = c;
    w->queue_tail = c;
  }
  uv_mutex_unlock(&mutex);
  if (w) uv_async_send(&w->wake);
  return w != NULL;
}

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -errno;
  return 0;
}

static EVP_CIPHER_CTX *cipher(const uint8_t key[LANE_KEY_LENGTH], int encrypt) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return NULL;
  if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL, encrypt) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

void lane_relay_prepare(void) { uv_once(&once, init_once); }

int lane_relay_start(uint32_t id, lane_relay_options *options, char *error, size_t error_size) {
  uv_once(&once, init_once);
  if (init_error != 0) {
    snprintf(error, error_size, "the relay thread did not start: %s", uv_strerror(init_error));
    return init_error;
  }
  int fds[3] = {options->net, options->local_read, options->local_write};
  for (int i = 0; i < 3; i++) {
    if (fcntl(fds[i], F_GETFL) < 0) {
      int e = errno;
      snprintf(error, error_size, "RelayOptions.%s: fd %d is not open (%s)", i == 0 ? "net" : i == 1 ? "localRead" : "localWrite",
               fds[i], strerror(e));
      return -e;
    }
  }
  if (options->net == options->local_read || options->net == options->local_write) {
    /* Each fd is closed once at the end: one fd on both sides would be closed twice (the second
     * time perhaps a descriptor another thread has just opened). */
    snprintf(error, error_size, "RelayOptions.net: fd %d is also localRead or localWrite; the lane needs a socket of its own",
             options->net);
    return -EINVAL;
  }
  int owned = options->kind == LANE_KIND_TERMINAL ? 1 : 3; /* stdin/stdout are Node's too: their flags stay */
  for (int i = 0; i < owned; i++) {
    int rc = set_nonblocking(fds[i]);
    if (rc < 0) {
      snprintf(error, error_size, "O_NONBLOCK on fd %d: %s", fds[i], strerror(-rc));
      return rc;
    }
  }
  if (options->kind == LANE_KIND_FILE && options->file_offset > options->file_limit) {
    snprintf(error, error_size, "RelayOptions.file: offset %llu is past limit %llu",
             (unsigned long long)options->file_offset, (unsigned long long)options->file_limit);
    return -EINVAL;
  }
  if (options->file_sha256 && options->kind != LANE_KIND_FILE) {
    snprintf(error, error_size, "RelayOptions.file.sha256: only with localKind 'file'");
    return -EINVAL;
  }
  if (options->from_net_length > (size_t)1 << 30 || options->to_local_length > (size_t)1 << 30) {
    snprintf(error, error_size, "fromNet/toLocal over 1 GiB");
    return -EINVAL;
  }
  relay *r = calloc(1, sizeof *r);
  command *c = calloc(1, sizeof *c);
  route *k = calloc(1, sizeof *k);
  if (r) {
    /* A file's receiving side (it sends nothing) reads the lane in batches. */
    r->nin_cap = options->kind == LANE_KIND_FILE && options->file_limit == options->file_offset && !options->file_growing
                     ? FILE_NIN_CAP
                     : NIN_CAP;
    if (options->from_net_length > NIN_CAP - LANE_MAX_RECORD) r->nin_cap = options->from_net_length + LANE_MAX_RECORD;
    r->nin = malloc(r->nin_cap);
    r->nout = malloc(NOUT_CAP);
    r->enc = cipher(options->send_key, 1);
    r->dec = cipher(options->receive_key, 0);
    if (options->file_sha256) sha_begin(r);
  }
  chunk *first = NULL;
  if (r && options->to_net_length > 0) first = calloc(1, sizeof *first);
  if (!r || !c || !k || !r->nin || !r->nout || !r->enc || !r->dec || (options->to_net_length > 0 && !first) ||
      (options->file_sha256 && !r->sha)) {
    if (r) {
      EVP_CIPHER_CTX_free(r->enc);
      EVP_CIPHER_CTX_free(r->dec);
      EVP_MD_CTX_free(r->sha);
      free(r->nin);
      free(r->nout);
    }
    free(r);
    free(c);
    free(k);
    free(first);
    snprintf(error, error_size, "out of memory, or AES-256-GCM or SHA-256 unavailable in this OpenSSL");
    return -ENOMEM;
  }
  r->id = id;
  r->o = *options;
  /* The keys live on only inside the cipher contexts (cleansed by EVP_CIPHER_CTX_free at the end). */
  OPENSSL_cleanse(r->o.send_key, sizeof r->o.send_key);
  OPENSSL_cleanse(r->o.receive_key, sizeof r->o.receive_key);
  r->send_seq = options->send_seq;
  r->receive_seq = options->receive_seq;
  r->net_held = options->hold_net;
  r->local_held = options->hold_local;
  r->lw_separate = options->local_write != options->local_read;
  r->file_at = options->file_offset;
  if (options->from_net_length > 0) {
    memcpy(r->nin, options->from_net, options->from_net_length);
    r->nin_end = options->from_net_length;
  }
  if (options->to_local_length > 0) {
    r->lout = options->to_local;
    r->lout_length = options->to_local_length;
  }
  if (first) {
    first->data = options->to_net;
    first->length = options->to_net_length;
    r->o.to_net = NULL; /* the chunk owns it now */
    r->js_head = r->js_tail = first;
  }
  r->w = &workers[options->kind == LANE_KIND_PTY || options->kind == LANE_KIND_TERMINAL ? INTERACTIVE : BULK];
  k->id = id;
  k->w = r->w;
  uv_mutex_lock(&mutex);
  k->next = routes;
  routes = k;
  uv_mutex_unlock(&mutex);
  c->op = CMD_START;
  c->start = r;
  enqueue(r->w, c);
  return 0;
}

static void send_command(int op, uint32_t id, int side, uint8_t *data, size_t length) {
  command *c = calloc(1, sizeof *c);
  if (!c) {
    free(data);
    return;
  }
  c->op = op;
  c->id = id;
  c->side = side;
  c->data = data;
  c->length = length;
  if (!enqueue(NULL, c)) {
    free(c->data); /* the relay has ended: as run() does with a command for it */
    free(c);
  }
}

void lane_relay_release(uint32_t id, int side) { send_command(CMD_RELEASE, id, side, NULL, 0); }
void lane_relay_write(uint32_t id, uint8_t *data, size_t length) { send_command(CMD_WRITE, id, 0, data, length); }
void lane_relay_close(uint32_t id, uint8_t *reason, size_t length) { send_command(CMD_CLOSE, id, 0, reason, length); }

void lane_relay_file_limit(uint32_t id, uint64_t limit, int final) {
  uint8_t *data = malloc(sizeof limit);
  if (!data) return;
  memcpy(data, &limit, sizeof limit);
  send_command(CMD_FILE_LIMIT, id, final ? 1 : 0, data, sizeof limit);
}
