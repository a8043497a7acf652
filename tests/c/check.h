/* Tiny assertion helpers shared by the C tests. */
#ifndef LIBREGISTRY_TEST_CHECK_H
#define LIBREGISTRY_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static int check_failures = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      check_failures++;                                                      \
    }                                                                        \
  } while (0)

/* A call must fail with `expected` and leave a message mentioning `word`. */
#define CHECK_STATUS(call, expected, word)                                   \
  do {                                                                       \
    registry_status got_ = (call);                                           \
    if (got_ != (expected)) {                                                \
      fprintf(stderr, "%s:%d: %s gave %s, expected %s (%s)\n", __FILE__,     \
              __LINE__, #call, registry_status_name((int)got_),              \
              registry_status_name((int)(expected)), registry_last_error()); \
      check_failures++;                                                      \
    } else if ((expected) != REGISTRY_OK &&                                  \
               strstr(registry_last_error(), (word)) == NULL) {              \
      fprintf(stderr, "%s:%d: message of %s lacks \"%s\": %s\n", __FILE__,   \
              __LINE__, #call, (word), registry_last_error());               \
      check_failures++;                                                      \
    }                                                                        \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, REGISTRY_OK, "")

static int check_report(const char *name) {
  if (check_failures) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
