// The C++ wrapper against a real etcd: register, discover, watch, pick,
// withdraw and restore, and errors as exceptions. Needs REGISTRY_ENDPOINTS.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "registry.hpp"

static int failures = 0;
#define EXPECT(cond)                                                    \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                       \
    }                                                                   \
  } while (0)

int main() {
  registry::client client;
  std::atomic<int> added{0}, removed{0};
  {
    auto a = client.register_service(registry::service("cpp", "10.0.0.1:1").set("zone", "z1").set("weight", "100"));
    auto b = client.register_service(registry::service("cpp", "10.0.0.2:1").set("zone", "z2"));
    EXPECT(a.key() == "/cpp/10.0.0.1:1");
    EXPECT(client.metric("libregistry_registrations") == 2);
    EXPECT(client.metrics_text().find("\nlibregistry_lease_grants_total 1\n") != std::string::npos);

    auto found = client.discover("cpp");
    EXPECT(found.size() == 2);
    EXPECT(found[0].addr == "10.0.0.1:1");
    EXPECT(found[0].get("zone") == std::optional<std::string>("z1"));
    EXPECT(!found[0].get("absent").has_value());

    auto watcher = client.watch("cpp", [&](registry_change_kind kind, const registry::instance &) {
      if (kind == REGISTRY_CHANGE_ADDED) added++;
      if (kind == REGISTRY_CHANGE_REMOVED) removed++;
    });
    watcher.set_policy("z2", "");
    for (int i = 0; i < 100; i++) EXPECT(watcher.pick() == std::optional<std::string>("10.0.0.2:1"));
    a.update({{"weight", "0"}});
    b.deregister();
    for (int i = 0; i < 500 && removed.load() < 1; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT(added.load() == 2);
    EXPECT(removed.load() == 1);
    EXPECT(watcher.instances().size() == 1);
    watcher.set_policy("", "");
    EXPECT(!watcher.pick().has_value());  // the only one left has weight 0
  }  // a deregisters here

  {
    // A drain: withdrawn (out of etcd, kept), then restored.
    auto c = client.register_service(registry::service("cpp_drain", "10.0.0.3:1"));
    c.withdraw();
    EXPECT(c.is_withdrawn());
    EXPECT(client.discover("cpp_drain").empty());
    c.restore();
    EXPECT(!c.is_withdrawn());
    EXPECT(client.discover("cpp_drain").size() == 1);
  }
  {
    // The go-zero layout: {name}/{addr} holding the address, found in that layout only.
    registry::options opts;
    registry::client gozero(opts.layout("go-zero"));
    auto g = gozero.register_service(registry::service("cpp.rpc", "10.0.0.5:1"));
    EXPECT(g.key() == "cpp.rpc/10.0.0.5:1");
    EXPECT(gozero.discover("cpp.rpc").size() == 1);
    EXPECT(client.discover("cpp.rpc").empty());
    try {
      registry::options().layout("gozero");
      EXPECT(false);
    } catch (const registry::error &e) {
      EXPECT(e.status() == REGISTRY_INVALID_ARGUMENT);
      EXPECT(std::string(e.what()).find("\"gozero\" is not a layout") != std::string::npos);
    }
  }
  try {
    registry::service("cpp", "10.0.0.4:1").check("http://10.0.0.4:1/healthz", 5);
    EXPECT(false);
  } catch (const registry::error &e) {
    EXPECT(e.status() == REGISTRY_INVALID_ARGUMENT);
    EXPECT(std::string(e.what()).find("check interval") != std::string::npos);
  }
  try {
    registry::service bad("../x", "h:1");
    EXPECT(false);
  } catch (const registry::error &e) {
    EXPECT(e.status() == REGISTRY_INVALID_ARGUMENT);
    EXPECT(std::string(e.what()).find("name") != std::string::npos);
  }
  try {
    client.metric("libregistry_nope");
    EXPECT(false);
  } catch (const registry::error &e) {
    EXPECT(e.status() == REGISTRY_NOT_FOUND);
    EXPECT(std::string(e.what()).find("libregistry_nope") != std::string::npos);
  }
  EXPECT(client.discover("cpp").empty());
  if (failures) return 1;
  std::printf("test_cpp: all checks passed\n");
  return 0;
}
