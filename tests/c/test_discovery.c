/*
 * Discovery through the C ABI: discover, instance lists, a watcher with a
 * change callback, snapshot and pick; bad input through each of those
 * functions. Needs REGISTRY_ENDPOINTS pointing at a live etcd.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>

#include "check.h"
#include "wait.h"

#define INV REGISTRY_INVALID_ARGUMENT

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int added = 0, updated = 0, removed = 0, calls = 0;

static void on_change(void *userdata, const registry_change *change) {
  int *seen_zone = userdata;
  pthread_mutex_lock(&lock);
  calls++;
  if (change->kind == REGISTRY_CHANGE_ADDED) added++;
  if (change->kind == REGISTRY_CHANGE_UPDATED) updated++;
  if (change->kind == REGISTRY_CHANGE_REMOVED) removed++;
  const char *zone = registry_instance_list_get(change->instance, 0, "zone");
  if (zone != NULL && strcmp(change->addr, registry_instance_list_addr(change->instance, 0)) == 0) {
    (*seen_zone)++;
  }
  pthread_mutex_unlock(&lock);
}

/* Waits up to 5 s for *counter to reach want. */
static int wait_for(int *counter, int want) { return wait_counter(&lock, counter, want); }

static registry_registration *reg(registry_client *client, const char *name, const char *addr,
                                  const char *zone, const char *weight) {
  registry_service *svc = NULL;
  registry_registration *r = NULL;
  CHECK_OK(registry_service_new(name, addr, &svc));
  CHECK_OK(registry_service_set(svc, "zone", zone));
  CHECK_OK(registry_service_set(svc, "weight", weight));
  CHECK_OK(registry_register(client, svc, &r));
  registry_service_free(svc);
  return r;
}

int main(void) {
  registry_client *client = NULL;
  CHECK_OK(registry_client_new(NULL, &client));
  if (!client) return check_report("test_discovery");

  registry_registration *a = reg(client, "disc", "10.0.0.1:1", "z1", "100");
  registry_registration *b = reg(client, "disc", "10.0.0.2:1", "z1", "300");
  registry_registration *c = reg(client, "disc", "10.0.0.3:1", "z1", "0");
  registry_registration *d = reg(client, "disc", "10.0.0.4:1", "z2", "1000");
  registry_registration *other = reg(client, "disc_other", "10.0.0.9:1", "z1", "100");

  /* registry_discover and the instance list accessors */
  registry_instance_list *list = NULL;
  CHECK_STATUS(registry_discover(NULL, "disc", &list), INV, "client");
  CHECK_STATUS(registry_discover(client, NULL, &list), INV, "name");
  CHECK_STATUS(registry_discover(client, "disc", NULL), INV, "list_out");
  CHECK_STATUS(registry_discover(client, "../disc", &list), INV, "name");
  CHECK(list == NULL);
  CHECK_OK(registry_discover(client, "disc", &list));
  CHECK(registry_instance_list_len(list) == 4); /* never disc_other */
  CHECK(strcmp(registry_instance_list_addr(list, 0), "10.0.0.1:1") == 0);
  CHECK(strcmp(registry_instance_list_key(list, 3), "/disc/10.0.0.4:1") == 0);
  CHECK(strcmp(registry_instance_list_name(list, 1), "disc") == 0);
  CHECK(strcmp(registry_instance_list_get(list, 1, "weight"), "300") == 0);
  CHECK(strcmp(registry_instance_list_get(list, 3, "zone"), "z2") == 0);
  CHECK(registry_instance_list_get(list, 0, "absent") == NULL);
  CHECK(registry_instance_list_get(list, 0, NULL) == NULL);
  CHECK(registry_instance_list_get(list, 99, "zone") == NULL);
  CHECK(registry_instance_list_addr(list, 4) == NULL);
  CHECK(registry_instance_list_key(NULL, 0) == NULL);
  CHECK(registry_instance_list_name(list, 99) == NULL);
  CHECK(registry_instance_list_len(NULL) == 0);
  size_t entries = registry_instance_list_metadata_len(list, 0);
  CHECK(entries >= 6); /* zone, ip, port, scheme, weight, frameVersion, startTime */
  int found_zone = 0;
  for (size_t j = 0; j < entries; j++) {
    if (strcmp(registry_instance_list_metadata_key(list, 0, j), "zone") == 0) found_zone = 1;
  }
  CHECK(found_zone);
  CHECK(registry_instance_list_metadata_key(list, 0, entries) == NULL);
  CHECK(registry_instance_list_metadata_len(NULL, 0) == 0);
  registry_instance_list_free(list);
  registry_instance_list_free(NULL);

  /* registry_watch with a callback */
  int seen_zone = 0;
  registry_watcher *watcher = NULL;
  CHECK_STATUS(registry_watch(NULL, "disc", on_change, &seen_zone, &watcher), INV, "client");
  CHECK_STATUS(registry_watch(client, NULL, on_change, &seen_zone, &watcher), INV, "name");
  CHECK_STATUS(registry_watch(client, "disc", on_change, &seen_zone, NULL), INV, "watcher_out");
  CHECK_OK(registry_watch(client, "disc", on_change, &seen_zone, &watcher));
  CHECK(wait_for(&added, 4));
  CHECK(wait_for(&seen_zone, 4));

  registry_instance_list *snap = NULL;
  CHECK_STATUS(registry_watcher_snapshot(NULL, &snap), INV, "watcher");
  CHECK_STATUS(registry_watcher_snapshot(watcher, NULL), INV, "list_out");
  CHECK_OK(registry_watcher_snapshot(watcher, &snap));
  CHECK(registry_instance_list_len(snap) == 4);
  registry_instance_list_free(snap);

  /* pick: own zone first, weight 0 never, in proportion to weight */
  CHECK_STATUS(registry_watcher_set_policy(NULL, "z1", NULL, NULL, NULL, false), INV, "watcher");
  CHECK_OK(registry_watcher_set_policy(watcher, "z1", NULL, NULL, NULL, false));
  char addr[64];
  size_t needed = 0;
  int heavy = 0;
  for (int i = 0; i < 4000; i++) {
    CHECK_OK(registry_watcher_pick(watcher, addr, sizeof addr, &needed));
    CHECK(strcmp(addr, "10.0.0.3:1") != 0 && strcmp(addr, "10.0.0.4:1") != 0);
    if (strcmp(addr, "10.0.0.2:1") == 0) heavy++;
  }
  CHECK(heavy > 2700 && heavy < 3300); /* 3/4 of 4000, loosely */
  CHECK_STATUS(registry_watcher_pick(NULL, addr, sizeof addr, &needed), INV, "watcher");
  CHECK_STATUS(registry_watcher_pick(watcher, addr, 3, &needed), INV, "too small");
  CHECK(needed == strlen("10.0.0.1:1") + 1);
  CHECK_OK(registry_watcher_set_policy(watcher, NULL, NULL, "staging", NULL, false));
  CHECK_STATUS(registry_watcher_pick(watcher, addr, sizeof addr, &needed), REGISTRY_NOT_FOUND, "disc");
  const char not_utf8[] = {(char)0xff, 0};
  CHECK_STATUS(registry_watcher_set_policy(watcher, not_utf8, NULL, NULL, NULL, false), INV, "zone");
  CHECK_OK(registry_watcher_set_policy(watcher, NULL, NULL, NULL, NULL, true));
  CHECK_OK(registry_watcher_pick(watcher, addr, sizeof addr, NULL));

  /* changes: update, deregister */
  const char *keys[] = {"weight"};
  const char *values[] = {"7"};
  CHECK_OK(registry_update(a, keys, values, 1));
  CHECK(wait_for(&updated, 1));
  CHECK_OK(registry_deregister(b));
  CHECK(wait_for(&removed, 1));

  /* registry_watcher_next_change: a watcher without a callback reads its changes */
  registry_watcher *reader = NULL;
  registry_change_kind kind = REGISTRY_CHANGE_ADDED;
  registry_instance_list *changed = NULL;
  CHECK_OK(registry_watch(client, "disc", NULL, NULL, &reader));
  CHECK_STATUS(registry_watcher_next_change(NULL, 0, &kind, &changed), INV, "watcher");
  CHECK_STATUS(registry_watcher_next_change(reader, 0, NULL, &changed), INV, "kind_out");
  CHECK_STATUS(registry_watcher_next_change(reader, 0, &kind, NULL), INV, "instance_out");
  int initial = 0;
  while (registry_watcher_next_change(reader, 200, &kind, &changed) == REGISTRY_OK) {
    CHECK(kind == REGISTRY_CHANGE_ADDED); /* a, c, d as found at start */
    CHECK(registry_instance_list_len(changed) == 1);
    registry_instance_list_free(changed);
    changed = NULL;
    initial++;
  }
  CHECK(initial == 3);
  CHECK_STATUS(registry_watcher_next_change(reader, 10, &kind, &changed), REGISTRY_TIMEOUT, "within 10 ms");
  CHECK(changed == NULL);
  values[0] = "9";
  CHECK_OK(registry_update(a, keys, values, 1));
  CHECK_OK(registry_watcher_next_change(reader, 5000, &kind, &changed));
  CHECK(kind == REGISTRY_CHANGE_UPDATED);
  CHECK(changed != NULL && strcmp(registry_instance_list_addr(changed, 0), "10.0.0.1:1") == 0);
  CHECK(changed != NULL && strcmp(registry_instance_list_get(changed, 0, "weight"), "9") == 0);
  registry_instance_list_free(changed);
  /* not for a watcher whose changes go to its callback */
  CHECK_STATUS(registry_watcher_next_change(watcher, 0, &kind, &changed), INV, "callback");
  registry_watcher_free(reader);

  /* no callback after registry_watcher_free */
  registry_watcher_free(watcher);
  registry_watcher_free(NULL);
  pthread_mutex_lock(&lock);
  int before = calls;
  pthread_mutex_unlock(&lock);
  CHECK_OK(registry_deregister(c));
  sleep_ms(300);
  pthread_mutex_lock(&lock);
  CHECK(calls == before);
  pthread_mutex_unlock(&lock);

  registry_registration_free(a);
  registry_registration_free(d);
  registry_registration_free(other);
  registry_client_free(client);
  return check_report("test_discovery");
}
