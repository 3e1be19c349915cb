/* New connections, each with a host name never used before: connect, TLS
 * handshake with SNI "<prefix><process>-<n>.<suffix>", one GET with that Host
 * and "Connection: close", read to the end. No certificate check (like wrk),
 * no session resumption (a new SSL_CTX per process, session cache off).
 *
 *   new_names_bench ADDR PORT PREFIX SUFFIX SECONDS PROCESSES [MAX_PER_PROCESS]
 *
 * Prints "<ok connections per second> <ok> <errors>"; the first error's reason
 * goes to stderr.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tally {
  long ok, errors;
  char first_error[512];
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One connection; returns NULL on success, else why it failed. */
static const char* one_connection(SSL_CTX* ctx, const struct sockaddr_in* sa, const char* name) {
  static char why[200];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket";
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (const struct sockaddr*)sa, sizeof(*sa)) != 0) {
    close(fd);
    return "connect";
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, name);
  const char* err = NULL;
  if (SSL_connect(ssl) != 1) {
    snprintf(why, sizeof(why), "handshake: %s",
             ERR_reason_error_string(ERR_peek_last_error())
                 ? ERR_reason_error_string(ERR_peek_last_error())
                 : "closed");
    err = why;
  } else {
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /small.txt HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", name,
                     ntohs(sa->sin_port));
    if (SSL_write(ssl, req, n) != n) {
      err = "write";
    } else {
      char buf[4096], head[16] = {0};
      size_t got = 0;
      int r;
      while ((r = SSL_read(ssl, buf, sizeof(buf))) > 0) {
        if (got < sizeof(head) - 1)
          memcpy(head + got, buf,
                 (size_t)r < sizeof(head) - 1 - got ? (size_t)r : sizeof(head) - 1 - got);
        got += r;
      }
      if (strncmp(head, "HTTP/1.1 200", 12) != 0) {
        snprintf(why, sizeof(why), "answer: %.15s (%zu bytes)", got ? head : "nothing", got);
        err = why;
      }
    }
  }
  ERR_clear_error();
  SSL_free(ssl);
  close(fd);
  return err;
}

int main(int argc, char** argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s ADDR PORT PREFIX SUFFIX SECONDS PROCESSES [MAX_PER_PROCESS]\n",
            argv[0]);
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &sa.sin_addr);
  const char *prefix = argv[3], *suffix = argv[4];
  double seconds = atof(argv[5]);
  int procs = atoi(argv[6]);
  long max_per = argc > 7 ? atol(argv[7]) : 1L << 40;
  struct tally* t =
      mmap(NULL, sizeof(*t) * procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memset(t, 0, sizeof(*t) * procs);
  signal(SIGPIPE, SIG_IGN); /* a proxy that closes mid-request is an error, not the end */
  double start = now();
  for (int p = 0; p < procs; p++) {
    if (fork() != 0) continue;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    for (long n = 0; n < max_per && now() - start < seconds; n++) {
      char name[256];
      snprintf(name, sizeof(name), "%s%d-%ld.%s", prefix, p, n, suffix);
      const char* err = one_connection(ctx, &sa, name);
      if (err == NULL) {
        t[p].ok++;
      } else {
        if (t[p].errors++ == 0)
          snprintf(t[p].first_error, sizeof(t[p].first_error), "%s: %s", name, err);
      }
    }
    _exit(0);
  }
  while (wait(NULL) > 0) {
  }
  double elapsed = now() - start;
  long ok = 0, errors = 0;
  for (int p = 0; p < procs; p++) {
    ok += t[p].ok;
    errors += t[p].errors;
    if (t[p].errors)
      fprintf(stderr, "new_names_bench: %ld errors in process %d, first: %s\n", t[p].errors, p,
              t[p].first_error);
  }
  printf("%.0f %ld %ld\n", ok / elapsed, ok, errors);
  return 0;
}
