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

/// An RFC 3339 time.
pub fn time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}
