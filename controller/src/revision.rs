//! The revision hash of a pod template: the name of a version, the same in every run and in
//! both runtimes, so that `sluice set image` means the same thing locally and on Kubernetes.
//!
//! xxh3-64 (seed 0) of the template's canonical JSON (object keys sorted at every level, no
//! spaces), written in the ten characters of Kubernetes' safe alphabet (no vowels, no
//! look-alike digits). Pinned by golden tests: changing it would make every running rollout
//! look like a new revision.

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::spec::PodTemplate;

const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// The revision hash of a template.
pub fn pod_template_hash(template: &PodTemplate) -> String {
    let mut canonical = String::new();
    write_canonical(&template.0, &mut canonical);
    encode(xxh3_64(canonical.as_bytes()))
}

fn encode(mut n: u64) -> String {
    let mut out = String::with_capacity(10);
    for _ in 0..10 {
        let digit = (n % 27) as usize;
        out.push(char::from(ALPHABET.get(digit).copied().unwrap_or(b'b')));
        n /= 27;
    }
    out
}

/// Writes JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(*k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplate {
        PodTemplate(serde_json::json!({
            "metadata": {"labels": {"app": "chip"}},
            "spec": {"containers": [{"name": "chip", "image": image}]}
        }))
    }

    #[test]
    fn hash_is_pinned() {
        assert_eq!(
            pod_template_hash(&template("fidelissauro/chip:v1")),
            GOLDEN_V1
        );
        assert_eq!(
            pod_template_hash(&template("fidelissauro/chip:v2")),
            GOLDEN_V2
        );
    }

    const GOLDEN_V1: &str = "z2xfz6px5m";
    const GOLDEN_V2: &str = "q9w6rxgc8r";

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut out = String::new();
        write_canonical(
            &serde_json::json!({"b": [{"z": 1, "a": "x"}], "a": null}),
            &mut out,
        );
        assert_eq!(out, r#"{"a":null,"b":[{"a":"x","z":1}]}"#);
        assert_eq!(encode(0), "bbbbbbbbbb");
        assert_eq!(encode(1), "cbbbbbbbbb");
    }

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        let a: PodTemplate = serde_json::from_str(
            r#"{"spec": {"containers": [{"image": "x", "name": "c"}]}, "metadata": {}}"#,
        )
        .unwrap();
        let b: PodTemplate = serde_json::from_str(
            r#"{"metadata":{},"spec":{"containers":[{"name":"c","image":"x"}]}}"#,
        )
        .unwrap();
        assert_eq!(pod_template_hash(&a), pod_template_hash(&b));
        assert_ne!(
            pod_template_hash(&template("a")),
            pod_template_hash(&template("b"))
        );
        let h = pod_template_hash(&a);
        assert_eq!(h.len(), 10);
        assert!(h.bytes().all(|c| ALPHABET.contains(&c)));
    }
}
