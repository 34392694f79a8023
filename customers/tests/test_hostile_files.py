"""Files and uploads made to hurt: compressed bombs, endless lines, huge fields,
too many columns or attributes, codecs that are not text, formula cells in the
rejected-rows file, and bodies too large to accept. The limits are settings; the
tests lower them so that the bombs stay small and fast."""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from core.uploads import FORM_MARGIN
from customers.models import Customer, Import, ImportStatus, Order
from customers.services import import_create
from customers.services.importing import import_errors_path, import_from_path

pytestmark = pytest.mark.django_db

ORDERS_HEADER = b"order_id,customer_id,ordered_at,sku,quantity,unit_price\n"


def orders(n: int, start: int = 1) -> bytes:
    return b"".join(
        f"O{i},C{i % 7},2024-05-01 10:00,S1,1,2.50\n".encode() for i in range(start, start + n)
    )


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def run_import(org, tmp_path, name, data, kind="orders", **options):
    """Import a file as `import_data` does; (import, error) with the error message if refused."""
    with tenant_context(org):
        try:
            imp, _ = import_from_path(
                organization=org,
                path=write(tmp_path, name, data),
                kind=kind,
                options=options,
                run_pipeline=False,
            )
        except ApplicationError as exc:
            return Import.objects.order_by("-pk").first(), exc.message
        return imp, None


# --- 8: the rejected-rows file is safe to open in a spreadsheet -------------------------------


def test_rejected_rows_file_escapes_formula_cells(org, tmp_path):
    data = (
        b"order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
        b'O1,=HYPERLINK("http://evil.example"),=1+1,S1,1,2.50\n'
        b"O2,@SUM(A1),2024-05-01 10:00,S1,-x,2.50\n"
        b"O3,+C3,2024-05-01 10:00,S1,1,2.50\n"
    )
    imp, error = run_import(org, tmp_path, "o.csv", data)
    assert error is None and imp.rejected == 2
    with tenant_context(org):
        path = import_errors_path(imp)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'=1+1" in cells and "'-x" in cells
    assert "'@SUM(A1)" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]


# --- 9: compressed bombs, endless lines, huge fields, too many rows ---------------------------


def test_header_line_bomb_is_refused_in_the_web_request_without_reading_it(
    owner_client, org, settings
):
    settings.IMPORT_MAX_LINE_BYTES = 64 * 1024
    bomb = gzip.compress(b"a" * 8_000_000 + b"\n1\n")
    tracemalloc.start()
    try:
        r = owner_client.post(
            "/customers/imports/new/",
            {"kind": "orders", "file": SimpleUploadedFile("bomb.csv.gz", bomb)},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 200
    assert "The first line is longer than the limit of 64 KB" in r.content.decode()
    assert peak < 4_000_000  # the 8 MB line was never held
    with tenant_context(org):
        assert not Import.objects.exists()


def test_long_data_line_refuses_the_file_before_anything_is_stored(org, tmp_path, settings):
    settings.IMPORT_MAX_LINE_BYTES = 64 * 1024
    data = ORDERS_HEADER + orders(5) + b"O9,C1,2024-05-01 10:00," + b"s" * 3_000_000 + b",1,2.50\n"
    tracemalloc.start()
    try:
        imp, error = run_import(org, tmp_path, "o.csv.gz", gzip.compress(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error == (
        "Row 6 is longer than the limit of 64 KB; nothing was imported. "
        "Check that the file is a CSV file with one record a line."
    )
    assert imp.status == ImportStatus.FAILED
    assert peak < 6_000_000
    with tenant_context(org):
        assert not Order.objects.exists()


def test_quoted_field_running_on_past_the_line_limit_is_refused(org, tmp_path, settings):
    settings.IMPORT_MAX_LINE_BYTES = 64 * 1024
    data = ORDERS_HEADER + orders(2) + b'O9,C1,"' + b"2024\n" * 50_000
    imp, error = run_import(org, tmp_path, "o.csv", data)
    assert error.startswith("Row 3 is longer than the limit of 64 KB")
    with tenant_context(org):
        assert not Order.objects.exists()


def test_decompressed_size_is_capped(org, tmp_path, settings):
    settings.IMPORT_MAX_DECOMPRESSED_BYTES = 100 * 1024
    data = gzip.compress(ORDERS_HEADER + orders(5000))
    assert len(data) < 100 * 1024 < len(gzip.decompress(data))
    imp, error = run_import(org, tmp_path, "o.csv.gz", data)
    assert error == (
        "Once decompressed, the file is larger than the limit of 100 KB; nothing was imported. "
        "Split it into smaller files."
    )
    with tenant_context(org):
        assert not Order.objects.exists()
    # A file under the limit imports as before.
    imp, error = run_import(
        org, tmp_path, "small.csv.gz", gzip.compress(ORDERS_HEADER + orders(50))
    )
    assert error is None and imp.created == 50


def test_row_count_is_capped_per_plan(org, tmp_path, settings):
    settings.IMPORT_MAX_ROWS = 100
    imp, error = run_import(org, tmp_path, "o.csv", ORDERS_HEADER + orders(101))
    assert error == (
        "The file has more than 100 rows, the most your plan imports at once; "
        "nothing was imported. Split it into smaller files."
    )
    with tenant_context(org):
        assert not Order.objects.exists()
    imp, error = run_import(org, tmp_path, "o.csv", ORDERS_HEADER + orders(100))
    assert error is None and imp.created == 100


def test_limits_are_read_per_organisation(org, other_org, tmp_path, monkeypatch, settings):
    """Every limit comes from one function of the organisation, where a plan's
    override will be read."""
    from customers.services.imports import file_limits as limits

    settings.IMPORT_MAX_ROWS = 100
    real = limits.import_limits

    def bigger_for_acme(*, organization):
        found = real(organization=organization)
        if organization.slug == "acme":
            return limits.ImportLimits(**{**found.__dict__, "rows": 1000})
        return found

    monkeypatch.setattr(limits, "import_limits", bigger_for_acme)
    _, error = run_import(org, tmp_path, "o.csv", ORDERS_HEADER + orders(150))
    assert error is None
    _, error = run_import(other_org, tmp_path, "o.csv", ORDERS_HEADER + orders(150))
    assert "more than 100 rows" in error


def test_oversized_field_rejects_its_row_only(org, tmp_path, settings):
    settings.IMPORT_MAX_FIELD_BYTES = 1024
    data = (
        b"customer_id,email,notes\n"
        b"C1,a@example.com,short\n"
        b"C2,b@example.com," + b"n" * 5000 + b"\n"
        b"C3,c@example.com,fine\n"
    )
    imp, error = run_import(org, tmp_path, "c.csv", data, kind="customers")
    assert error is None
    assert (imp.created, imp.rejected) == (2, 1)
    assert imp.errors[0]["row"] == 2
    assert imp.errors[0]["field"] == "notes"
    assert imp.errors[0]["message"] == "the value is 4.9 KB, longer than the limit of 1 KB"
    with tenant_context(org):
        assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["C1", "C3"]


# --- 14: only text encodings --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["base64", "rot13", "zlib_codec", "hex", "uu_codec"])
def test_api_refuses_codecs_that_are_not_text(api, encoding):
    upload = SimpleUploadedFile("o.csv", ORDERS_HEADER + orders(2))
    r = api.post(
        "/api/v1/imports/",
        {"file": upload, "kind": "orders", "encoding": encoding},
        format="multipart",
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["message"] == (
        f"'{encoding}' is not a text encoding. Use one such as utf-8, cp1252 or latin-1, "
        "or leave it out to detect it."
    )
    assert error["fields"] == {"encoding": "Not a text encoding."}


def test_api_utf16_without_byte_order_mark_is_a_clear_error(api):
    upload = SimpleUploadedFile("o.csv", ORDERS_HEADER + orders(3))
    r = api.post(
        "/api/v1/imports/",
        {"file": upload, "kind": "orders", "encoding": "utf-16"},
        format="multipart",
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "The file does not start with a UTF-16 byte-order mark, so its byte order is unknown. "
        "Choose utf-16-le or utf-16-be, or leave the encoding out to detect it."
    )


def test_utf16_without_byte_order_mark_in_either_order_still_imports_when_named(api):
    text = (ORDERS_HEADER + orders(3)).decode()
    for encoding in ("utf-16-le", "utf-16-be"):
        upload = SimpleUploadedFile("o.csv", text.encode(encoding))
        r = api.post(
            "/api/v1/imports/",
            {"file": upload, "kind": "orders", "encoding": encoding},
            format="multipart",
        )
        assert r.status_code == 202, r.json()


def test_command_refuses_codecs_that_are_not_text(org, tmp_path):
    path = write(tmp_path, "o.csv", ORDERS_HEADER + orders(2))
    for encoding in ("rot13", "base64"):
        err = StringIO()
        with pytest.raises(SystemExit) as exit_:
            call_command(
                "import_data", "--org", "acme", "--kind", "orders", path,
                "--encoding", encoding, stdout=StringIO(), stderr=err,
            )  # fmt: skip
        assert exit_.value.code == 1
        assert f"'{encoding}' is not a text encoding" in err.getvalue()
    with tenant_context(org):
        assert not Order.objects.exists()


def test_wizard_utf16_for_a_file_without_byte_order_mark_is_a_clear_message(owner_client, org):
    r = owner_client.post(
        "/customers/imports/new/",
        {"kind": "orders", "file": SimpleUploadedFile("o.csv", ORDERS_HEADER + orders(3))},
    )
    assert r.status_code == 302
    with tenant_context(org):
        imp = Import.objects.get()
    header = imp.detected["columns"]
    post = {f"map_{i}": column for i, column in enumerate(header)}
    r = owner_client.post(
        f"/customers/imports/{imp.pk}/map/", {**post, "encoding": "utf-16", "action": "check"}
    )
    assert r.status_code == 400
    assert "does not start with a UTF-16 byte-order mark" in r.content.decode()


# --- 18: uploads too large are refused before the body is read --------------------------------


class CountingInput:
    """A request body that records how much of it the server read."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size=-1):
        chunk = self._data.read(size)
        self.read_bytes += len(chunk)
        return chunk

    def readline(self, size=-1):
        chunk = self._data.readline(size)
        self.read_bytes += len(chunk)
        return chunk


def multipart(file_bytes: bytes, kind: str = "orders") -> tuple[bytes, str]:
    boundary = "XyZbOuNdArY"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\n{kind}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="o.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + file_bytes
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_api_refuses_a_declared_huge_upload_before_reading_it(api, org):
    body, content_type = multipart(b"x" * 1000)
    stream = CountingInput(body)
    r = api.generic(
        "POST",
        "/api/v1/imports/",
        content_type=content_type,
        **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(10**9), "wsgi.input": stream},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert r.json()["error"]["message"] == (
        "The file is larger than the limit of 200 MB. Compress it as .csv.gz or split it."
    )
    assert stream.read_bytes == 0
    with tenant_context(org):
        assert not Import.objects.exists()


def test_site_refuses_a_declared_huge_upload_with_a_page(owner_client):
    body, content_type = multipart(b"x" * 1000)
    stream = CountingInput(body)
    r = owner_client.generic(
        "POST",
        "/customers/imports/new/",
        content_type=content_type,
        **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(10**9), "wsgi.input": stream},
    )
    assert r.status_code == 413
    page = r.content.decode()
    assert "The file is larger than the limit of 200 MB" in page
    assert "/customers/imports/new/" in page  # a way back to the form
    assert stream.read_bytes == 0


def test_refusal_page_never_links_off_the_site(owner_client):
    # A path of //host/ is, in a link, an address on another site.
    body, content_type = multipart(b"x" * 1000)
    r = owner_client.generic(
        "POST",
        "/",
        content_type=content_type,
        **{
            "PATH_INFO": "//evil.example/upload/",  # the test client would parse it as a host
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(10**9),
            "wsgi.input": CountingInput(body),
        },
    )
    assert r.status_code == 413
    assert 'href="//evil.example' not in r.content.decode()


def test_upload_stops_while_streaming_past_the_limit(api, org, settings):
    settings.UPLOAD_MAX_BYTES = 100 * 1024
    body, content_type = multipart(ORDERS_HEADER + orders(9000))
    # Declared within the room left for the form's other fields: only counting stops it.
    assert 300 * 1024 < len(body) < 100 * 1024 + FORM_MARGIN
    stream = CountingInput(body)
    r = api.generic(
        "POST",
        "/api/v1/imports/",
        content_type=content_type,
        **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "wsgi.input": stream},
    )
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "too_large",
        "message": "The file is larger than the limit of 100 KB. Compress it as .csv.gz or split it.",
        "fields": {"file": "Too large."},
    }
    assert stream.read_bytes < 200 * 1024
    with tenant_context(org):
        assert not Import.objects.exists()


def test_site_upload_stopped_while_streaming_shows_the_form_with_the_reason(owner_client, settings):
    settings.UPLOAD_MAX_BYTES = 100 * 1024
    upload = SimpleUploadedFile("o.csv", ORDERS_HEADER + orders(8000))
    r = owner_client.post("/customers/imports/new/", {"kind": "orders", "file": upload})
    assert r.status_code == 413
    page = r.content.decode()
    assert "The file is larger than the limit of 100 KB." in page
    assert "Up to 100 KB." in page


def test_sizes_are_printed_in_one_unit(org, settings):
    settings.UPLOAD_MAX_BYTES = 200 * 1024 * 1024
    big = SimpleUploadedFile("o.csv", b"x")
    big.size = 250 * 1024 * 1024
    with tenant_context(org), pytest.raises(ApplicationError) as refused:
        import_create(organization=org, kind="orders", uploaded_file=big)
    assert refused.value.message == (
        "The file is 250 MB; the limit is 200 MB. Compress it as .csv.gz or split it."
    )
    assert refused.value.status == 413


# --- 23: columns and attributes -------------------------------------------------------------


def test_too_many_columns_refuses_the_file(api, org, settings):
    settings.IMPORT_MAX_COLUMNS = 20
    header = ",".join(["customer_id", "email"] + [f"extra{i}" for i in range(30)])
    upload = SimpleUploadedFile("c.csv", f"{header}\nC1,a@example.com\n".encode())
    r = api.post("/api/v1/imports/", {"file": upload, "kind": "customers"}, format="multipart")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "The file has 32 columns; at most 20 are accepted. Remove the columns you do not need."
    )
    with tenant_context(org):
        assert not Import.objects.exists()


def test_oversized_attributes_reject_the_row_in_a_file(org, tmp_path, settings):
    settings.IMPORT_MAX_ATTRIBUTES_BYTES = 2048
    settings.IMPORT_MAX_FIELD_BYTES = 1024
    extras = [f"x{i}" for i in range(8)]
    header = ",".join(["customer_id", "email", *extras])
    big = ",".join(["v" * 1000] * 8)
    data = (
        f"{header}\nC1,a@example.com,{','.join('small' for _ in extras)}\nC2,b@example.com,{big}\n"
    )
    imp, error = run_import(org, tmp_path, "c.csv", data.encode(), kind="customers")
    assert error is None
    assert (imp.created, imp.rejected) == (1, 1)
    assert imp.errors[0]["row"] == 2
    assert imp.errors[0]["field"] == "attributes"
    assert imp.errors[0]["message"] == (
        "the other columns' values take 7.9 KB, more than the limit of 2 KB for one record"
    )
    with tenant_context(org):
        assert list(Customer.objects.values_list("external_id", flat=True)) == ["C1"]


def test_oversized_attributes_reject_the_record_in_the_bulk_api(api, org, settings):
    settings.IMPORT_MAX_ATTRIBUTES_BYTES = 2048
    records = [
        {"customer_id": "C1", "email": "a@example.com", "attributes": {"note": "fine"}},
        {"customer_id": "C2", "email": "b@example.com", "attributes": {"note": "n" * 5000}},
    ]
    r = api.post("/api/v1/customers/bulk/", records, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["created"], body["rejected"]) == (1, 1)
    assert body["errors"] == [
        {
            "index": 1,
            "field": "attributes",
            "message": "the attributes take 4.9 KB, more than the limit of 2 KB for one record",
        }
    ]
    with tenant_context(org):
        assert list(Customer.objects.values_list("external_id", flat=True)) == ["C1"]


def test_limits_are_documented():
    root = Path(__file__).resolve().parents[2]
    readme, guide = (root / "README.md").read_text(), (root / "docs" / "import.md").read_text()
    for name in (
        "UPLOAD_MAX_BYTES",
        "IMPORT_MAX_DECOMPRESSED_BYTES",
        "IMPORT_MAX_LINE_BYTES",
        "IMPORT_MAX_FIELD_BYTES",
        "IMPORT_MAX_ROWS",
        "IMPORT_MAX_COLUMNS",
        "IMPORT_MAX_ATTRIBUTES_BYTES",
    ):
        assert name in readme and name in guide, name


def test_oversized_attributes_are_refused_on_customer_and_product_writes(api, org, settings):
    from customers.tests.factories import CustomerFactory, ProductFactory

    settings.IMPORT_MAX_ATTRIBUTES_BYTES = 2048
    with tenant_context(org):
        ada = CustomerFactory(external_id="C1")
        mug = ProductFactory(sku="MUG")
    big = {"note": "n" * 5000}
    message = "The attributes take 4.9 KB, more than the limit of 2 KB for one record."
    r = api.patch(f"/api/v1/customers/{ada.pk}/", {"attributes": big}, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["fields"] == {"attributes": message}
    r = api.patch(f"/api/v1/products/{mug.pk}/", {"attributes": big}, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["fields"] == {"attributes": message}
    r = api.post("/api/v1/products/", {"sku": "BIG", "attributes": big}, format="json")
    assert r.status_code == 400
    r = api.patch(f"/api/v1/customers/{ada.pk}/", {"attributes": {"note": "ok"}}, format="json")
    assert r.status_code == 200
    with tenant_context(org):
        ada.refresh_from_db()
        mug.refresh_from_db()
    assert ada.attributes == {"note": "ok"} and "note" not in (mug.attributes or {})
