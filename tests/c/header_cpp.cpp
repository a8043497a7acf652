// The C header compiles as C++, and the C++ wrapper compiles (twice included).
#include "registry.h"
#include "registry.hpp"
#include "registry.hpp"

int main() { return registry::version().empty() ? 1 : 0; }
