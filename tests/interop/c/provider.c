/*
 * A C provider for the Go interop test: registers NAME at ADDR through
 * libregistry.so, prints "registered KEY", stays registered until stdin
 * says "quit" or closes, then deregisters ("deregistered KEY") and frees
 * the client ("bye").
 *
 *   provider NAME ADDR        (etcd from REGISTRY_ENDPOINTS, TTL from REGISTRY_TTL)
 */
#include <stdio.h>
#include <string.h>

#include "registry.h"

static int fail(const char *what, registry_status status) {
  fprintf(stderr, "c provider: %s: %s: %s\n", what, registry_status_name((int)status),
          registry_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s NAME ADDR\n", argv[0]);
    return 2;
  }
  registry_client *client = NULL;
  registry_status st = registry_client_new(NULL, &client);
  if (st != REGISTRY_OK) return fail("connecting to etcd", st);

  registry_service *svc = NULL;
  st = registry_service_new(argv[1], argv[2], &svc);
  if (st != REGISTRY_OK) return fail("describing the service", st);
  const char *metadata[][2] = {{"zone", "zone1"}, {"weight", "100"}, {"provider", "c"}};
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

  char line[256];
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "quit", 4) == 0) break;
  }

  char key[512];
  snprintf(key, sizeof key, "%s", registry_registration_key(reg));
  st = registry_deregister(reg);
  if (st != REGISTRY_OK) {
    registry_client_free(client);
    return fail("deregistering", st);
  }
  printf("deregistered %s\n", key);
  registry_client_free(client);
  printf("bye\n");
  return 0;
}
