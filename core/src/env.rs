//! Reading `REGISTRY_*` environment variables: one rule for every module.

/// A variable's value, with an empty or blank value treated as unset.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
