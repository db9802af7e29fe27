"""The three patch formats the API accepts: JSON patch, JSON merge patch, strategic merge."""

from __future__ import annotations

import copy
from typing import Any

from tests.kubesim.errors import ApiError

# Lists that strategic merge combines by a key instead of replacing (from the API's
# patchMergeKey tags); any other list is replaced whole, as the API does.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in _MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _MERGE_KEYS[key])
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            merged.append(copy.deepcopy(item))
            continue
        for index, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                if item.get("$patch") == "delete":
                    del merged[index]
                else:
                    merged[index] = strategic_merge_patch(existing, item)
                break
        else:
            if item.get("$patch") != "delete":
                merged.append(copy.deepcopy(item))
    return merged


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError.bad_request(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, parts: list[str]) -> Any:
    node = document
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError) as missing:
            raise ApiError(422, "Invalid", f"jsonpatch: missing path /{'/'.join(parts)}") from (
                missing
            )
    return node


def json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/remove/replace/test (move and copy are not needed by anyone here)."""
    result = copy.deepcopy(document)
    for op in operations:
        parts = _pointer(op["path"])
        parent, last = _parent(result, parts), parts[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"jsonpatch: test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(copy.deepcopy(op["value"]))
                elif kind == "add":
                    parent.insert(int(last), copy.deepcopy(op["value"]))
                else:
                    parent[int(last)] = copy.deepcopy(op["value"])
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"jsonpatch: missing path {op['path']}")
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError) as missing:
                raise ApiError(422, "Invalid", f"jsonpatch: missing path {op['path']}") from (
                    missing
                )
        else:
            raise ApiError.bad_request(f"jsonpatch: unsupported operation {kind!r}")
    return result


def apply_patch(document: Any, content_type: str, body: Any) -> Any:
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json-patch+json":
        if not isinstance(body, list):
            raise ApiError.bad_request("json patch must be a list of operations")
        return json_patch(document, body)
    if media == "application/merge-patch+json":
        return merge_patch(document, body)
    if media == "application/strategic-merge-patch+json":
        return strategic_merge_patch(document, body)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown "
        f"format - accepted media types include: application/json-patch+json, "
        f"application/merge-patch+json, application/strategic-merge-patch+json "
        f"(got {media})",
    )
