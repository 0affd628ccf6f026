"""Validation of XML3/XML2 claim tables against ``data/claims_130.xsd`` with lxml (libxml2).

The writer (:func:`pricing_norms.exporters.write_xml130`) validates its rows a chunk at a
time: each chunk is wrapped in the table's root and list elements and validated as one
small document, so memory stays bounded whatever the file size while every row is
checked against the schema. A violation raises :class:`ClaimValidationError` naming the
table, the row number, the element and libxml2's error type, never the value (which may
be patient data).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["SCHEMA_PATH", "ClaimValidationError", "validate_document", "validate_rows"]

SCHEMA_PATH = Path(__file__).with_name("data") / "claims_130.xsd"
_STEP = re.compile(r"^([A-Z_0-9]+)(?:\[(\d+)\])?$")


class ClaimValidationError(ValueError):
    """A claim table breaks the schema: where and which rule, without the value."""

    def __init__(self, table: str, row: int | None, element: str, reason: str) -> None:
        self.table, self.row, self.element, self.reason = table, row, element, reason
        where = f"row {row}" if row is not None else "document"
        super().__init__(f"{table} {where} element {element or '?'}: {reason}")


@cache
def _schema() -> etree.XMLSchema:
    # lxml is imported when a claim file is validated, not by every process that imports
    # the exporters (the DICOM receivers never write one).
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def _parse(document: bytes) -> etree._Element:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    return etree.fromstring(document, parser)


def _raise_first(schema: etree.XMLSchema, table: str, first_row: int) -> None:
    errors: Any = schema.error_log  # lxml-stubs do not describe _ErrorLog
    error = errors[0]
    # path: /ROOT/LIST/ROW[n]/ELEMENT ("[n]" absent when the list has one row)
    steps = (error.path or "").split("/")[3:5]
    row_step = _STEP.match(steps[0]) if steps else None
    row = first_row + int(row_step.group(2) or 1) - 1 if row_step else None
    element = _STEP.match(steps[1]) if len(steps) > 1 else None
    raise ClaimValidationError(table, row, element.group(1) if element else "", error.type_name)


def validate_document(document: bytes, table: str) -> None:
    """Validate a whole table document (tests, small files)."""
    schema = _schema()
    if not schema.validate(_parse(document)):
        _raise_first(schema, table, 1)


def validate_rows(root: str, list_tag: str, rows: bytes, first_row: int) -> None:
    """Validate serialised rows (``rows``) as the table ``root/list_tag``.

    ``first_row`` is the 1-based number of the first row in the whole file, used in the
    error so the log points at the right row.
    """
    schema = _schema()
    document = f"<{root}><{list_tag}>".encode() + rows + f"</{list_tag}></{root}>".encode()
    if not schema.validate(_parse(document)):
        _raise_first(schema, root, first_row)
