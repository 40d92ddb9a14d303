"""`csv`: the first backfill from files — clients, contacts and deals from CSV or XLSX.

The connection's URL is a file or a folder. A folder holds `clients.csv`, `contacts.csv`, `deals.csv`
(or `.xlsx`), or whatever `options["files"]` names per stream. Rows are streamed (memory stays flat in
the file's size); the external id is the `id` column (`options["id_column"]`), else the row number.
Column names are the external paths of the field mappings, so the mapping preview in admin shows at
once which columns are used and which are not.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sync.connectors import register
from sync.connectors.base import Connector, MappingSpec, PermanentError, RemoteRecord

M = MappingSpec


class NoHttp:
    """Files need no HTTP client; keeps the base class from building one."""

    def close(self) -> None:
        pass


@register
class CsvConnector(Connector):
    system = "csv"
    title = "CSV / XLSX files"
    role = "crm"
    streams = ("clients", "contacts", "deals")
    push_streams = ()
    credential_keys = ()
    read_ahead = True  # reading a file touches nothing the engine shares
    default_mappings = (
        M("clients", "name", "name", "in"),
        M("clients", "legal_name", "legal_name", "in"),
        M(
            "clients",
            "kind",
            "kind",
            "in",
            "enum",
            {
                "map": {
                    "company": "company",
                    "person": "person",
                    "юрлицо": "company",
                    "физлицо": "person",
                    "ип": "person",
                },
                "default": "company",
            },
        ),
        M("clients", "inn", "inn", "in"),
        M("clients", "kpp", "kpp", "in"),
        M("clients", "ogrn", "ogrn", "in"),
        M("clients", "email", "email", "in"),
        M("clients", "phone", "phone", "in", "phone", {"region": "RU"}),
        M("clients", "address", "address", "in"),
        M("clients", "country", "country", "in", "default", {"value": "RU"}),
        M("contacts", "client_id", "client", "in", "lookup", {"entity": "clients"}),
        M("contacts", "first_name", "first_name", "in"),
        M("contacts", "last_name", "last_name", "in"),
        M("contacts", "middle_name", "middle_name", "in"),
        M("contacts", "position", "position", "in"),
        M("contacts", "email", "email", "in"),
        M("contacts", "phone", "phone", "in", "phone", {"region": "RU"}),
        M("deals", "title", "title", "in"),
        M("deals", "client_id", "client", "in", "lookup", {"entity": "clients"}),
        M("deals", "stage", "stage", "in"),
        M("deals", "amount", "amount", "in", "decimal", {"scale": 2}),
        M("deals", "currency", "currency", "in", "default", {"value": "RUB"}),
        M("deals", "expected_close_date", "expected_close_date", "in", "date", {"format": "iso"}),
    )

    def __init__(self, config, *, http: Any | None = None):
        super().__init__(config, http=http or NoHttp())

    def _path(self, stream: str) -> Path:
        root = Path(self.config.base_url.removeprefix("file://"))
        files: Mapping[str, str] = self.config.options.get("files") or {}
        if root.is_file():
            if stream != self.config.options.get("stream", "clients"):
                raise PermanentError(
                    f"{root.name} holds {self.config.options.get('stream', 'clients')}, not {stream}"
                )
            return root
        if stream in files:
            return root / files[stream]
        for suffix in (".csv", ".xlsx"):
            if (root / f"{stream}{suffix}").exists():
                return root / f"{stream}{suffix}"
        return root / f"{stream}.csv"

    def check(self) -> None:
        root = Path(self.config.base_url.removeprefix("file://"))
        if not root.exists():
            raise PermanentError(f"{root} does not exist")

    def _rows(self, path: Path) -> Iterator[dict[str, Any]]:
        for header, row, _ in self._read(path):
            yield dict(zip(header, row, strict=True))

    def _read(self, path: Path) -> Iterator[tuple[list[str], list[Any], str]]:
        """(header, row, source) per data row: the row padded or cut to the header's width, and, for
        CSV, the exact text of header and row as `RemoteRecord.source` ("" for XLSX)."""
        if path.suffix.lower() == ".xlsx":
            for row in self._xlsx_rows(path):
                yield list(row), list(row.values()), ""
            return
        encoding = self.config.options.get("encoding", "utf-8-sig")
        try:
            with path.open(newline="", encoding=encoding) as handle:
                sample = handle.read(4096)
                handle.seek(0)
                delimiter = self.config.options.get("delimiter")
                if not delimiter:
                    try:
                        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
                    except csv.Error:
                        delimiter = ","
                reader = csv.reader(handle, delimiter=delimiter)
                header = next(reader, None)
                if not header:
                    return
                header = [h.strip() for h in header]
                head = repr(header) + "\n"
                width = len(header)
                join, separators = "\x00".join, width - 1
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if len(row) != width:
                        row = (row + [""] * width)[:width] if len(row) < width else row[:width]
                    # the row's texts joined by NUL, exact while no text holds a NUL (else its repr)
                    text = join(row)
                    yield header, row, head + (text if text.count("\x00") == separators else repr(row))
        except UnicodeDecodeError as exc:
            raise PermanentError(
                f"{path.name} is not {encoding} text ({exc.reason} at byte {exc.start})"
            ) from None

    @staticmethod
    def _xlsx_rows(path: Path) -> Iterator[dict[str, Any]]:
        from openpyxl import load_workbook

        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise PermanentError(f"{path.name} is not a readable XLSX file: {exc}") from None
        try:
            rows = book.worksheets[0].iter_rows(values_only=True)
            header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
            for row in rows:
                if row is None or all(v is None for v in row):
                    continue
                values = [
                    "" if v is None else (v.isoformat() if isinstance(v, dt.date) else str(v)) for v in row
                ]
                yield dict(zip(header, values + [""] * (len(header) - len(values)), strict=False))
        finally:
            book.close()

    def columns(self, stream: str) -> list[str]:
        for row in self._rows(self._path(stream)):
            return list(row)
        return []

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        path = self._path(stream)
        if not path.exists():
            return
        id_columns = self.config.options.get("id_column") or {}
        id_column = id_columns.get(stream, "id") if isinstance(id_columns, dict) else id_columns
        record = RemoteRecord.of_values
        at = None  # the id column's place: the last of that name, as in the record's `data`
        for number, (header, values, source) in enumerate(self._read(path), start=2):  # 1: the header
            if at is None:
                at = {name: i for i, name in enumerate(header)}.get(id_column, -1)
            external_id = (values[at] if at >= 0 else "").strip() or f"row-{number}"
            yield record(stream, external_id, header, values, source)

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        for record in self.fetch(stream):
            if record.external_id == external_id:
                return record
        return None
