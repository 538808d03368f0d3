//! The OpenAPI schemas of what serde reads by hand, in the shape a Kubernetes API server
//! accepts in a structural CRD schema: an int-or-string is marked `x-kubernetes-int-or-string`,
//! a kept-whole object (a pod template, a Job spec) is an object that preserves its unknown
//! fields, a time is an RFC 3339 string. The types' `JsonSchema` impls, beside each type, use
//! these.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A number or a text (`10`, `"10s"`, `"{{args.count}}"`).
pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-int-or-string": true })
}

/// An object kept as written.
pub fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Any JSON value, kept as written.
pub fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of objects kept as written.
pub fn any_objects(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// Implements `JsonSchema` for a type whose serde form is written by hand, with one of the
/// schemas above, inlined where the type is used.
macro_rules! hand_written_schema {
    ($ty:ty, $name:literal, $schema:path) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $schema(g)
            }
        }
    };
}
pub(crate) use hand_written_schema;

/// An RFC 3339 time.
pub fn time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}
