"""The query parameters of every list route, as RabbitMQ's
rabbit_mgmt_util applies them: ``name`` and ``use_regex`` filter by name,
``sort`` (a dotted key) and ``sort_reverse`` order, ``page`` and
``page_size`` cut a page answered as ``{"items", "page", "page_count",
"page_size", "filtered_count", "item_count", "total_count"}`` (KEDA's
``/api/queues/vh?page=1&use_regex=true&pagination=false&name=RE&page_size=N``),
and ``columns`` (comma-separated dotted names) keeps only those keys."""

from __future__ import annotations

import re

from broker.management.http import answer, bad_request

#: RabbitMQ's largest page (rabbit_mgmt_util ?MAX_PAGE_SIZE)
MAX_PAGE_SIZE = 500


def listed(query, rows: list[dict]):
    """The JSON answer for ``rows`` after the ``query`` parameters (a
    mapping of the query string). Raises 400 for a bad page, page size or
    regular expression."""
    return answer(select(query, rows))


def select(query, rows: list[dict]) -> object:
    """``listed`` without the response: a list, or the page object."""
    total = len(rows)
    name = query.get("name")
    if name:
        rows = _filtered(rows, name, query.get("use_regex", "false").lower() == "true")
    sort = query.get("sort")
    reverse = query.get("sort_reverse", "false").lower() == "true"
    if sort:
        rows = sorted(rows, key=lambda row: _sort_key(_dotted(row, sort)), reverse=reverse)
    elif reverse:
        rows = list(reversed(rows))
    columns = [c for c in query.get("columns", "").split(",") if c]
    if "page" not in query:
        return [_columns(row, columns) for row in rows] if columns else rows
    page = _positive(query, "page", 1)
    page_size = _positive(query, "page_size", 100)
    if page_size > MAX_PAGE_SIZE:
        raise bad_request(f"page size must be no greater than {MAX_PAGE_SIZE}")
    filtered = len(rows)
    page_count = max(1, -(-filtered // page_size))
    if page > page_count:
        raise bad_request(f"page out of range, page: {page} page size: {page_size}, len: {filtered}")
    items = rows[(page - 1) * page_size:page * page_size]
    return {"filtered_count": filtered, "item_count": len(items),
            "items": [_columns(row, columns) for row in items] if columns else items,
            "page": page, "page_count": page_count, "page_size": page_size, "total_count": total}


def _filtered(rows: list[dict], name: str, use_regex: bool) -> list[dict]:
    if use_regex:
        try:
            pattern = re.compile(name, re.IGNORECASE)
        except re.error as exc:
            raise bad_request(f"invalid regular expression '{name}': {exc}") from None
        return [row for row in rows if pattern.search(str(row.get("name", "")))]
    needle = name.lower()
    return [row for row in rows if needle in str(row.get("name", "")).lower()]


def _positive(query, key: str, default: int) -> int:
    try:
        value = int(query.get(key, default))
    except ValueError:
        raise bad_request(f"{key} must be an integer") from None
    if value < 1:
        raise bad_request(f"{key} must be greater than 0")
    return value


def _dotted(row: dict, key: str) -> object:
    value: object = row
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sort_key(value: object) -> tuple:
    """None first, numbers before text (a mixed column still sorts)."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value, "")
    return (2, 0, str(value))


def _columns(row: dict, columns: list[str]) -> dict:
    """Only the dotted ``columns`` of ``row``, nested as in the row."""
    kept: dict = {}
    for column in columns:
        parts = column.split(".")
        value = _dotted(row, column)
        if value is None and not _has(row, parts):
            continue
        target = kept
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return kept


def _has(row: dict, parts: list[str]) -> bool:
    value: object = row
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True
