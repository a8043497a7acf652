/* Links against an installed libregistry and makes a real call into it. */
#include <stdio.h>
#include <string.h>

#include <registry.h>

int main(void) {
  registry_service *svc = NULL;
  if (registry_service_new("micro", "127.0.0.1:4000", &svc) != REGISTRY_OK) return 1;
  registry_service_free(svc);
  if (registry_service_new("../x", "127.0.0.1:4000", &svc) != REGISTRY_INVALID_ARGUMENT) return 2;
  printf("consumer linked libregistry %s\n", registry_version());
  return strlen(registry_last_error()) > 0 ? 0 : 3;
}
