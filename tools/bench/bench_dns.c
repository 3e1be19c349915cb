/* A tiny DNS server for the benchmark: answers A queries for every name
 * under a suffix (default origin.test) with 127.0.0.1, NXDOMAIN for the rest,
 * an empty answer for other types. Loopback only. In C so that it costs the
 * shared CPUs next to nothing (the new-names row asks it two questions per
 * connection; squid, its peer, reads a hosts file).
 *
 *   bench_dns PORT [SUFFIX]      prints "ready" once bound
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The answer to `q` (n bytes) in `out`, its length, or 0 for no answer. */
static size_t answer(const uint8_t* q, size_t n, const char* suffix, uint8_t* out) {
  if (n < 12 || n > 512) return 0;
  unsigned flags = (unsigned)q[2] << 8 | q[3];
  unsigned qdcount = (unsigned)q[4] << 8 | q[5];
  if ((flags & 0x8000) || qdcount != 1) return 0;
  char name[256];
  size_t pos = 12, len = 0;
  while (pos < n && q[pos] != 0) {
    size_t l = q[pos];
    if (l > 63 || pos + 1 + l > n || len + l + 1 >= sizeof(name)) return 0;
    if (len) name[len++] = '.';
    for (size_t i = 0; i < l; i++) name[len++] = (char)tolower(q[pos + 1 + i]);
    pos += 1 + l;
  }
  name[len] = 0;
  pos += 1;
  if (pos + 4 > n) return 0;
  unsigned qtype = (unsigned)q[pos] << 8 | q[pos + 1];
  size_t qend = pos + 4;
  size_t sl = strlen(suffix);
  int ours = strcmp(name, suffix) == 0 ||
             (len > sl && name[len - sl - 1] == '.' && strcmp(name + len - sl, suffix) == 0);
  int ancount = ours && qtype == 1;
  unsigned rflags = 0x8180 | (ours ? 0 : 3);
  const uint8_t head[12] = {q[0], q[1], rflags >> 8, rflags & 0xff, 0, 1, 0, ancount, 0, 0, 0, 0};
  memcpy(out, head, 12);
  memcpy(out + 12, q + 12, qend - 12); /* the question */
  size_t end = qend;
  if (ancount) {
    /* a pointer to the question's name, A, IN, TTL 60, 4 bytes: 127.0.0.1 */
    const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
    memcpy(out + end, rr, sizeof rr);
    end += sizeof rr;
  }
  return end;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [SUFFIX]\n", argv[0]);
    return 2;
  }
  char suffix[256];
  snprintf(suffix, sizeof suffix, "%s", argc > 2 ? argv[2] : "origin.test");
  for (char* c = suffix; *c; c++) *c = (char)tolower((unsigned char)*c);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    perror("bench_dns: bind");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    uint8_t q[512], out[512 + 16];
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr*)&peer, &plen);
    if (n <= 0) continue;
    size_t r = answer(q, (size_t)n, suffix, out);
    if (r) sendto(fd, out, r, 0, (struct sockaddr*)&peer, plen);
  }
}
