/*
 * The consumer side, from C: lists the instances of `micro` (or the service
 * named on the command line) once, then watches it and prints each change
 * and where the next request would go, until SIGINT or SIGTERM.
 *
 * Build: cc -std=c11 consumer.c $(pkg-config --cflags --libs registry)
 * Run:   REGISTRY_ENDPOINTS=http://127.0.0.1:2379 ./a.out [SERVICE]
 * Picks prefer the consumer's zone, then region (REGISTRY_ZONE, REGISTRY_REGION).
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>

#include "registry.h"

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int fail(const char *what, registry_status status) {
  fprintf(stderr, "consumer: %s: %s: %s\n", what, registry_status_name((int)status),
          registry_last_error());
  return 1;
}

static const char *or_dash(const char *s) { return s ? s : "-"; }

int main(int argc, char **argv) {
  const char *service = argc > 1 ? argv[1] : "micro";
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  registry_client *client = NULL;
  registry_status st = registry_client_new(NULL, &client); /* holds no lease: it registers nothing */
  if (st != REGISTRY_OK) return fail("connecting to etcd", st);

  /* One read. */
  registry_instance_list *found = NULL;
  st = registry_discover(client, service, &found);
  if (st != REGISTRY_OK) {
    registry_client_free(client);
    return fail("discovering", st);
  }
  printf("%s: %zu instance(s)\n", service, registry_instance_list_len(found));
  for (size_t i = 0; i < registry_instance_list_len(found); i++) {
    printf("  %s (zone %s, weight %s)\n", registry_instance_list_addr(found, i),
           or_dash(registry_instance_list_get(found, i, "zone")),
           or_dash(registry_instance_list_get(found, i, "weight")));
  }
  registry_instance_list_free(found);

  /* A live cache; no callback: this thread reads the changes. */
  registry_watcher *watcher = NULL;
  st = registry_watch(client, service, NULL, NULL, &watcher);
  if (st != REGISTRY_OK) {
    registry_client_free(client);
    return fail("watching", st);
  }
  printf("watching %s\n", service);
  fflush(stdout);
  while (!stop) {
    registry_change_kind kind;
    registry_instance_list *changed = NULL;
    st = registry_watcher_next_change(watcher, 500, &kind, &changed); /* wakes up to check `stop` */
    if (st == REGISTRY_TIMEOUT) continue;
    if (st != REGISTRY_OK) break;
    char next[300]; /* an address: at most a 253-byte host name and a port */
    if (registry_watcher_pick(watcher, next, sizeof next, NULL) != REGISTRY_OK) snprintf(next, sizeof next, "nobody");
    printf("%s %s (zone %s, weight %s); next request goes to %s\n",
           kind == REGISTRY_CHANGE_ADDED ? "added" : kind == REGISTRY_CHANGE_UPDATED ? "updated" : "removed",
           registry_instance_list_addr(changed, 0), or_dash(registry_instance_list_get(changed, 0, "zone")),
           or_dash(registry_instance_list_get(changed, 0, "weight")), next);
    fflush(stdout);
    registry_instance_list_free(changed);
  }
  registry_watcher_free(watcher);
  registry_client_free(client);
  if (!stop) return fail("waiting for changes", st);
  printf("stopped\n");
  return 0;
}
