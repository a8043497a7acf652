/*
 * The go-zero and kratos layouts through the C ABI: registry_options_set_layout,
 * the keys each layout writes, what each refuses (naming the layout), and
 * discover reading each layout's values. Needs REGISTRY_ENDPOINTS pointing
 * at a live etcd; c_suite.rs checks the bytes etcd holds meanwhile.
 */
#include "check.h"

#define INV REGISTRY_INVALID_ARGUMENT

static registry_client *connect_in(const char *layout) {
  registry_options *opts = registry_options_new();
  registry_client *client = NULL;
  CHECK_OK(registry_options_set_layout(opts, layout));
  CHECK_OK(registry_options_set_ttl(opts, 5));
  CHECK_OK(registry_client_new(opts, &client));
  registry_options_free(opts);
  return client;
}

/* Registers name at addr with one metadata entry (key NULL: none); the expected status. */
static registry_registration *reg(registry_client *client, const char *name, const char *addr,
                                  const char *key, const char *value, registry_status want,
                                  const char *word) {
  registry_service *svc = NULL;
  registry_registration *r = NULL;
  CHECK_OK(registry_service_new(name, addr, &svc));
  if (key != NULL) CHECK_OK(registry_service_set(svc, key, value));
  CHECK_STATUS(registry_register(client, svc, &r), want, word);
  registry_service_free(svc);
  return r;
}

int main(void) {
  registry_client *gozero = connect_in("go-zero");
  registry_client *kratos = connect_in("kratos");
  if (!gozero || !kratos) return check_report("test_layouts");

  /* go-zero: {name}/{id}, the address alone; metadata refused, naming the layout. */
  registry_registration *a = reg(gozero, "greeter.rpc", "127.0.0.1:4000", NULL, NULL, REGISTRY_OK, "");
  registry_registration *b = reg(gozero, "greeter.rpc", "127.0.0.1:4001", "id", "7", REGISTRY_OK, "");
  CHECK(a && strcmp(registry_registration_key(a), "greeter.rpc/127.0.0.1:4000") == 0);
  CHECK(b && strcmp(registry_registration_key(b), "greeter.rpc/7") == 0);
  reg(gozero, "greeter.rpc", "127.0.0.1:4002", "zone", "z1", INV, "go-zero layout");
  const char *keys[] = {"weight"}, *values[] = {"0"};
  CHECK_STATUS(registry_update(a, keys, values, 1), INV, "go-zero layout");

  /* kratos: /microservices/{name}/{id}, every metadata value a string. */
  registry_registration *k = reg(kratos, "greeter", "127.0.0.1:9000", "weight", "300", REGISTRY_OK, "");
  CHECK(k && strcmp(registry_registration_key(k), "/microservices/greeter/127.0.0.1:9000") == 0);
  reg(kratos, "greeter", "127.0.0.1:9001", "scheme", "thrift", INV, "kratos layout");
  reg(kratos, "greeter", "127.0.0.1:9001", "id", "a/b", INV, "id");

  printf("STEP registered\n"); /* c_suite.rs reads etcd now */
  fflush(stdout);
  char line[16];
  if (fgets(line, sizeof line, stdin) == NULL) return 1;

  /* Discovery reads each layout's values. */
  registry_instance_list *list = NULL;
  CHECK_OK(registry_discover(gozero, "greeter.rpc", &list));
  CHECK(registry_instance_list_len(list) == 2);
  CHECK(strcmp(registry_instance_list_addr(list, 0), "127.0.0.1:4000") == 0);
  CHECK(strcmp(registry_instance_list_addr(list, 1), "127.0.0.1:4001") == 0);
  CHECK(registry_instance_list_get(list, 0, "weight") == NULL); /* nothing travels */
  registry_instance_list_free(list);
  CHECK_OK(registry_discover(kratos, "greeter", &list));
  CHECK(registry_instance_list_len(list) == 1);
  CHECK(strcmp(registry_instance_list_addr(list, 0), "127.0.0.1:9000") == 0);
  const char *weight = registry_instance_list_get(list, 0, "weight");
  CHECK(weight != NULL && strcmp(weight, "300") == 0);
  const char *id = registry_instance_list_get(list, 0, "id");
  CHECK(id != NULL && strcmp(id, "127.0.0.1:9000") == 0);
  registry_instance_list_free(list);
  /* A seed client finds neither. */
  registry_client *seed = connect_in("seed");
  CHECK_OK(registry_discover(seed, "greeter", &list));
  CHECK(registry_instance_list_len(list) == 0);
  registry_instance_list_free(list);

  CHECK_OK(registry_deregister(b));
  registry_registration_free(a); /* kept in etcd until its client is freed */
  registry_registration_free(k);
  registry_client_free(seed);
  registry_client_free(gozero);
  registry_client_free(kratos);
  return check_report("test_layouts");
}
