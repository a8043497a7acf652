/*
 * Metrics through the C ABI: register two services, then (STEP registered)
 * the driver revokes the client's lease from outside; the counters must
 * show one lease lost, one more granted and both keys written back, and
 * the Prometheus text must carry them.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "check.h"

static double metric(registry_client *client, const char *sample) {
  double value = -1;
  CHECK_OK(registry_client_metric(client, sample, &value));
  return value;
}

static double leases_lost(registry_client *client) {
  const char *reasons[] = {"expired", "not_found", "timeout", "stream_broken"};
  double sum = 0;
  char sample[96];
  for (int i = 0; i < 4; i++) {
    snprintf(sample, sizeof sample, "libregistry_leases_lost_total{reason=\"%s\"}", reasons[i]);
    sum += metric(client, sample);
  }
  return sum;
}

int main(void) {
  registry_client *client = NULL;
  CHECK_OK(registry_client_new(NULL, &client)); /* REGISTRY_ENDPOINTS, REGISTRY_TTL */
  if (!client) return check_report("test_metrics");
  registry_registration *regs[2] = {NULL, NULL};
  const char *addrs[2] = {"127.0.0.1:4000", "127.0.0.1:4001"};
  for (int i = 0; i < 2; i++) {
    registry_service *svc = NULL;
    CHECK_OK(registry_service_new("metered", addrs[i], &svc));
    CHECK_OK(registry_register(client, svc, &regs[i]));
    registry_service_free(svc);
  }
  CHECK(metric(client, "libregistry_registrations") == 2);
  CHECK(metric(client, "libregistry_lease_grants_total") == 1);
  CHECK(leases_lost(client) == 0);

  printf("STEP registered\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 3;

  /* Healing after the revoke: wait (up to 15 s) for the second grant and both keys. */
  for (int i = 0; i < 150; i++) {
    if (metric(client, "libregistry_keys_restored_total") >= 2) break;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  CHECK(leases_lost(client) == 1);
  CHECK(metric(client, "libregistry_lease_grants_total") == 2);
  CHECK(metric(client, "libregistry_keys_restored_total") == 2);
  CHECK(metric(client, "libregistry_outage_seconds_total") > 0);

  char *text = NULL;
  CHECK_OK(registry_client_metrics_text(client, &text));
  CHECK(text != NULL && strstr(text, "\nlibregistry_lease_grants_total 2\n") != NULL);
  CHECK(text != NULL && strstr(text, "\nlibregistry_keys_restored_total 2\n") != NULL);
  printf("%s", text ? text : "");
  registry_string_free(text);

  for (int i = 0; i < 2; i++) registry_registration_free(regs[i]);
  registry_client_free(client);
  return check_report("test_metrics");
}
