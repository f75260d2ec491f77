#!/usr/bin/env python3
"""Regenerates schemas.json from Atlassian's OpenAPI document for Bitbucket Cloud.

    python3 extract.py swagger.v3.json > schemas.json

Takes the component schemas the catalog's responses use (ROOTS), everything they reference, and every
schema that extends one of them through `allOf` (the document's `discriminator` on `type` picks such a
subtype by name, e.g. `pipeline_state_completed` for a `pipeline_state`). References become `#/$defs/…`;
prose (descriptions, titles, examples) and vendor keys are left out: only structure and names are kept.
"""

import json
import sys

# The response schemas of the operations index.toml names.
ROOTS = [
    "account", "paginated_workspace_access", "paginated_repositories", "repository", "paginated_branches",
    "branch", "paginated_changeset", "commit", "paginated_pullrequests", "pullrequest",
    "paginated_diffstats", "paginated_pullrequest_comments", "pullrequest_comment", "participant",
    "paginated_pipelines", "pipeline", "paginated_pipeline_steps",
]
PROSE = {"description", "title", "example", "examples", "externalDocs"}
PREFIX = "#/components/schemas/"


def refs(node):
    """Every component a schema fragment references."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(PREFIX):
                yield value[len(PREFIX):]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def parents(schema):
    """The components a schema extends through `allOf`."""
    return [p["$ref"][len(PREFIX):] for p in schema.get("allOf", []) if "$ref" in p]


def clean(node):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key.startswith("x-") or key in PROSE:
                continue
            if key == "$ref":
                out[key] = "#/$defs/" + value[len(PREFIX):]
            elif key == "properties":
                out[key] = {name: clean(v) for name, v in value.items()}
            else:
                out[key] = clean(value)
        return out
    if isinstance(node, list):
        return [clean(item) for item in node]
    return node


def main():
    document = json.load(open(sys.argv[1]))
    components = document["components"]["schemas"]
    children = {}
    for name, schema in components.items():
        for parent in parents(schema):
            children.setdefault(parent, []).append(name)
    keep, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(refs(components[name]))
        # `object` is the root of nearly every schema: its subtypes are reached by name where used.
        if name != "object":
            todo.extend(children.get(name, []))
    out = {
        "$comment": "Bitbucket Cloud response schemas from Atlassian's OpenAPI document; see index.toml.",
        "$defs": {name: clean(components[name]) for name in sorted(keep)},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
