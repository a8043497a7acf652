/*
 * A secured etcd through the C ABI: TLS, a wrong CA, mutual TLS, and auth
 * (good password, bad password, permission denied naming the key), plus
 * bad input to the security options. The driver passes endpoints and files
 * in TLS_ENDPOINT, MTLS_ENDPOINT, AUTH_ENDPOINT, CA_FILE, OTHER_CA,
 * CLIENT_CERT, CLIENT_KEY, USER and PASSWORD.
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#define INV REGISTRY_INVALID_ARGUMENT

static const char *need(const char *name) {
  const char *v = getenv(name);
  if (!v) {
    fprintf(stderr, "test_security: %s is not set\n", name);
    exit(2);
  }
  return v;
}

static registry_options *opts_for(const char *endpoint) {
  registry_options *opts = registry_options_new();
  CHECK_OK(registry_options_set_endpoints(opts, endpoint));
  CHECK_OK(registry_options_set_request_timeout_ms(opts, 2000));
  return opts;
}

static registry_status register_one(registry_client *client, const char *name) {
  registry_service *svc = NULL;
  registry_registration *reg = NULL;
  CHECK_OK(registry_service_new(name, "127.0.0.1:4000", &svc));
  registry_status st = registry_register(client, svc, &reg);
  registry_service_free(svc);
  registry_registration_free(reg);
  return st;
}

int main(void) {
  const char *ca = need("CA_FILE"), *other_ca = need("OTHER_CA");
  const char *cert = need("CLIENT_CERT"), *key = need("CLIENT_KEY");
  registry_client *client = NULL;

  /* Bad input to the security options. */
  registry_options *opts = registry_options_new();
  CHECK_STATUS(registry_options_set_tls(NULL, ca, NULL, NULL), INV, "opts");
  CHECK_STATUS(registry_options_set_tls(opts, NULL, NULL, NULL), INV, "ca_file");
  CHECK_STATUS(registry_options_set_tls(opts, ca, cert, NULL), INV, "key_file");
  CHECK_STATUS(registry_options_set_auth(NULL, "u", "p"), INV, "opts");
  CHECK_STATUS(registry_options_set_auth(opts, NULL, "p"), INV, "user");
  CHECK_STATUS(registry_options_set_auth(opts, "u", NULL), INV, "password");
  CHECK_STATUS(registry_options_set_auth(opts, "", "p"), INV, "user");
  CHECK_OK(registry_options_set_endpoints(opts, need("TLS_ENDPOINT")));
  CHECK_OK(registry_options_set_tls(opts, "/nonexistent/ca.pem", NULL, NULL));
  CHECK_STATUS(registry_client_new(opts, &client), INV, "ca_file");
  registry_options_free(opts);

  /* TLS with the right CA works; a wrong CA is a TLS error. */
  opts = opts_for(need("TLS_ENDPOINT"));
  CHECK_OK(registry_options_set_tls(opts, ca, NULL, NULL));
  CHECK_OK(registry_client_new(opts, &client));
  CHECK_OK(register_one(client, "micro"));
  registry_client_free(client);
  client = NULL;
  CHECK_OK(registry_options_set_tls(opts, other_ca, NULL, NULL));
  CHECK_STATUS(registry_client_new(opts, &client), REGISTRY_TLS_ERROR, "certificate");
  registry_options_free(opts);

  /* Mutual TLS: refused without a client certificate, fine with one. */
  opts = opts_for(need("MTLS_ENDPOINT"));
  CHECK_OK(registry_options_set_tls(opts, ca, NULL, NULL));
  registry_status st = registry_client_new(opts, &client);
  CHECK(st == REGISTRY_TLS_ERROR || st == REGISTRY_UNAVAILABLE);
  CHECK(client == NULL);
  CHECK_OK(registry_options_set_tls(opts, ca, cert, key));
  CHECK_OK(registry_client_new(opts, &client));
  CHECK_OK(register_one(client, "micro"));
  registry_client_free(client);
  client = NULL;
  registry_options_free(opts);

  /* Auth: a bad password, then the right one, then a name the role may not write. */
  opts = opts_for(need("AUTH_ENDPOINT"));
  CHECK_OK(registry_options_set_auth(opts, need("USER"), "not-the-password"));
  CHECK_STATUS(registry_client_new(opts, &client), REGISTRY_PERMISSION_DENIED, "authentication failed");
  CHECK_OK(registry_options_set_auth(opts, need("USER"), need("PASSWORD")));
  CHECK_OK(registry_client_new(opts, &client));
  CHECK_OK(register_one(client, "micro"));
  CHECK_STATUS(register_one(client, "payments"), REGISTRY_PERMISSION_DENIED, "/payments/127.0.0.1:4000");
  CHECK(strstr(registry_last_error(), need("PASSWORD")) == NULL);
  registry_client_free(client);
  registry_options_free(opts);
  return check_report("test_security");
}
