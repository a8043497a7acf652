// libregistry: a small header-only C++17 RAII wrapper over registry.h.
//
//   registry::client client;                                   // REGISTRY_* or defaults
//   auto reg = client.register_service(
//       registry::service("micro", "127.0.0.1:4000").set("region", "beijing"));
//   // ... serve; reg deregisters in its destructor, client revokes its lease in its own.
//
// Errors are thrown as registry::error, which carries the registry_status.
// Clients and registrations are move-only; a client is thread-safe.
#ifndef LIBREGISTRY_REGISTRY_HPP
#define LIBREGISTRY_REGISTRY_HPP

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "registry.h"

namespace registry {

/// A failed libregistry call: what() is registry_last_error(), status() the code.
class error : public std::runtime_error {
 public:
  error(registry_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  registry_status status() const noexcept { return status_; }

 private:
  registry_status status_;
};

namespace detail {
inline void check(registry_status status) {
  if (status != REGISTRY_OK) {
    throw error(status, std::string(registry_status_name(static_cast<int>(status))) + ": " +
                            registry_last_error());
  }
}
}  // namespace detail

/// The library's version, e.g. "0.1.0".
inline std::string version() { return registry_version(); }

/// Client options; unset ones fall back to REGISTRY_* variables, then defaults.
class options {
 public:
  options() : raw_(registry_options_new()) {
    if (raw_ == nullptr) throw std::bad_alloc();
  }
  ~options() { registry_options_free(raw_); }
  options(const options &) = delete;
  options &operator=(const options &) = delete;
  options(options &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}

  /// Comma-separated http:// or https:// URLs.
  options &endpoints(const std::string &csv) {
    detail::check(registry_options_set_endpoints(raw_, csv.c_str()));
    return *this;
  }
  /// Lease TTL in seconds (at least 2).
  options &ttl_secs(uint32_t ttl) {
    detail::check(registry_options_set_ttl(raw_, ttl));
    return *this;
  }
  /// Key prefix: "" or "/a/b".
  options &prefix(const std::string &prefix) {
    detail::check(registry_options_set_prefix(raw_, prefix.c_str()));
    return *this;
  }
  /// Key layout and value format: "seed" (default), "go-zero" or "kratos".
  options &layout(const std::string &layout) {
    detail::check(registry_options_set_layout(raw_, layout.c_str()));
    return *this;
  }
  /// Deadline of each request to etcd.
  options &request_timeout_ms(uint32_t ms) {
    detail::check(registry_options_set_request_timeout_ms(raw_, ms));
    return *this;
  }
  /// TLS for https:// endpoints: the CA file, and for mutual TLS a client certificate and key.
  options &tls(const std::string &ca_file, const std::string &cert_file = "",
               const std::string &key_file = "") {
    auto opt = [](const std::string &s) { return s.empty() ? nullptr : s.c_str(); };
    detail::check(registry_options_set_tls(raw_, ca_file.c_str(), opt(cert_file), opt(key_file)));
    return *this;
  }
  /// etcd username and password (re-authenticates by itself when tokens expire).
  options &auth(const std::string &user, const std::string &password) {
    detail::check(registry_options_set_auth(raw_, user.c_str(), password.c_str()));
    return *this;
  }
  const registry_options *raw() const noexcept { return raw_; }

 private:
  registry_options *raw_;
};

/// A service to register: name, "host:port" and metadata.
class service {
 public:
  service(const std::string &name, const std::string &addr) {
    detail::check(registry_service_new(name.c_str(), addr.c_str(), &raw_));
  }
  ~service() { registry_service_free(raw_); }
  service(const service &) = delete;
  service &operator=(const service &) = delete;
  service(service &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}

  /// env, region, zone, scheme, weight, deployment, appVersion, buildTime or any extra key.
  service &set(const std::string &key, const std::string &value) & {
    detail::check(registry_service_set(raw_, key.c_str(), value.c_str()));
    return *this;
  }
  service &&set(const std::string &key, const std::string &value) && {
    set(key, value);
    return std::move(*this);
  }

  /// A health check ("tcp://", "http://HOST:PORT/PATH" or "grpc://"): registered once
  /// it passes, withdrawn after `fails` failures, back after `passes` passes (0: default).
  service &check(const std::string &url, uint32_t interval_ms = 0, uint32_t timeout_ms = 0,
                 uint32_t fails = 0, uint32_t passes = 0) & {
    detail::check(registry_service_set_check(raw_, url.c_str(), interval_ms, timeout_ms, fails, passes));
    return *this;
  }
  service &&check(const std::string &url, uint32_t interval_ms = 0, uint32_t timeout_ms = 0,
                  uint32_t fails = 0, uint32_t passes = 0) && {
    check(url, interval_ms, timeout_ms, fails, passes);
    return std::move(*this);
  }
  const registry_service *raw() const noexcept { return raw_; }

 private:
  registry_service *raw_ = nullptr;
};

/// A registered service; deregisters in its destructor (errors ignored there).
class registration {
 public:
  explicit registration(registry_registration *raw) noexcept : raw_(raw) {}
  ~registration() {
    if (raw_ != nullptr) registry_deregister(raw_);
  }
  registration(const registration &) = delete;
  registration &operator=(const registration &) = delete;
  registration(registration &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  registration &operator=(registration &&other) noexcept {
    if (this != &other) {
      if (raw_ != nullptr) registry_deregister(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }

  /// The etcd key, e.g. "/micro/127.0.0.1:4000" ("" once deregistered).
  std::string key() const { return raw_ != nullptr ? registry_registration_key(raw_) : ""; }

  /// Changes metadata in place (the key never disappears): {{"weight", "0"}} drains.
  void update(std::initializer_list<std::pair<std::string, std::string>> changes) {
    std::vector<const char *> keys, values;
    for (const auto &kv : changes) {
      keys.push_back(kv.first.c_str());
      values.push_back(kv.second.c_str());
    }
    detail::check(registry_update(raw_, keys.data(), values.data(), keys.size()));
  }

  /// Takes the key out of etcd but keeps the registration (drain) until restore().
  void withdraw() { detail::check(registry_registration_withdraw(raw_)); }

  /// Writes a withdrawn registration back.
  void restore() { detail::check(registry_registration_restore(raw_)); }

  /// Whether it is withdrawn (by withdraw() or a failing health check).
  bool is_withdrawn() const { return registry_registration_is_withdrawn(raw_); }

  /// Deletes the key now; throws if etcd did not confirm.
  void deregister() {
    if (raw_ != nullptr) detail::check(registry_deregister(std::exchange(raw_, nullptr)));
  }

 private:
  registry_registration *raw_;
};

/// A provider instance found by discovery.
struct instance {
  std::string key;
  std::string name;
  std::string addr;
  std::map<std::string, std::string> metadata;  // values as text ("100" for a weight)

  /// A metadata entry, if present.
  std::optional<std::string> get(const std::string &k) const {
    auto it = metadata.find(k);
    if (it == metadata.end()) return std::nullopt;
    return it->second;
  }
};

namespace detail {
inline instance read_instance(const registry_instance_list *list, size_t i) {
  instance inst{registry_instance_list_key(list, i), registry_instance_list_name(list, i),
                registry_instance_list_addr(list, i), {}};
  for (size_t j = 0; j < registry_instance_list_metadata_len(list, i); j++) {
    const char *k = registry_instance_list_metadata_key(list, i, j);
    inst.metadata[k] = registry_instance_list_get(list, i, k);
  }
  return inst;
}

/// Converts and frees a list.
inline std::vector<instance> take_list(registry_instance_list *list) {
  std::vector<instance> out;
  for (size_t i = 0; i < registry_instance_list_len(list); i++) out.push_back(read_instance(list, i));
  registry_instance_list_free(list);
  return out;
}
}  // namespace detail

/// A live cache of one service's instances; stops in its destructor.
class watcher {
 public:
  using callback = std::function<void(registry_change_kind, const instance &)>;

  watcher(registry_client *client, const std::string &name, callback on_change)
      : on_change_(on_change ? std::make_unique<callback>(std::move(on_change)) : nullptr) {
    detail::check(registry_watch(client, name.c_str(), on_change_ ? &watcher::trampoline : nullptr,
                                 on_change_.get(), &raw_));
  }
  ~watcher() { registry_watcher_free(raw_); }
  watcher(const watcher &) = delete;
  watcher &operator=(const watcher &) = delete;
  watcher(watcher &&other) noexcept
      : on_change_(std::move(other.on_change_)), raw_(std::exchange(other.raw_, nullptr)) {}

  /// The cached instances, sorted by key; never waits on the network.
  std::vector<instance> instances() const {
    registry_instance_list *list = nullptr;
    detail::check(registry_watcher_snapshot(raw_, &list));
    return detail::take_list(list);
  }

  /// An address picked by weight and zone, or nullopt when none qualifies.
  std::optional<std::string> pick() const {
    char buf[300];
    size_t needed = 0;
    registry_status st = registry_watcher_pick(raw_, buf, sizeof buf, &needed);
    if (st == REGISTRY_NOT_FOUND) return std::nullopt;
    if (st == REGISTRY_INVALID_ARGUMENT && needed > sizeof buf) {
      std::string big(needed, '\0');
      detail::check(registry_watcher_pick(raw_, big.data(), big.size(), nullptr));
      big.resize(needed - 1);
      return big;
    }
    detail::check(st);
    return std::string(buf);
  }

  /// The next (squashed) change, waiting up to `timeout`; nullopt when none
  /// came. Only for a watcher made without a callback.
  std::optional<std::pair<registry_change_kind, instance>> next_change(std::chrono::milliseconds timeout) const {
    registry_change_kind kind;
    registry_instance_list *list = nullptr;
    auto ms = static_cast<uint32_t>(std::min<std::chrono::milliseconds::rep>(timeout.count(), UINT32_MAX));
    registry_status st = registry_watcher_next_change(raw_, ms, &kind, &list);
    if (st == REGISTRY_TIMEOUT) return std::nullopt;
    detail::check(st);
    auto instances = detail::take_list(list);
    return std::make_pair(kind, std::move(instances.at(0)));
  }

  /// Zone and region preferred, env and deployment required ("" for none).
  void set_policy(const std::string &zone, const std::string &region, const std::string &env = "",
                  const std::string &deployment = "", bool round_robin = false) {
    auto opt = [](const std::string &s) { return s.empty() ? nullptr : s.c_str(); };
    detail::check(registry_watcher_set_policy(raw_, opt(zone), opt(region), opt(env), opt(deployment),
                                              round_robin));
  }

 private:
  static void trampoline(void *userdata, const registry_change *change) {
    try {
      (*static_cast<callback *>(userdata))(change->kind, detail::read_instance(change->instance, 0));
    } catch (...) {
      // An exception must not unwind into the library's thread.
    }
  }

  std::unique_ptr<callback> on_change_;
  registry_watcher *raw_ = nullptr;
};

/// One etcd connection and lease; revokes the lease in its destructor.
class client {
 public:
  /// Defaults and REGISTRY_* environment variables.
  client() { detail::check(registry_client_new(nullptr, &raw_)); }
  explicit client(const options &opts) { detail::check(registry_client_new(opts.raw(), &raw_)); }
  ~client() { registry_client_free(raw_); }
  client(const client &) = delete;
  client &operator=(const client &) = delete;
  client(client &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}

  /// Registers `svc`; returns once etcd has confirmed.
  registration register_service(const service &svc) {
    registry_registration *reg = nullptr;
    detail::check(registry_register(raw_, svc.raw(), &reg));
    return registration(reg);
  }

  /// The current lease (0 while healing).
  int64_t lease_id() const {
    int64_t lease = 0;
    detail::check(registry_client_lease_id(raw_, &lease));
    return lease;
  }

  /// The client's metrics in Prometheus's text format.
  std::string metrics_text() const {
    char *text = nullptr;
    detail::check(registry_client_metrics_text(raw_, &text));
    std::string copy(text);
    registry_string_free(text);
    return copy;
  }

  /// One metric sample, e.g. "libregistry_registrations" or
  /// "libregistry_leases_lost_total{reason=\"expired\"}"; throws when unknown.
  double metric(const std::string &sample) const {
    double value = 0;
    detail::check(registry_client_metric(raw_, sample.c_str(), &value));
    return value;
  }

  /// Every instance of `name`, read once.
  std::vector<instance> discover(const std::string &name) const {
    registry_instance_list *list = nullptr;
    detail::check(registry_discover(raw_, name.c_str(), &list));
    return detail::take_list(list);
  }

  /// A watcher on `name`; `on_change` (optional) runs on a library thread.
  watcher watch(const std::string &name, watcher::callback on_change = {}) const {
    return watcher(raw_, name, std::move(on_change));
  }

  registry_client *raw() const noexcept { return raw_; }

 private:
  registry_client *raw_ = nullptr;
};

}  // namespace registry

#endif  // LIBREGISTRY_REGISTRY_HPP
