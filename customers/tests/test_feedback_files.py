"""Feedback files as shops really have them: old encodings, old-Mac line ends,
reviews over several lines, byte-order marks and ratings that are not numbers.
Each is imported through the real reader (the same code as `import_data` and the
import page)."""

import pytest

from customers.models import Feedback
from customers.services.imports import run_file

pytestmark = pytest.mark.django_db

HEADER = "feedback_id,customer_id,created_at,source,rating,text"


def _import(org, tmp_path, data: bytes, name="feedback.csv", **options):
    path = tmp_path / name
    path.write_bytes(data)
    return run_file(organization=org, path=str(path), kind="feedback", **options)


def _counts(out):
    c = out.counts
    return c.rows, c.created, c.updated, c.unchanged, c.rejected


def _item(external_id):
    return Feedback.objects.get(external_id=external_id)


def test_latin_1_text(in_org, tmp_path):
    data = f'{HEADER}\nf1,c1,2024-03-01,review,5,"Très bon café, merci"\n'.encode("latin-1")
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (1, 1, 0, 0, 0)
    assert _item("f1").text == "Très bon café, merci"


def test_cp1252_curly_quotes_and_euro_sign(in_org, tmp_path):
    text = "The \u201cdeluxe\u201d box was worth every \u20ac \u2013 café crème too"
    data = f'{HEADER}\nf1,c1,2024-03-01,review,4,"{text}"\n'.encode("cp1252")
    assert b"\x93" in data and b"\x94" in data and b"\x80" in data
    out = _import(in_org, tmp_path, data)
    assert out.detected["encoding"] == "cp1252"
    assert _counts(out) == (1, 1, 0, 0, 0)
    assert _item("f1").text == text


def test_a_short_cp1252_file_with_one_euro_sign(in_org, tmp_path):
    data = f"{HEADER}\nf1,c1,2024-03-01,review,3,Paid 20\u20ac\n".encode("cp1252")
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (1, 1, 0, 0, 0)
    assert _item("f1").text == "Paid 20\u20ac"


def test_old_mac_line_ends(in_org, tmp_path):
    rows = [HEADER, "f1,c1,2024-03-01,review,5,Lovely", "f2,c2,2024-03-02,support,2,Late again"]
    out = _import(in_org, tmp_path, "\r".join(rows).encode() + b"\r")
    assert _counts(out) == (2, 2, 0, 0, 0)
    assert _item("f1").text == "Lovely" and _item("f2").rating == 2
    assert _item("f2").source == "support"


def test_old_mac_line_ends_in_cp1252_with_a_review_over_several_lines(in_org, tmp_path):
    rows = [
        HEADER,
        'f1,c1,2024-03-01,review,5,"Caf\u00e9 was great.\rWill come back."',
        "f2,c2,2024-03-02,review,1,Cold",
    ]
    out = _import(in_org, tmp_path, "\r".join(rows).encode("cp1252"))
    assert _counts(out) == (2, 2, 0, 0, 0)
    assert _item("f1").text == "Caf\u00e9 was great.\nWill come back."


def test_reviews_over_several_lines_keep_their_line_breaks(in_org, tmp_path):
    data = (
        f"{HEADER}\r\n"
        'f1,c1,2024-03-01,review,4,"First line.\r\nSecond line.\r\n\r\nAfter a blank line."\r\n'
        'f2,c2,2024-03-02,review,2,"Short, with a comma"\r\n'
        'f3,,2024-03-03,support,,"Unix\nline ends, ""quoted"" too"\n'
    ).encode()
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (3, 3, 0, 0, 0)
    assert _item("f1").text == "First line.\nSecond line.\n\nAfter a blank line."
    assert _item("f2").text == "Short, with a comma"
    assert _item("f3").text == 'Unix\nline ends, "quoted" too'
    assert _item("f3").customer is None and _item("f3").rating is None


def test_a_utf8_byte_order_mark(in_org, tmp_path):
    data = b"\xef\xbb\xbf" + f"{HEADER}\nf1,c1,2024-03-01,review,5,Gr\u00fc\u00dfe\n".encode()
    out = _import(in_org, tmp_path, data)
    assert out.detected["encoding"] == "utf-8-sig"
    assert out.detected["columns"][0] == "feedback_id"
    assert _counts(out) == (1, 1, 0, 0, 0)
    assert _item("f1").text == "Grüße" and _item("f1").rating == 5


@pytest.mark.parametrize("rating", ["", "n/a", "N/A", "-", "five", "none", "?", "  "])
def test_blank_or_non_numeric_ratings_are_kept_blank(in_org, tmp_path, rating):
    data = f'{HEADER}\nf1,c1,2024-03-01,review,"{rating}",Nice shop\n'.encode()
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (1, 1, 0, 0, 0)
    assert _item("f1").rating is None
    assert _item("f1").text == "Nice shop"


@pytest.mark.parametrize(
    "rating, expected",
    [
        ("4", 4),
        ("4.5", 4.5),
        ("4,5", 4.5),
        ("4/5", 4),
        ("4 / 5", 4),
        ("4 out of 5", 4),
        ("3.5/5", 3.5),
        ("4 stars", 4),
        ("1 star", 1),
        ("★★★★", 4),
        ("★★★☆☆", 3),
        ("  5 ", 5),
    ],
)
def test_ratings_written_as_people_write_them(in_org, tmp_path, rating, expected):
    data = f'{HEADER}\nf1,c1,2024-03-01,review,"{rating}",Nice\n'.encode()
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (1, 1, 0, 0, 0)
    assert _item("f1").rating == expected


def test_a_blank_rating_still_needs_text(in_org, tmp_path):
    data = f"{HEADER}\nf1,c1,2024-03-01,review,n/a,\nf2,c1,2024-03-01,review,,Ok\n".encode()
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (2, 1, 0, 0, 1)
    assert out.errors[0]["field"] == "text"


def test_a_hostile_file_with_every_case_at_once(in_org, tmp_path):
    rows = [
        HEADER,
        'f1,c1,01/03/2024,review,n/a,"\u201cLovely\u201d caf\u00e9.\rWould buy again for 5\u20ac."',
        "f2,c2,02/03/2024,support,five,Slow reply",
        "f3,,03/03/2024,survey,4/5,OK",
        'f4,c3,13/03/2024,review,-,"Two\r\rparagraphs"',
    ]
    data = "\r".join(rows).encode("cp1252")
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (4, 4, 0, 0, 0)
    assert _item("f1").text == "\u201cLovely\u201d caf\u00e9.\nWould buy again for 5\u20ac."
    assert [_item(f).rating for f in ("f1", "f2", "f3", "f4")] == [None, None, 4, None]
    assert _item("f4").text == "Two\n\nparagraphs"
    assert _item("f3").customer is None
    # Imported twice: nothing changes.
    assert _counts(_import(in_org, tmp_path, data)) == (4, 0, 0, 4, 0)


def test_cp1252_text_first_met_after_the_part_read_to_detect_the_encoding(in_org, tmp_path):
    """The encoding is detected from the file's start: a long file of plain English
    whose first 'café' (cp1252) comes far into it is still read."""
    plain = "".join(
        f"p{i},c{i % 50},2024-03-01,review,4,Plain words about the shop {i} {'ok ' * 60}\n"
        for i in range(1400)
    )
    late = 'f1,c1,2024-03-02,review,5,"Caf\u00e9 \u201cgreat\u201d, 5\u20ac"\n'
    data = f"{HEADER}\n{plain}{late}".encode("cp1252")
    assert len(data) > 300_000
    out = _import(in_org, tmp_path, data)
    assert _counts(out) == (1401, 1401, 0, 0, 0)
    assert _item("f1").text == "Caf\u00e9 \u201cgreat\u201d, 5\u20ac"
