// Times connect() N times against one destination and prints the mean in ns.
// Used to compare a kernel-denied connect (EPERM from egressd's cgroup
// program) with a connect to a closed local port (ECONNREFUSED).
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: connect_bench IPV4 PORT COUNT\n");
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) return 2;
  long n = atol(argv[3]);
  int expected = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      perror("socket");
      return 1;
    }
    int rc = connect(fd, (struct sockaddr*)&sa, sizeof(sa));
    if (i == 0) expected = rc == 0 ? 0 : errno;
    if (rc == 0 || errno != expected) {
      fprintf(stderr, "connect %ld: unexpected result %s\n", i,
              rc == 0 ? "success" : strerror(errno));
      return 1;
    }
    close(fd);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  printf("%.0f %s\n", ns / n, strerror(expected));
  return 0;
}
