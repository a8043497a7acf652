// The seed's example service, from C++: registers `micro` at 127.0.0.1:4000
// with the seed's metadata until SIGINT or SIGTERM; the RAII wrapper
// deregisters and revokes the lease on the way out.
//
// Build: c++ -std=c++17 provider.cpp $(pkg-config --cflags --libs registry)
#include <csignal>
#include <iostream>

#include <unistd.h>

#include "registry.hpp"

static volatile std::sig_atomic_t stop = 0;

int main() {
  // Before registering: a signal that arrives early must still deregister.
  std::signal(SIGINT, [](int) { stop = 1; });
  std::signal(SIGTERM, [](int) { stop = 1; });
  try {
    registry::client client;  // REGISTRY_ENDPOINTS, REGISTRY_TTL, ...
    auto reg = client.register_service(registry::service("micro", "127.0.0.1:4000")
                                           .set("env", "dev")
                                           .set("region", "beijing")
                                           .set("zone", "zone1")
                                           .set("weight", "100")
                                           .set("deployment", "red")
                                           .set("appVersion", "ahkfasgasdf")
                                           .set("buildTime", "2020-10-14T10:00:00Z"));
    std::cout << "registered " << reg.key() << std::endl;
    while (!stop) sleep(1); /* a signal cuts the sleep short */

    reg.deregister();
    std::cout << "deregistered" << std::endl;
  } catch (const registry::error &e) {
    std::cerr << "provider: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
