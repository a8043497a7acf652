//! `registry list` and `registry get`: one read of a service's instances.

use libregistry::Client;

use crate::args::Format;
use crate::exit::Failure;
use crate::output;

/// Prints the instances of `name`.
pub async fn list(client: &Client, name: &str, format: Format) -> Result<(), Failure> {
    let found = client.discover(name).await?;
    print(&output::instances(&found, format))
}

/// Prints the instance of service `name` registered under `key`.
pub async fn get(client: &Client, name: &str, key: &str, format: Format) -> Result<(), Failure> {
    let found = client.discover(name).await?;
    match found.into_iter().find(|instance| instance.key == key) {
        Some(instance) => print(&output::instances(&[instance], format)),
        None => Err(Failure::NotFound(format!(
            "no instance is registered under {key}"
        ))),
    }
}

/// The service name in `key`, which must be `{prefix}/{name}/{addr}`.
pub fn name_in<'k>(key: &'k str, prefix: &str) -> Result<&'k str, Failure> {
    let refused = || {
        Failure::Usage(format!(
            "invalid value for 'KEY': {key:?} is not {prefix}/NAME/HOST:PORT"
        ))
    };
    let rest = key
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(refused)?;
    match rest.split_once('/') {
        Some((name, addr)) if !name.is_empty() && !addr.is_empty() => Ok(name),
        _ => Err(refused()),
    }
}

fn print(text: &str) -> Result<(), Failure> {
    output::emit(text)
        .map(drop)
        .map_err(|err| Failure::Local(format!("cannot write to stdout: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_service_under_the_prefix() {
        assert_eq!(name_in("/micro/127.0.0.1:1", "").ok(), Some("micro"));
        assert_eq!(name_in("/prod/micro/[::1]:1", "/prod").ok(), Some("micro"));
        for bad in ["micro/h:1", "/micro", "/micro/", "//h:1"] {
            assert!(name_in(bad, "").is_err(), "{bad}");
        }
        assert!(name_in("/micro/h:1", "/prod").is_err());
    }
}
