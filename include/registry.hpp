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

#include <cstdint>
#include <initializer_list>
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
  /// Deadline of each request to etcd.
  options &request_timeout_ms(uint32_t ms) {
    detail::check(registry_options_set_request_timeout_ms(raw_, ms));
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

  /// Deletes the key now; throws if etcd did not confirm.
  void deregister() {
    if (raw_ != nullptr) detail::check(registry_deregister(std::exchange(raw_, nullptr)));
  }

 private:
  registry_registration *raw_;
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

  registry_client *raw() const noexcept { return raw_; }

 private:
  registry_client *raw_ = nullptr;
};

}  // namespace registry

#endif  // LIBREGISTRY_REGISTRY_HPP
