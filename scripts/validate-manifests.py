#!/usr/bin/env python3
"""Checks every document of every YAML file under manifests/ the way an API server would.

- Built-in kinds (Service, HorizontalPodAutoscaler, CustomResourceDefinition, ...) with the
  kubernetes-validate package, at the Kubernetes version given (strict: unknown fields fail).
- sluice's kinds (apiVersion sluice.dev/..., and argoproj.io/... ones, which sluice reads as
  they are) against the openAPIV3Schema of the CRD sluice generates (manifests/crds/), with the
  Kubernetes extensions read as an API server reads them: `nullable`,
  `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`, and unknown fields
  refused (what `kubectl apply` does with strict field validation).
- A sluice.dev kind with no CRD (LocalRuntime: local mode only) is named and skipped.
- A kustomization.yaml (kustomize's, not the API server's): only the keys this project uses,
  and every resource it lists must exist.

Usage: validate-manifests.py KUBERNETES_VERSION [ROOT]. Exit 1 when any document is invalid.
Run by scripts/test.sh with the kubernetes-validate that scripts/install-test-deps.sh installs.
"""

import copy
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

OUR_GROUPS = ("sluice.dev/", "argoproj.io/")
KUSTOMIZE = "kustomize.config.k8s.io/"
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "labels"}


def kustomization_errors(doc, folder):
    """What is wrong with a kustomization: unknown keys, resources that do not exist."""
    errors = [f"{k}: not a key this project's kustomizations use"
              for k in sorted(set(doc) - KUSTOMIZATION_KEYS)]
    for r in doc.get("resources", []):
        if not os.path.exists(os.path.join(folder, r)):
            errors.append(f"resources: {r} does not exist")
    return errors
LOCAL_ONLY = {"LocalRuntime"}


def to_json_schema(node):
    """An openAPIV3Schema node as a JSON Schema (draft 7) an ordinary validator enforces."""
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        out = {}
        if "type" in node:
            out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
        return out
    out = {}
    for key, value in node.items():
        if key in ("properties",):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [to_json_schema(v) for v in value]
        elif key in ("type", "enum", "required", "format", "minimum", "maximum", "pattern",
                     "minItems", "maxItems", "minLength", "maxLength", "additionalProperties"):
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            out["type"] = t + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    if "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_schemas(crd_dir):
    """kind -> JSON Schema of its served version, from the CRD files."""
    out = {}
    for name in sorted(os.listdir(crd_dir)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(crd_dir, name)) as f:
            for crd in yaml.safe_load_all(f):
                if not crd:
                    continue
                kind = crd["spec"]["names"]["kind"]
                version = next(v for v in crd["spec"]["versions"] if v.get("served"))
                schema = to_json_schema(version["schema"]["openAPIV3Schema"])
                # apiVersion, kind and metadata are the API server's, checked by it
                schema.setdefault("properties", {}).update(
                    {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                     "metadata": {"type": "object"}})
                out[kind] = schema
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    version = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "manifests")
    schemas = crd_schemas(os.path.join(root, "crds"))
    failed = 0
    checked = 0
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.relpath(os.path.join(dirpath, name))
            with open(os.path.join(dirpath, name)) as f:
                docs = [d for d in yaml.safe_load_all(f) if d]
            for i, doc in enumerate(docs, 1):
                api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
                where = f"{path}: document {i} ({kind} {doc.get('metadata', {}).get('name', '')})"
                if api_version.startswith(KUSTOMIZE) and kind == "Kustomization":
                    errors = kustomization_errors(doc, dirpath)
                    for e in errors:
                        print(f"{where}: {e}")
                    failed += bool(errors)
                    if errors:
                        continue
                elif api_version.startswith(OUR_GROUPS):
                    if kind in LOCAL_ONLY:
                        print(f"{where}: local mode only, skipped")
                        continue
                    schema = schemas.get(kind)
                    if schema is None:
                        print(f"{where}: no CRD defines kind {kind}")
                        failed += 1
                        continue
                    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc),
                                    key=lambda e: list(e.absolute_path))
                    for e in errors:
                        field = ".".join(str(p) for p in e.absolute_path) or "."
                        print(f"{where}: {field}: {e.message}")
                    failed += bool(errors)
                else:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        field = ".".join(str(p) for p in e.path) or "."
                        print(f"{where}: {field}: {e.message}")
                        failed += 1
                        continue
                    except (kubernetes_validate.SchemaNotFoundError,
                            kubernetes_validate.InvalidSchemaError) as e:
                        print(f"{where}: {e}")
                        failed += 1
                        continue
                checked += 1
    print(f"manifests: {checked} documents valid, {failed} invalid (Kubernetes {version})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
