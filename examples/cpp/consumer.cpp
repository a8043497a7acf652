// The consumer side, from C++: lists the instances of `micro` (or the
// service named on the command line) once, then watches it and prints each
// change and where the next request would go, until SIGINT or SIGTERM.
//
// Build: c++ -std=c++17 consumer.cpp $(pkg-config --cflags --libs registry)
// Run:   REGISTRY_ENDPOINTS=http://127.0.0.1:2379 ./a.out [SERVICE]
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>

#include "registry.hpp"

static volatile std::sig_atomic_t stop = 0;

static const char *kind_name(registry_change_kind kind) {
  switch (kind) {
    case REGISTRY_CHANGE_ADDED: return "added";
    case REGISTRY_CHANGE_UPDATED: return "updated";
    case REGISTRY_CHANGE_REMOVED: return "removed";
  }
  return "changed";
}

int main(int argc, char **argv) {
  const std::string service = argc > 1 ? argv[1] : "micro";
  std::signal(SIGINT, [](int) { stop = 1; });
  std::signal(SIGTERM, [](int) { stop = 1; });
  try {
    registry::client client;  // REGISTRY_ENDPOINTS, ...; holds no lease: it registers nothing

    auto found = client.discover(service);  // one read
    std::cout << service << ": " << found.size() << " instance(s)\n";
    for (const auto &i : found)
      std::cout << "  " << i.addr << " (zone " << i.get("zone").value_or("-") << ", weight "
                << i.get("weight").value_or("-") << ")\n";

    auto watcher = client.watch(service);  // a live cache; no callback: this thread reads the changes
    std::cout << "watching " << service << std::endl;
    while (!stop) {
      auto change = watcher.next_change(std::chrono::milliseconds(500));  // wakes up to check `stop`
      if (!change) continue;
      const auto &[kind, instance] = *change;
      std::cout << kind_name(kind) << " " << instance.addr << " (zone " << instance.get("zone").value_or("-")
                << ", weight " << instance.get("weight").value_or("-") << "); next request goes to "
                << watcher.pick().value_or("nobody") << std::endl;
    }
  } catch (const registry::error &e) {
    std::cerr << "consumer: " << e.what() << std::endl;
    return 1;
  }
  std::cout << "stopped" << std::endl;
  return 0;
}
