/*
 * A watcher nobody reads (NULL callback, registry_watcher_next_change never
 * called) stays bounded in memory while another client makes 200,000
 * changes (register and deregister churn), and registry_watcher_next_change
 * then returns the net changes: replayed, they give the watcher's snapshot.
 * Needs REGISTRY_ENDPOINTS pointing at a live etcd.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>
#include <unistd.h>

#include "check.h"

#define SERVICE "churn"
#define BATCH 128                 /* one transaction of registrations */
#define CHANGES 200000            /* a register and a deregister per service and round */
#define ROUNDS (CHANGES / (2 * BATCH) + 1)
#define STEADY 3                  /* instances registered throughout */
#define LIMIT_KIB (20 * 1024)

static long rss_kib(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static registry_service *service(int i) {
  char addr[32];
  registry_service *svc = NULL;
  snprintf(addr, sizeof addr, "10.1.%d.%d:%d", i / 250, i % 250, 1000 + i);
  CHECK_OK(registry_service_new(SERVICE, addr, &svc));
  return svc;
}

/* One round of churn: a new client registers BATCH services at once and is
 * freed, which revokes its lease: BATCH additions, then BATCH removals. */
static void churn_round(registry_service *const *services) {
  registry_client *churner = NULL;
  registry_registration *regs[BATCH];
  CHECK_OK(registry_client_new(NULL, &churner));
  CHECK_OK(registry_register_many(churner, (const registry_service *const *)services, BATCH, regs));
  for (int i = 0; i < BATCH; i++) registry_registration_free(regs[i]);
  registry_client_free(churner);
}

int main(void) {
  registry_client *client = NULL;
  CHECK_OK(registry_client_new(NULL, &client));
  if (!client) return check_report("test_watch_memory");

  registry_registration *steady[STEADY];
  for (int i = 0; i < STEADY; i++) {
    registry_service *svc = service(10000 + i);
    CHECK_OK(registry_register(client, svc, &steady[i]));
    registry_service_free(svc);
  }
  registry_watcher *watcher = NULL;
  CHECK_OK(registry_watch(client, SERVICE, NULL, NULL, &watcher));

  registry_service *services[BATCH];
  for (int i = 0; i < BATCH; i++) services[i] = service(i);
  for (int r = 0; r < 20; r++) churn_round(services); /* warm the allocator up */
  long before = rss_kib();
  for (int r = 0; r < ROUNDS; r++) churn_round(services);

  /* Wait until the watcher has seen the last removal: its cache is the steady set. */
  registry_instance_list *snap = NULL;
  for (int tries = 0; tries < 500; tries++) {
    CHECK_OK(registry_watcher_snapshot(watcher, &snap));
    size_t len = registry_instance_list_len(snap);
    registry_instance_list_free(snap);
    if (len == STEADY) break;
    struct timespec ten_ms = {0, 10000000L};
    nanosleep(&ten_ms, NULL);
  }
  long after = rss_kib();
  printf("watcher RSS: %ld KiB before, %ld KiB after %d changes unread (+%ld KiB; limit %d KiB)\n",
         before, after, 2 * BATCH * ROUNDS, after - before, LIMIT_KIB);
  CHECK(after - before < LIMIT_KIB);

  /* The unread changes, squashed: replayed from nothing they give the snapshot. */
  int added = 0, others = 0, read = 0;
  registry_change_kind kind;
  registry_instance_list *changed = NULL;
  int present[BATCH + STEADY] = {0};
  while (registry_watcher_next_change(watcher, 500, &kind, &changed) == REGISTRY_OK) {
    read++;
    const char *addr = registry_instance_list_addr(changed, 0);
    int a = 0, b = 0, port = 0;
    CHECK(sscanf(addr, "10.1.%d.%d:%d", &a, &b, &port) == 3);
    int slot = port - 1000 >= 10000 ? BATCH + (port - 1000 - 10000) : port - 1000;
    CHECK(slot >= 0 && slot < BATCH + STEADY);
    if (kind == REGISTRY_CHANGE_ADDED) {
      CHECK(present[slot] == 0);
      present[slot] = 1;
      added++;
    } else if (kind == REGISTRY_CHANGE_REMOVED) {
      CHECK(present[slot] == 1);
      present[slot] = 0;
      others++;
    } else {
      CHECK(present[slot] == 1);
      others++;
    }
    registry_instance_list_free(changed);
  }
  int live = 0;
  for (int i = 0; i < BATCH + STEADY; i++) live += present[i];
  printf("read %d changes after squashing (%d added, %d updated or removed); %d instances replayed\n",
         read, added, others, live);
  CHECK(live == STEADY);
  for (int i = 0; i < STEADY; i++) CHECK(present[BATCH + i] == 1);
  CHECK(read < 3000); /* not 200,000 */

  for (int i = 0; i < BATCH; i++) registry_service_free(services[i]);
  registry_watcher_free(watcher);
  for (int i = 0; i < STEADY; i++) registry_registration_free(steady[i]);
  registry_client_free(client);
  return check_report("test_watch_memory");
}
