/* LD_PRELOAD shim for the benchmark's "full handshake" rows.
 *
 * On reconnect wrk calls SSL_clear() and reuses the same SSL object, which
 * keeps the previous session: OpenSSL then offers it and the "new connection"
 * becomes an abbreviated (resumed) handshake. Wrapping SSL_clear to drop the
 * session afterwards makes every connection a full handshake.
 *
 *   cc -O2 -shared -fPIC -o noresume.so noresume.c -ldl -lssl
 *   LD_PRELOAD=./noresume.so wrk -H 'Connection: close' https://...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_set_session(SSL* ssl, SSL_SESSION* session);

int SSL_clear(SSL* ssl) {
  static int (*next_clear)(SSL*);
  if (next_clear == NULL) next_clear = (int (*)(SSL*))dlsym(RTLD_NEXT, "SSL_clear");
  int rc = next_clear(ssl);
  SSL_set_session(ssl, NULL); /* forget the session: no resumption offered */
  return rc;
}
