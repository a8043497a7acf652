//! How instances and changes are printed: a table, JSON, Prometheus's
//! service-discovery JSON, and one line per change. Plain functions from
//! instances to text, so every format is tested without etcd.

use libregistry::{Change, Instance};
use serde_json::{json, Map, Value};

use crate::args::{ChangeFormat, Format};

/// Metadata a table row shows in columns of their own, or that only repeat
/// the address (`ip`, `port`): left out of its METADATA column.
const OWN_COLUMNS: [&str; 4] = ["zone", "weight", "ip", "port"];

/// Prometheus's prefix for discovery labels: available to relabeling,
/// dropped from the scraped series unless relabeled into a label.
const LABEL_PREFIX: &str = "__meta_registry_";

/// The instances in `format`, ending with a newline.
pub fn instances(list: &[Instance], format: Format) -> String {
    match format {
        Format::Table => table(list),
        Format::Json => pretty(&Value::Array(list.iter().map(instance_json).collect())),
        Format::PrometheusSd => pretty(&prometheus_sd(list)),
    }
}

/// One line for a change (no newline).
pub fn change(change: &Change, format: ChangeFormat) -> String {
    let (what, instance) = match change {
        Change::Added(i) => ("added", i),
        Change::Updated(i) => ("updated", i),
        Change::Removed(i) => ("removed", i),
    };
    match format {
        ChangeFormat::Text => {
            let mut line = format!("{what} {} {}", instance.key, instance.addr);
            for (key, value) in metadata_text(instance, &["ip", "port"]) {
                line.push_str(&format!(" {key}={value}"));
            }
            line
        }
        ChangeFormat::Json => {
            let mut object = Map::new();
            object.insert("change".into(), what.into());
            if let Value::Object(fields) = instance_json(instance) {
                object.extend(fields);
            }
            Value::Object(object).to_string()
        }
    }
}

/// Writes `text` to stdout now. `Ok(false)` when stdout is closed (a pipe
/// into `head`): there is nobody left to print for.
pub fn emit(text: &str) -> std::io::Result<bool> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(err),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

fn instance_json(instance: &Instance) -> Value {
    json!({
        "key": instance.key,
        "name": instance.name,
        "addr": instance.addr,
        "metadata": instance.metadata,
    })
}

/// Metadata entries as text, in the order written, without `skip` and
/// without nulls.
fn metadata_text<'a>(
    instance: &'a Instance,
    skip: &'a [&str],
) -> impl Iterator<Item = (&'a str, String)> + 'a {
    instance
        .metadata
        .keys()
        .filter(move |key| !skip.contains(&key.as_str()))
        .filter_map(|key| Some((key.as_str(), instance.meta(key)?)))
}

/// KEY, ADDRESS, ZONE, WEIGHT and the rest of the metadata, in aligned columns.
fn table(list: &[Instance]) -> String {
    let mut rows = vec![["KEY", "ADDRESS", "ZONE", "WEIGHT", "METADATA"].map(String::from)];
    for instance in list {
        let metadata: Vec<String> = metadata_text(instance, &OWN_COLUMNS)
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        rows.push([
            instance.key.clone(),
            instance.addr.clone(),
            instance.zone().unwrap_or("-").to_string(),
            instance.weight().to_string(),
            metadata.join(" "),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Prometheus's file and HTTP service-discovery format: one target group
/// per instance, `{"targets": ["HOST:PORT"], "labels": {...}}`, labelled
/// `__meta_registry_name` and one `__meta_registry_KEY` per metadata entry.
fn prometheus_sd(list: &[Instance]) -> Value {
    let groups = list.iter().map(|instance| {
        let mut labels = Map::new();
        labels.insert(label_name("name"), instance.name.clone().into());
        for (key, value) in metadata_text(instance, &[]) {
            // Two keys that map to one label name: the first written keeps
            // it (and `name` is always the service's).
            labels.entry(label_name(key)).or_insert(value.into());
        }
        json!({ "targets": [instance.addr], "labels": labels })
    });
    Value::Array(groups.collect())
}

/// `__meta_registry_` and the key with every character a Prometheus label
/// name may not hold (outside `[a-zA-Z0-9_]`: `.`, `-`, anything a foreign
/// writer used) replaced by `_`.
fn label_name(key: &str) -> String {
    let mapped = key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    });
    LABEL_PREFIX.chars().chain(mapped).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(key: &str, metadata: Value) -> Instance {
        let Value::Object(metadata) = metadata else {
            panic!("an object")
        };
        let (_, rest) = key[1..].split_once('/').unwrap();
        Instance {
            key: key.into(),
            name: key[1..].split('/').next().unwrap().into(),
            addr: rest.into(),
            metadata,
        }
    }

    fn two() -> Vec<Instance> {
        vec![
            instance(
                "/micro/127.0.0.1:4000",
                json!({"zone": "zone1", "ip": "127.0.0.1", "port": 4000, "weight": 50, "app.version": "v1", "shard-id": "7"}),
            ),
            instance(
                "/micro/[::1]:4001",
                json!({"env": "dev", "nothing": null, "tags": ["a"]}),
            ),
        ]
    }

    #[test]
    fn a_table_has_a_column_each_and_the_rest_of_the_metadata() {
        let text = instances(&two(), Format::Table);
        assert_eq!(
            text,
            "KEY                    ADDRESS         ZONE   WEIGHT  METADATA\n\
             /micro/127.0.0.1:4000  127.0.0.1:4000  zone1  50      app.version=v1 shard-id=7\n\
             /micro/[::1]:4001      [::1]:4001      -      100     env=dev tags=[\"a\"]\n"
        );
        assert_eq!(
            instances(&[], Format::Table),
            "KEY  ADDRESS  ZONE  WEIGHT  METADATA\n"
        );
    }

    #[test]
    fn json_keeps_the_metadata_as_written() {
        let parsed: Value = serde_json::from_str(&instances(&two(), Format::Json)).unwrap();
        assert_eq!(parsed[0]["metadata"]["port"], json!(4000));
        assert_eq!(parsed[1]["addr"], json!("[::1]:4001"));
        assert_eq!(parsed[1]["metadata"]["nothing"], Value::Null);
    }

    /// Prometheus's documented file_sd schema: a JSON array of objects with
    /// exactly `targets` (strings, HOST:PORT) and `labels` (label names of
    /// `[a-zA-Z_][a-zA-Z0-9_]*` to strings).
    fn assert_file_sd_schema(text: &str) {
        let parsed: Value = serde_json::from_str(text).expect("JSON");
        let groups = parsed.as_array().expect("an array of target groups");
        for group in groups {
            let object = group.as_object().expect("each group an object");
            let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
            fields.sort_unstable();
            assert_eq!(fields, ["labels", "targets"], "{group}");
            for target in object["targets"].as_array().expect("targets: an array") {
                let target = target.as_str().expect("a target is a string");
                let (host, port) = target.rsplit_once(':').expect("HOST:PORT");
                assert!(!host.is_empty() && port.parse::<u16>().is_ok(), "{target}");
            }
            for (name, value) in object["labels"].as_object().expect("labels: an object") {
                let mut chars = name.chars();
                let first = chars.next().expect("a label name is not empty");
                assert!(first.is_ascii_alphabetic() || first == '_', "{name}");
                assert!(
                    chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{name}"
                );
                assert!(value.is_string(), "{name}: {value}");
            }
        }
    }

    #[test]
    fn prometheus_sd_follows_the_file_sd_schema() {
        let text = instances(&two(), Format::PrometheusSd);
        assert_file_sd_schema(&text);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed[0],
            json!({
                "targets": ["127.0.0.1:4000"],
                "labels": {
                    "__meta_registry_name": "micro",
                    "__meta_registry_zone": "zone1",
                    "__meta_registry_ip": "127.0.0.1",
                    "__meta_registry_port": "4000",
                    "__meta_registry_weight": "50",
                    "__meta_registry_app_version": "v1",
                    "__meta_registry_shard_id": "7",
                }
            })
        );
        assert_eq!(
            parsed[1]["labels"]["__meta_registry_tags"],
            json!("[\"a\"]")
        );
        assert!(parsed[1]["labels"].get("__meta_registry_nothing").is_none());
        assert_eq!(instances(&[], Format::PrometheusSd), "[]\n");
    }

    #[test]
    fn label_names_collide_in_favour_of_the_first() {
        let clash = instance(
            "/micro/h:1",
            json!({"name": "not the service", "a.b": "first", "a-b": "second", "é": "x"}),
        );
        let text = instances(&[clash], Format::PrometheusSd);
        assert_file_sd_schema(&text);
        let labels = &serde_json::from_str::<Value>(&text).unwrap()[0]["labels"];
        assert_eq!(labels["__meta_registry_name"], json!("micro"));
        assert_eq!(labels["__meta_registry_a_b"], json!("first"));
        assert_eq!(labels["__meta_registry__"], json!("x"));
    }

    #[test]
    fn changes_print_one_line_each() {
        let list = two();
        assert_eq!(
            change(&Change::Added(list[0].clone()), ChangeFormat::Text),
            "added /micro/127.0.0.1:4000 127.0.0.1:4000 zone=zone1 weight=50 app.version=v1 shard-id=7"
        );
        let json_line = change(&Change::Removed(list[1].clone()), ChangeFormat::Json);
        assert!(!json_line.contains('\n'));
        let parsed: Value = serde_json::from_str(&json_line).unwrap();
        assert_eq!(parsed["change"], json!("removed"));
        assert_eq!(parsed["key"], json!("/micro/[::1]:4001"));
        assert_eq!(parsed["metadata"]["env"], json!("dev"));
    }
}
