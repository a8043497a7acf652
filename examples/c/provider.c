/*
 * The seed's example service, from C: registers `micro` at 127.0.0.1:4000
 * with the seed's metadata, stays registered until SIGINT or SIGTERM, then
 * deregisters and frees the client (which revokes its lease).
 *
 * Build: cc -std=c11 provider.c $(pkg-config --cflags --libs registry)
 * etcd: REGISTRY_ENDPOINTS (default http://127.0.0.1:2379).
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "registry.h"

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int fail(const char *what, registry_status status) {
  fprintf(stderr, "provider: %s: %s: %s\n", what, registry_status_name((int)status),
          registry_last_error());
  return 1;
}

int main(void) {
  /* Before registering: a signal that arrives early must still deregister. */
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  registry_client *client = NULL;
  registry_status st = registry_client_new(NULL, &client);
  if (st != REGISTRY_OK) return fail("connecting to etcd", st);

  registry_service *svc = NULL;
  st = registry_service_new("micro", "127.0.0.1:4000", &svc);
  if (st != REGISTRY_OK) return fail("describing the service", st);
  const char *metadata[][2] = {
      {"env", "dev"},        {"region", "beijing"},        {"zone", "zone1"},
      {"scheme", "grpc"},    {"weight", "100"},            {"deployment", "red"},
      {"appVersion", "ahkfasgasdf"}, {"buildTime", "2020-10-14T10:00:00Z"},
  };
  for (size_t i = 0; i < sizeof metadata / sizeof metadata[0]; i++) {
    st = registry_service_set(svc, metadata[i][0], metadata[i][1]);
    if (st != REGISTRY_OK) return fail(metadata[i][0], st);
  }

  registry_registration *reg = NULL;
  st = registry_register(client, svc, &reg);
  registry_service_free(svc);
  if (st != REGISTRY_OK) return fail("registering", st);
  printf("registered %s\n", registry_registration_key(reg));
  fflush(stdout);

  while (!stop) sleep(1); /* a signal cuts the sleep short */

  st = registry_deregister(reg);
  registry_client_free(client);
  if (st != REGISTRY_OK) return fail("deregistering", st);
  printf("deregistered\n");
  return 0;
}
