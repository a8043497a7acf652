/*
 * A C consumer for the Go interop test: finds, through registry_discover
 * and registry_watch, the endpoints Go's naming/endpoints.Manager wrote.
 *
 *   consumer NAME             (etcd from REGISTRY_ENDPOINTS)
 *
 * Driven line by line, the same protocol as tests/interop/python/consumer.py:
 *   (start)      "watching NAME" and one line per change as it comes (the
 *                first ADDED lines may come before "watching"):
 *                ADDED KEY ADDR / UPDATED KEY ADDR / REMOVED KEY ADDR
 *   discover     LIST N, N lines "ITEM KEY ADDR k=v,k=v" (keys sorted), END
 *   snapshot     the same, from the watcher's cache
 *   quit / EOF   bye
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static int fail(const char *what, registry_status status) {
  fprintf(stderr, "c consumer: %s: %s: %s\n", what, registry_status_name((int)status),
          registry_last_error());
  return 1;
}

/* Runs on a libregistry thread; flockfile keeps each line whole. */
static void on_change(void *userdata, const registry_change *change) {
  (void)userdata;
  const char *kind = change->kind == REGISTRY_CHANGE_ADDED     ? "ADDED"
                     : change->kind == REGISTRY_CHANGE_UPDATED ? "UPDATED"
                     : change->kind == REGISTRY_CHANGE_REMOVED ? "REMOVED"
                                                               : "UNKNOWN";
  flockfile(stdout);
  printf("%s %s %s\n", kind, change->key ? change->key : "?", change->addr ? change->addr : "-");
  fflush(stdout);
  funlockfile(stdout);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void print_list(const registry_instance_list *list) {
  size_t n = registry_instance_list_len(list);
  flockfile(stdout);
  printf("LIST %zu\n", n);
  for (size_t i = 0; i < n; i++) {
    printf("ITEM %s %s", registry_instance_list_key(list, i), registry_instance_list_addr(list, i));
    size_t m = registry_instance_list_metadata_len(list, i);
    const char **names = m ? calloc(m, sizeof *names) : NULL;
    for (size_t j = 0; names != NULL && j < m; j++) names[j] = registry_instance_list_metadata_key(list, i, j);
    if (names != NULL) qsort(names, m, sizeof *names, by_name);
    for (size_t j = 0; names != NULL && j < m; j++) {
      const char *value = registry_instance_list_get(list, i, names[j]);
      printf("%s%s=%s", j == 0 ? " " : ",", names[j], value ? value : "");
    }
    free(names);
    printf("\n");
  }
  printf("END\n");
  fflush(stdout);
  funlockfile(stdout);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s NAME\n", argv[0]);
    return 2;
  }
  const char *name = argv[1];
  registry_client *client = NULL;
  registry_status st = registry_client_new(NULL, &client);
  if (st != REGISTRY_OK) return fail("connecting to etcd", st);

  registry_watcher *watcher = NULL;
  /* The first ADDED lines may come before "watching": the callback can run
   * before registry_watch returns. */
  st = registry_watch(client, name, on_change, NULL, &watcher);
  if (st != REGISTRY_OK) {
    registry_client_free(client);
    return fail("watching", st);
  }
  flockfile(stdout);
  printf("watching %s\n", name);
  fflush(stdout);
  funlockfile(stdout);

  int status = 0;
  char line[256];
  while (status == 0 && fgets(line, sizeof line, stdin) != NULL) {
    registry_instance_list *list = NULL;
    if (strncmp(line, "discover", 8) == 0) {
      st = registry_discover(client, name, &list);
      if (st != REGISTRY_OK) status = fail("discover", st);
    } else if (strncmp(line, "snapshot", 8) == 0) {
      st = registry_watcher_snapshot(watcher, &list);
      if (st != REGISTRY_OK) status = fail("snapshot", st);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    }
    if (list != NULL) print_list(list);
    registry_instance_list_free(list);
  }
  registry_watcher_free(watcher);
  registry_client_free(client);
  printf("bye\n");
  return status;
}
