/* The header compiles when included twice. */
#include "registry.h"
#include "registry.h"

int main(void) { return registry_version() == NULL; }
