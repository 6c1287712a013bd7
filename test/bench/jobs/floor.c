/*
 * The floor under an artifact download (test/bench/jobs/floor.mjs builds and runs it): a file
 * streamed from one process to another over loopback, written to a local file while its sha256
 * is taken (on a thread of its own, as Hangar's), with no Hangar in it. Blocking sockets, reads and
 * writes of 64 KiB (the lane's record; 1 MiB cost more CPU per MB here, the 2 MiB of L2 a core has:
 * the receiver's hash then reads its chunk from memory), a 1 MiB ring to the hasher (as the lane's),
 * OpenSSL for TLS 1.3 and SHA-256 (the system's libssl; Hangar's lane uses the OpenSSL Node carries).
 *
 *   floor receive tls|tcp OUT CERT KEY   prints "port N", then after one connection's end:
 *                                        {"bytes":…,"seconds":…,"cpuMs":…,"sha256":"…"}
 *   floor send tls|tcp PORT FILE CA      prints {"cpuMs":…,"cipher":"…"}
 *
 * Seconds and CPU (user + system, this process's) count from the connection's being set up (TLS
 * handshake done) to the end: a running core's and agent's start-up is not in a download either.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef CHUNK
#define CHUNK (64 * 1024)
#endif
#define RING 16

/*
 * The receiver's sha256 on a thread of its own (as Hangar's lane-hash): the reading thread fills a
 * chunk, writes it to the file and hands it over; the hasher gives it back. RING chunks in flight.
 */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  unsigned char *chunk[RING];
  size_t length[RING];
  unsigned long long filled, hashed; /* chunks handed over, chunks hashed */
  int eof;
  EVP_MD_CTX *sha;
} ring = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static void *hasher(void *unused) {
  (void)unused;
  pthread_mutex_lock(&ring.lock);
  for (;;) {
    while (ring.hashed == ring.filled && !ring.eof) pthread_cond_wait(&ring.changed, &ring.lock);
    if (ring.hashed == ring.filled) break;
    int i = ring.hashed % RING;
    pthread_mutex_unlock(&ring.lock);
    if (EVP_DigestUpdate(ring.sha, ring.chunk[i], ring.length[i]) != 1) abort();
    pthread_mutex_lock(&ring.lock);
    ring.hashed++;
    pthread_cond_broadcast(&ring.changed);
  }
  pthread_mutex_unlock(&ring.lock);
  return NULL;
}

static void die(const char *what) {
  fprintf(stderr, "floor: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static double cpu_ms(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static SSL_CTX *context(int server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384") != 1)
    die("no TLS 1.3 context");
  /* Read what the socket has (many records) per read(2), not a record's header and then its body. */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 256 * 1024);
  return ctx;
}

static int receive(int tls, const char *out, const char *cert, const char *key) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof at;
  if (listener < 0 || bind(listener, (struct sockaddr *)&at, sizeof at) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, (struct sockaddr *)&at, &length) != 0)
    die("cannot listen on loopback");
  SSL_CTX *ctx = NULL;
  if (tls) {
    ctx = context(1);
    if (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
      die("cannot load the certificate");
    /* No session tickets: a sender that never reads them would close with them unread (a reset). */
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  printf("port %d\n", ntohs(at.sin_port));
  fflush(stdout);
  int net = accept(listener, NULL, NULL);
  if (net < 0) die("accept failed");
  SSL *ssl = NULL;
  if (tls) {
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, net);
    if (SSL_accept(ssl) != 1) die("TLS handshake failed");
  }
  double began = now_s(), cpu0 = cpu_ms();
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ring.sha = EVP_MD_CTX_new();
  if (fd < 0 || !ring.sha || EVP_DigestInit_ex(ring.sha, EVP_sha256(), NULL) != 1) die("cannot open the output");
  for (int i = 0; i < RING; i++)
    if (!(ring.chunk[i] = malloc(CHUNK))) die("out of memory");
  pthread_t thread;
  if (pthread_create(&thread, NULL, hasher, NULL) != 0) die("no hash thread");
  long long bytes = 0;
  for (int eof = 0; !eof;) {
    pthread_mutex_lock(&ring.lock);
    while (ring.filled - ring.hashed == RING) pthread_cond_wait(&ring.changed, &ring.lock);
    pthread_mutex_unlock(&ring.lock);
    unsigned char *buffer = ring.chunk[ring.filled % RING];
    /* Fill the chunk (TLS gives a record per read), write it with one call, hand it to the hasher. */
    size_t filled = 0;
    while (filled < CHUNK) {
      ssize_t n;
      if (tls) {
        size_t got = 0;
        n = SSL_read_ex(ssl, buffer + filled, CHUNK - filled, &got) == 1 ? (ssize_t)got : 0;
      } else
        n = read(net, buffer + filled, CHUNK - filled);
      if (n < 0) die("read failed");
      if (n == 0) {
        eof = 1;
        break;
      }
      filled += n;
    }
    for (size_t done = 0; done < filled;) {
      ssize_t n = write(fd, buffer + done, filled - done);
      if (n <= 0) die("write failed");
      done += n;
    }
    bytes += filled;
    pthread_mutex_lock(&ring.lock);
    ring.length[ring.filled % RING] = filled;
    ring.filled++;
    ring.eof = eof;
    pthread_cond_broadcast(&ring.changed);
    pthread_mutex_unlock(&ring.lock);
  }
  pthread_join(thread, NULL);
  unsigned char digest[32];
  unsigned int digest_length = 0;
  EVP_DigestFinal_ex(ring.sha, digest, &digest_length);
  close(fd);
  double seconds = now_s() - began, cpu = cpu_ms() - cpu0;
  printf("{\"bytes\":%lld,\"seconds\":%.6f,\"cpuMs\":%.3f,\"sha256\":\"", bytes, seconds, cpu);
  for (unsigned int i = 0; i < digest_length; i++) printf("%02x", digest[i]);
  printf("\"}\n");
  return 0;
}

static int send_file(int tls, int port, const char *file, const char *ca) {
  int net = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (net < 0 || connect(net, (struct sockaddr *)&at, sizeof at) != 0) die("cannot connect");
  SSL *ssl = NULL;
  const char *cipher = "none";
  if (tls) {
    SSL_CTX *ctx = context(0);
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("cannot load the CA");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, net);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1) die("TLS handshake failed");
    cipher = SSL_CIPHER_standard_name(SSL_get_current_cipher(ssl));
  }
  double cpu0 = cpu_ms();
  int fd = open(file, O_RDONLY);
  unsigned char *buffer = malloc(CHUNK);
  if (fd < 0 || !buffer) die("cannot open the file");
  for (;;) {
    ssize_t n = read(fd, buffer, CHUNK);
    if (n < 0) die("read failed");
    if (n == 0) break;
    if (tls) {
      size_t written = 0;
      if (SSL_write_ex(ssl, buffer, n, &written) != 1 || written != (size_t)n) die("TLS write failed");
    } else
      for (ssize_t done = 0; done < n;) {
        ssize_t w = write(net, buffer + done, n - done);
        if (w <= 0) die("write failed");
        done += w;
      }
  }
  close(fd);
  if (tls) SSL_shutdown(ssl);
  shutdown(net, SHUT_WR);
  /* Until the receiver closes: closing with anything unread would reset the connection. */
  while (read(net, buffer, CHUNK) > 0) {
  }
  printf("{\"cpuMs\":%.3f,\"cipher\":\"%s\"}\n", cpu_ms() - cpu0, cipher);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "receive") == 0) return receive(strcmp(argv[2], "tls") == 0, argv[3], argv[4], argv[5]);
  if (argc == 6 && strcmp(argv[1], "send") == 0) return send_file(strcmp(argv[2], "tls") == 0, atoi(argv[3]), argv[4], argv[5]);
  fprintf(stderr, "usage: floor receive tls|tcp OUT CERT KEY | floor send tls|tcp PORT FILE CA\n");
  return 2;
}
