/*
 * The relay threads of lanes (lane/PROTOCOL.md, "Native relay"): two threads (terminals', bulk's),
 * each with a libuv loop of its own, join lane sockets to local fds, sealing and opening AES-256-GCM records. addon.c is the
 * N-API face; this is all that crosses between them.
 */
#ifndef HANGAR_LANE_RELAY_H
#define HANGAR_LANE_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LANE_KEY_LENGTH 32
#define LANE_TAG_LENGTH 16
#define LANE_MAX_PAYLOAD 65536
#define LANE_MAX_CONTROL 4096
#define LANE_MIN_BODY (1 + LANE_TAG_LENGTH)
#define LANE_MAX_BODY (1 + LANE_MAX_PAYLOAD + LANE_TAG_LENGTH)
#define LANE_MAX_RECORD (4 + LANE_MAX_BODY)

/* FILE: local_read is a regular file sent from file_offset up to file_limit, then EOF; the lane's
 * DATA is written to local_write (a regular file too, or the same fd opened for append). */
enum lane_kind { LANE_KIND_SOCKET = 0, LANE_KIND_PTY = 1, LANE_KIND_TERMINAL = 2, LANE_KIND_FILE = 3 };
enum lane_type { LANE_DATA = 0, LANE_EOF = 1, LANE_CLOSE = 2, LANE_HELLO = 3, LANE_ACCEPT = 4, LANE_REFUSE = 5 };
enum lane_end_how { LANE_END_CLOSED = 0, LANE_END_CLOSED_HERE = 1, LANE_END_EOF = 2, LANE_END_ERROR = 3 };

/* What a relay reports back; addon.c turns it into a JS event and frees it. */
typedef struct lane_event {
  int is_end;          /* 0: detach, 1: the end (the last event of a relay) */
  int how;             /* enum lane_end_how */
  uint8_t *reason;     /* CLOSE's payload (malloc'd), for LANE_END_CLOSED */
  size_t reason_length;
  char message[256];   /* for LANE_END_ERROR */
  double bytes_in, bytes_out;
  int has_sha256;      /* LANE_END_EOF of a relay with file_sha256: the digest below */
  uint8_t sha256[32];  /* of the file's first file_hash_prefix bytes, then every DATA byte written */
} lane_event;

/* Called on the relay thread; the callee owns `event`. `context` is what lane_relay_options had. */
typedef void (*lane_event_fn)(void *context, lane_event *event);

typedef struct lane_relay_options {
  int net, local_read, local_write, close_local, kind;
  uint8_t send_key[LANE_KEY_LENGTH], receive_key[LANE_KEY_LENGTH];
  uint64_t send_seq, receive_seq;
  /* Copies owned by the relay from here on (may be NULL). */
  uint8_t *from_net, *to_net, *to_local;
  size_t from_net_length, to_net_length, to_local_length;
  int hold_net, hold_local, detach_byte; /* detach_byte -1: none */
  uint64_t file_offset, file_limit;      /* LANE_KIND_FILE: what of local_read is sent */
  uint64_t file_receive_limit;           /* LANE_KIND_FILE: DATA bytes taken at most (more: an error) */
  int file_growing;                      /* LANE_KIND_FILE: file_limit moves (lane_relay_file_limit) until final */
  int file_sha256;                       /* LANE_KIND_FILE: sha256 of what local_write holds, reported at EOF */
  uint64_t file_hash_prefix;             /* file_sha256: bytes local_write already has, hashed first (pread) */
  lane_event_fn on_event;
  void *context;
} lane_relay_options;

/* All thread-safe, called from the JS thread. Start returns 0 or a negative errno (nothing taken then). */
/*
 * Starts the relay threads (once per process; lane_relay_start does too). Called when the addon
 * loads, before any key exists: a thread begins with a copy of its creator's registers, and the
 * SIMD ones may still hold the key a caller just copied; the new thread's first lazily bound call
 * (_dl_runtime_resolve's XSAVE) would spill them onto its stack, where an idle thread keeps them.
 */
void lane_relay_prepare(void);
/*
 * Thread `tid` (0: the calling one; a process's pid: its main thread) gets the 0.1 ms slice of the
 * echo's path (relay.c, INTERACTIVE_SLICE_NS), its nice kept, reset on fork (a kernel before 6.12
 * takes the call and ignores the slice). 0, or -errno (-EPERM also for a thread that is not
 * SCHED_OTHER: a policy the user chose is left alone; -ENOSYS off Linux, changing nothing).
 */
int lane_prefer_latency(pid_t tid);
int lane_relay_start(uint32_t id, lane_relay_options *options, char *error, size_t error_size);
void lane_relay_release(uint32_t id, int side); /* 0: net, 1: local */
/* Takes ownership of `data` (malloc'd). */
void lane_relay_write(uint32_t id, uint8_t *data, size_t length);
void lane_relay_close(uint32_t id, uint8_t *reason, size_t length);
/* LANE_KIND_FILE with file_growing: the limit moves forward to `limit` (never back); `final`: it moves
 * no more, and EOF follows once the bytes up to it are sent. */
void lane_relay_file_limit(uint32_t id, uint64_t limit, int final);

#endif
