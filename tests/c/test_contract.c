/*
 * The contract, using only its minimal prototypes: register `micro`
 * at 127.0.0.1:4000, deregister it, register two more and free the client.
 * After each step it prints "STEP <name>" and waits for a line on stdin, so
 * the test driver can look at etcd with etcdctl in between. Also checks that
 * event callbacks arrive in order and never after registry_client_free.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static registry_event_kind events[64];
static int event_count = 0;

static void on_event(void *userdata, const registry_event *event) {
  int *calls = userdata;
  pthread_mutex_lock(&events_lock);
  (*calls)++;
  if (event_count < 64) events[event_count++] = event->kind;
  pthread_mutex_unlock(&events_lock);
}

static void step(const char *name) {
  printf("STEP %s\n", name);
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) exit(3);
}

static registry_registration *register_micro(registry_client *client, const char *addr) {
  registry_service *svc = NULL;
  registry_registration *reg = NULL;
  CHECK_OK(registry_service_new("micro", addr, &svc));
  CHECK_OK(registry_service_set(svc, "env", "dev"));
  CHECK_OK(registry_service_set(svc, "region", "beijing"));
  CHECK_OK(registry_service_set(svc, "zone", "zone1"));
  CHECK_OK(registry_service_set(svc, "deployment", "red"));
  CHECK_OK(registry_service_set(svc, "weight", "100"));
  CHECK_OK(registry_service_set(svc, "appVersion", "ahkfasgasdf"));
  CHECK_OK(registry_service_set(svc, "buildTime", "2020-10-14T10:00:00Z"));
  CHECK_OK(registry_register(client, svc, &reg));
  registry_service_free(svc);
  return reg;
}

int main(int argc, char **argv) {
  registry_options *opts = registry_options_new();
  CHECK(opts != NULL);
  CHECK_OK(registry_options_set_endpoints(opts, argc > 1 ? argv[1] : "http://127.0.0.1:2379"));
  CHECK_OK(registry_options_set_ttl(opts, 5));
  registry_client *client = NULL;
  CHECK_OK(registry_client_new(opts, &client));
  registry_options_free(opts);
  if (!client) return check_report("test_contract");
  int calls = 0;
  CHECK_OK(registry_client_set_event_callback(client, on_event, &calls));

  registry_registration *reg = register_micro(client, "127.0.0.1:4000");
  step("registered");
  CHECK_OK(registry_deregister(reg));
  step("deregistered");
  register_micro(client, "127.0.0.1:4001");
  registry_registration *second = register_micro(client, "127.0.0.1:4002");
  registry_registration_free(second); /* the handle only: the key stays */
  step("registered-two");
  registry_client_free(client);
  step("freed");

  pthread_mutex_lock(&events_lock);
  int seen = calls;
  CHECK(event_count == 5);
  CHECK(events[0] == REGISTRY_EVENT_REGISTERED);
  CHECK(events[1] == REGISTRY_EVENT_DEREGISTERED);
  CHECK(events[2] == REGISTRY_EVENT_REGISTERED);
  CHECK(events[3] == REGISTRY_EVENT_REGISTERED);
  CHECK(events[4] == REGISTRY_EVENT_CLOSED);
  pthread_mutex_unlock(&events_lock);
  struct timespec pause_for = {0, 200 * 1000 * 1000};
  nanosleep(&pause_for, NULL);
  CHECK(calls == seen); /* nothing after registry_client_free */
  return check_report("test_contract");
}
