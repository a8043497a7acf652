/*
 * Bad input through every exported function: NULL pointers, strings that
 * are not UTF-8, invalid values, _free(NULL), use after the client is
 * freed, many threads at once, and a forked child. Each must give a status
 * and a message, never a crash or a hang.
 *
 * Needs REGISTRY_ENDPOINTS pointing at a live etcd.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define INV REGISTRY_INVALID_ARGUMENT
static const char not_utf8[] = {(char)0xff, (char)0xfe, 0};

static double now_secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void version_and_errors(void) {
  /* 1-3: registry_version, registry_status_name, registry_last_error */
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", REGISTRY_VERSION_MAJOR,
           REGISTRY_VERSION_MINOR, REGISTRY_VERSION_PATCH);
  CHECK(strcmp(registry_version(), expected) == 0);
  CHECK(strcmp(registry_status_name(REGISTRY_TIMEOUT), "REGISTRY_TIMEOUT") == 0);
  CHECK(strcmp(registry_status_name(-1), "REGISTRY_UNKNOWN_STATUS") == 0);
  CHECK(strcmp(registry_status_name(9999), "REGISTRY_UNKNOWN_STATUS") == 0);
  CHECK(registry_last_error() != NULL);
}

static void options_functions(void) {
  /* 4-10: registry_options_* */
  registry_options *opts = registry_options_new();
  CHECK(opts != NULL);
  CHECK_STATUS(registry_options_set_endpoints(NULL, "http://x:1"), INV, "opts");
  CHECK_STATUS(registry_options_set_endpoints(opts, NULL), INV, "endpoints");
  CHECK_STATUS(registry_options_set_endpoints(opts, not_utf8), INV, "UTF-8");
  CHECK_STATUS(registry_options_set_endpoints(opts, " "), INV, "endpoints");
  CHECK_STATUS(registry_options_set_ttl(NULL, 10), INV, "opts");
  CHECK_STATUS(registry_options_set_ttl(opts, 1), INV, "ttl");
  CHECK_STATUS(registry_options_set_prefix(NULL, "/p"), INV, "opts");
  CHECK_STATUS(registry_options_set_prefix(opts, NULL), INV, "prefix");
  CHECK_STATUS(registry_options_set_prefix(opts, not_utf8), INV, "UTF-8");
  CHECK_STATUS(registry_options_set_layout(NULL, "go-zero"), INV, "opts");
  CHECK_STATUS(registry_options_set_layout(opts, NULL), INV, "layout");
  CHECK_STATUS(registry_options_set_layout(opts, not_utf8), INV, "UTF-8");
  CHECK_STATUS(registry_options_set_layout(opts, "gozero"), INV, "\"gozero\" is not a layout");
  CHECK_OK(registry_options_set_layout(opts, "seed"));
  CHECK_STATUS(registry_options_set_request_timeout_ms(NULL, 100), INV, "opts");
  CHECK_STATUS(registry_options_set_request_timeout_ms(opts, 1), INV, "timeout");
  CHECK_STATUS(registry_options_set_heal_deleted_keys(NULL, true), INV, "opts");
  CHECK_OK(registry_options_set_heal_deleted_keys(opts, true));

  /* Values are checked when the client is made, naming the option. */
  registry_client *client = NULL;
  CHECK_OK(registry_options_set_prefix(opts, "no-slash"));
  CHECK_STATUS(registry_client_new(opts, &client), INV, "prefix");
  CHECK(client == NULL);
  CHECK_OK(registry_options_set_prefix(opts, ""));
  CHECK_OK(registry_options_set_endpoints(opts, "127.0.0.1:2379"));
  CHECK_STATUS(registry_client_new(opts, &client), INV, "endpoints");
  CHECK(client == NULL);
  registry_options_free(opts);
  registry_options_free(NULL);
}

static void unreachable_etcd(void) {
  /* Nobody listens on port 1: fails fast and clearly, never hangs. */
  registry_options *opts = registry_options_new();
  CHECK_OK(registry_options_set_endpoints(opts, "http://127.0.0.1:1"));
  CHECK_OK(registry_options_set_request_timeout_ms(opts, 500));
  registry_client *client = NULL;
  double start = now_secs();
  registry_status st = registry_client_new(opts, &client);
  CHECK(st == REGISTRY_UNAVAILABLE || st == REGISTRY_TIMEOUT);
  CHECK(strlen(registry_last_error()) > 0);
  CHECK(now_secs() - start < 5.0);
  CHECK(client == NULL);
  registry_options_free(opts);
}

static void service_functions(void) {
  /* 11-13: registry_service_* */
  registry_service *svc = NULL;
  CHECK_STATUS(registry_service_new(NULL, "h:1", &svc), INV, "name");
  CHECK_STATUS(registry_service_new("a", NULL, &svc), INV, "addr");
  CHECK_STATUS(registry_service_new("a", "h:1", NULL), INV, "service_out");
  CHECK_STATUS(registry_service_new(not_utf8, "h:1", &svc), INV, "UTF-8");
  CHECK_STATUS(registry_service_new("../etc", "h:1", &svc), INV, "name");
  CHECK_STATUS(registry_service_new("a", "h:99999", &svc), INV, "addr");
  CHECK_STATUS(registry_service_new("a", "no-port", &svc), INV, "addr");
  CHECK(svc == NULL);
  CHECK_OK(registry_service_new("a", "h:1", &svc));
  CHECK_STATUS(registry_service_set(NULL, "env", "dev"), INV, "service");
  CHECK_STATUS(registry_service_set(svc, NULL, "dev"), INV, "key");
  CHECK_STATUS(registry_service_set(svc, "env", NULL), INV, "value");
  CHECK_STATUS(registry_service_set(svc, "env", not_utf8), INV, "UTF-8");
  CHECK_STATUS(registry_service_set(svc, "ip", "1.2.3.4"), INV, "ip");
  CHECK_STATUS(registry_service_set(svc, "a/b", "x"), INV, "a/b");
  CHECK_OK(registry_service_set(svc, "weight", "100"));
  registry_service_free(svc);
  registry_service_free(NULL);
}

struct worker {
  registry_client *client;
  int index;
  int failures;
};

static void *register_in_thread(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 20; i++) {
    char addr[64];
    snprintf(addr, sizeof addr, "10.9.%d.%d:80", w->index, i + 1);
    registry_service *svc = NULL;
    registry_registration *reg = NULL;
    if (registry_service_new("threads", addr, &svc) != REGISTRY_OK ||
        registry_register(w->client, svc, &reg) != REGISTRY_OK ||
        registry_deregister(reg) != REGISTRY_OK) {
      w->failures++;
    }
    registry_service_free(svc);
  }
  return NULL;
}

static void fork_child_checks(registry_client *client, registry_service *svc) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    registry_registration *r = NULL;
    registry_status st = registry_register(client, svc, &r);
    if (st != REGISTRY_FORKED || strstr(registry_last_error(), "fork") == NULL) _exit(10);
    registry_client *mine = NULL;
    if (registry_client_new(NULL, &mine) != REGISTRY_OK) _exit(11);
    registry_service *s = NULL;
    if (registry_service_new("forked", "127.0.0.1:5000", &s) != REGISTRY_OK) _exit(12);
    if (registry_register(mine, s, &r) != REGISTRY_OK) _exit(13);
    if (registry_deregister(r) != REGISTRY_OK) _exit(14);
    registry_service_free(s);
    registry_client_free(mine);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "fork child failed: wait status %d\n", status);
    check_failures++;
  }
}

static void client_functions(void) {
  /* 14-28: client, registration, batch, events */
  registry_client *client = NULL;
  CHECK_STATUS(registry_client_new(NULL, NULL), INV, "client_out");
  CHECK_OK(registry_client_new(NULL, &client)); /* REGISTRY_ENDPOINTS */
  CHECK(client != NULL);

  int64_t lease = 0;
  uint32_t ttl = 0;
  CHECK_STATUS(registry_client_lease_id(NULL, &lease), INV, "client");
  CHECK_STATUS(registry_client_lease_id(client, NULL), INV, "lease_out");
  CHECK_OK(registry_client_lease_id(client, &lease));
  CHECK(lease == 0); /* no lease before the first registration */
  CHECK_STATUS(registry_client_granted_ttl(NULL, &ttl), INV, "client");
  CHECK_STATUS(registry_client_granted_ttl(client, NULL), INV, "ttl_out");
  CHECK_OK(registry_client_granted_ttl(client, &ttl));
  CHECK(ttl == 0);
  CHECK_STATUS(registry_client_set_event_callback(NULL, NULL, NULL), INV, "client");
  CHECK_STATUS(registry_client_set_event_callback(client, NULL, NULL), INV, "callback");

  registry_service *svc = NULL;
  CHECK_OK(registry_service_new("badinput", "127.0.0.1:4000", &svc));
  char key[64];
  size_t needed = 0;
  CHECK_STATUS(registry_client_key_of(NULL, svc, key, sizeof key, &needed), INV, "client");
  CHECK_STATUS(registry_client_key_of(client, NULL, key, sizeof key, &needed), INV, "service");
  CHECK_STATUS(registry_client_key_of(client, svc, key, 4, &needed), INV, "too small");
  CHECK(needed == strlen("/badinput/127.0.0.1:4000") + 1);
  CHECK_OK(registry_client_key_of(client, svc, key, sizeof key, NULL));
  CHECK(strcmp(key, "/badinput/127.0.0.1:4000") == 0);

  registry_registration *reg = NULL;
  CHECK_STATUS(registry_register(NULL, svc, &reg), INV, "client");
  CHECK_STATUS(registry_register(client, NULL, &reg), INV, "service");
  CHECK_STATUS(registry_register(client, svc, NULL), INV, "registration_out");
  CHECK(reg == NULL);
  registry_service *heavy = NULL;
  CHECK_OK(registry_service_new("badinput", "127.0.0.1:4001", &heavy));
  CHECK_OK(registry_service_set(heavy, "weight", "heavy"));
  CHECK_STATUS(registry_register(client, heavy, &reg), INV, "weight");
  registry_service_free(heavy);

  CHECK_OK(registry_register(client, svc, &reg));
  CHECK(reg != NULL);
  CHECK_OK(registry_client_lease_id(client, &lease));
  CHECK(lease != 0);
  CHECK_OK(registry_client_granted_ttl(client, &ttl));
  CHECK(ttl >= 2);
  registry_registration *again = NULL;
  CHECK_STATUS(registry_register(client, svc, &again), REGISTRY_ALREADY_REGISTERED, "/badinput/127.0.0.1:4000");
  CHECK(again == NULL);
  CHECK(registry_registration_key(NULL) == NULL);
  CHECK(strcmp(registry_registration_key(reg), "/badinput/127.0.0.1:4000") == 0);

  const char *keys[] = {"weight", "appVersion"};
  const char *values[] = {"0", "v2"};
  const char *bad_values[] = {"-1", "v2"};
  const char *null_values[] = {NULL, "v2"};
  CHECK_STATUS(registry_update(NULL, keys, values, 2), INV, "registration");
  CHECK_STATUS(registry_update(reg, NULL, values, 2), INV, "keys");
  CHECK_STATUS(registry_update(reg, keys, NULL, 2), INV, "values");
  CHECK_STATUS(registry_update(reg, keys, null_values, 2), INV, "values[0]");
  CHECK_STATUS(registry_update(reg, keys, bad_values, 2), INV, "weight");
  CHECK_OK(registry_update(reg, keys, values, 2));
  CHECK_OK(registry_update(reg, NULL, NULL, 0));

  /* Batch: NULL entries are named; an empty batch is fine. */
  registry_service *batch[3] = {NULL, NULL, NULL};
  registry_registration *out[3] = {NULL, NULL, NULL};
  CHECK_OK(registry_service_new("batch", "10.0.0.1:1", &batch[0]));
  CHECK_OK(registry_service_new("batch", "10.0.0.1:2", &batch[1]));
  CHECK_STATUS(registry_register_many(NULL, (const registry_service *const *)batch, 2, out), INV, "client");
  CHECK_STATUS(registry_register_many(client, NULL, 2, out), INV, "services");
  CHECK_STATUS(registry_register_many(client, (const registry_service *const *)batch, 2, NULL), INV, "registrations_out");
  CHECK_STATUS(registry_register_many(client, (const registry_service *const *)batch, 3, out), INV, "services[2]");
  CHECK(out[0] == NULL);
  CHECK_OK(registry_register_many(client, NULL, 0, NULL));
  CHECK_OK(registry_register_many(client, (const registry_service *const *)batch, 2, out));
  CHECK(out[0] != NULL && out[1] != NULL);
  CHECK_OK(registry_deregister(out[0]));
  registry_registration_free(out[1]);
  registry_registration_free(NULL);
  registry_service_free(batch[0]);
  registry_service_free(batch[1]);

  /* Many threads at once on one client. */
  pthread_t threads[8];
  struct worker workers[8];
  for (int i = 0; i < 8; i++) {
    workers[i].client = client;
    workers[i].index = i;
    workers[i].failures = 0;
    CHECK(pthread_create(&threads[i], NULL, register_in_thread, &workers[i]) == 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].failures == 0);
  }

  /* fork(): the parent's client refuses clearly in the child; a new one works.
   * Skipped under valgrind, whose leak check in a fork()ed (not exec()ed)
   * child counts the parent's thread-local memory as lost; the plain and
   * sanitizer runs cover it. */
  if (getenv("REGISTRY_TEST_SKIP_FORK") == NULL) fork_child_checks(client, svc);

  /* Metrics: NULLs named, an unknown sample named, the text freed by the library. */
  char *text = NULL;
  double value = -1;
  CHECK_STATUS(registry_client_metrics_text(NULL, &text), INV, "client");
  CHECK_STATUS(registry_client_metrics_text(client, NULL), INV, "text_out");
  CHECK_STATUS(registry_client_metric(client, NULL, &value), INV, "sample");
  CHECK_STATUS(registry_client_metric(client, "libregistry_registrations", NULL), INV,
               "value_out");
  CHECK_STATUS(registry_client_metric(client, "libregistry_nope", &value), REGISTRY_NOT_FOUND,
               "libregistry_nope");
  CHECK(value == -1);
  registry_string_free(NULL);

  /* Closing: NULL is named, twice is harmless, then every call says closed. */
  CHECK_STATUS(registry_client_close(NULL), INV, "client");
  CHECK_OK(registry_client_close(client));
  CHECK_OK(registry_client_close(client));
  /* The final counts stay readable after close. */
  CHECK_OK(registry_client_metrics_text(client, &text));
  CHECK(text != NULL && strstr(text, "# TYPE libregistry_registrations gauge\n") != NULL);
  registry_string_free(text);
  registry_registration *late = NULL;
  CHECK_STATUS(registry_register(client, svc, &late), REGISTRY_CLOSED, "closed");
  CHECK(late == NULL);

  /* Use after the client is freed: a status, not a crash. */
  registry_client_free(client);
  registry_client_free(NULL);
  CHECK_STATUS(registry_update(reg, keys, values, 2), REGISTRY_CLOSED, "closed");
  CHECK_STATUS(registry_deregister(reg), REGISTRY_CLOSED, "closed");
  CHECK_STATUS(registry_deregister(NULL), INV, "registration");
  registry_service_free(svc);
}

int main(void) {
  version_and_errors();
  options_functions();
  unreachable_etcd();
  service_functions();
  client_functions();
  return check_report("test_bad_input");
}
