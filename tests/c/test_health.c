/*
 * Health-gated registration and drain through the C ABI: a service with a
 * tcp:// check on a socket this program listens on is registered, withdrawn
 * when the socket closes, reinstated when it listens again; withdraw and
 * restore by hand; the events with their reasons; bad input named. Needs
 * REGISTRY_ENDPOINTS pointing at a live etcd.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "wait.h"

#define INV REGISTRY_INVALID_ARGUMENT

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int withdrawn = 0, reinstated = 0;
static char last_reason[512];

static void on_event(void *userdata, const registry_event *event) {
  (void)userdata;
  pthread_mutex_lock(&lock);
  if (event->kind == REGISTRY_EVENT_WITHDRAWN) withdrawn++;
  if (event->kind == REGISTRY_EVENT_REINSTATED) reinstated++;
  if (event->reason != NULL) snprintf(last_reason, sizeof last_reason, "%s", event->reason);
  pthread_mutex_unlock(&lock);
}

/* Waits up to 5 s for *counter to reach want. */
static int wait_for(int *counter, int want) { return wait_counter(&lock, counter, want); }

/* A listening socket on 127.0.0.1:port (0: any), or -1. */
static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in at = {0};
  at.sin_family = AF_INET;
  at.sin_port = htons((unsigned short)port);
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int port_of(int fd) {
  struct sockaddr_in at;
  socklen_t len = sizeof at;
  getsockname(fd, (struct sockaddr *)&at, &len);
  return ntohs(at.sin_port);
}

/* How many instances of `name` etcd holds now. */
static size_t instances(registry_client *client, const char *name) {
  registry_instance_list *list = NULL;
  CHECK_OK(registry_discover(client, name, &list));
  size_t n = registry_instance_list_len(list);
  registry_instance_list_free(list);
  return n;
}

int main(void) {
  registry_client *client = NULL;
  CHECK_OK(registry_client_new(NULL, &client));
  if (!client) return check_report("test_health");
  CHECK_OK(registry_client_set_event_callback(client, on_event, NULL));

  /* Bad checks are refused when set, naming what is wrong. */
  registry_service *svc = NULL;
  CHECK_OK(registry_service_new("healthc", "127.0.0.1:4500", &svc));
  CHECK_STATUS(registry_service_set_check(NULL, "tcp://127.0.0.1:1", 0, 0, 0, 0), INV, "service");
  CHECK_STATUS(registry_service_set_check(svc, NULL, 0, 0, 0, 0), INV, "url");
  CHECK_STATUS(registry_service_set_check(svc, "ftp://127.0.0.1:1", 0, 0, 0, 0), INV, "scheme");
  CHECK_STATUS(registry_service_set_check(svc, "127.0.0.1:1", 0, 0, 0, 0), INV, "tcp://HOST:PORT");
  CHECK_STATUS(registry_service_set_check(svc, "tcp://127.0.0.1:1", 5, 0, 0, 0), INV,
               "check interval");

  /* Registered once the socket listens; withdrawn when it closes; back when it listens again. */
  int fd = listen_on(0);
  CHECK(fd >= 0);
  int port = port_of(fd);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
  CHECK_OK(registry_service_set_check(svc, url, 50, 50, 2, 1));
  registry_registration *reg = NULL;
  CHECK_OK(registry_register(client, svc, &reg));
  registry_service_free(svc);
  CHECK(instances(client, "healthc") == 1);
  CHECK(!registry_registration_is_withdrawn(reg));

  close(fd);
  CHECK(wait_for(&withdrawn, 1));
  CHECK(registry_registration_is_withdrawn(reg));
  CHECK(instances(client, "healthc") == 0);
  pthread_mutex_lock(&lock);
  CHECK(strstr(last_reason, url) != NULL && strstr(last_reason, "failed 2 times") != NULL);
  pthread_mutex_unlock(&lock);

  fd = listen_on(port);
  CHECK(fd >= 0);
  CHECK(wait_for(&reinstated, 1));
  CHECK(!registry_registration_is_withdrawn(reg));
  CHECK(instances(client, "healthc") == 1);

  /* A drain by hand: out until restored, the passing check notwithstanding. */
  CHECK_OK(registry_registration_withdraw(reg));
  CHECK_OK(registry_registration_withdraw(reg)); /* again: nothing to do */
  CHECK(wait_for(&withdrawn, 2));
  sleep_ms(300);
  CHECK(registry_registration_is_withdrawn(reg));
  CHECK(instances(client, "healthc") == 0);
  pthread_mutex_lock(&lock);
  CHECK(strcmp(last_reason, "withdrawn by the application") == 0);
  pthread_mutex_unlock(&lock);
  CHECK_OK(registry_registration_restore(reg));
  CHECK(instances(client, "healthc") == 1);
  CHECK(wait_for(&reinstated, 2));

  CHECK_STATUS(registry_registration_withdraw(NULL), INV, "registration");
  CHECK_STATUS(registry_registration_restore(NULL), INV, "registration");
  CHECK(!registry_registration_is_withdrawn(NULL));

  CHECK_OK(registry_deregister(reg));
  close(fd);
  registry_client_free(client);
  return check_report("test_health");
}
