"""The survey builder's form: the survey's own fields (a Django form) and a fixed
number of question rows read from the POST, so questions can be added, removed and
reordered without JavaScript: each row has a type, a text, options (one a line),
"required", a position number to reorder by, and "remove"; blank rows are ignored.
The rules and their messages are research/surveys.py's (`validate_questions`)."""

from __future__ import annotations

from typing import Any

from django import forms

from core.exceptions import ApplicationError

from .models import PersonalLinks, QuestionType
from .surveys import MAX_QUESTIONS, validate_questions

EXTRA_ROWS = 3  # blank rows offered below the questions already there
MIN_ROWS = 5


class SurveyForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=200,
        help_text="Shown at the top of the survey, for example “How was your order?”.",
    )
    intro = forms.CharField(
        label="Introduction",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="A sentence or two above the questions: why you ask and how long it takes.",
    )
    thank_you = forms.CharField(
        label="Thank-you text",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown after someone answers.",
    )
    personal_links = forms.ChoiceField(
        label="When someone answers twice through their own link",
        choices=[
            (
                PersonalLinks.EDIT,
                "Let them change their answers (the second answer replaces the first)",
            ),
            (PersonalLinks.ONCE, "Accept their first answer only"),
        ],
        widget=forms.RadioSelect,
        initial=PersonalLinks.EDIT,
    )


def row_count(questions: list[dict[str, Any]]) -> int:
    return min(MAX_QUESTIONS, max(MIN_ROWS, len(questions) + EXTRA_ROWS))


def rows_from_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i in range(row_count(questions)):
        q = questions[i] if i < len(questions) else {}
        rows.append(
            {
                "index": i,
                "number": i + 1,
                "position": i + 1,
                "type": q.get("type", ""),
                "text": q.get("text", ""),
                "options": "\n".join(q.get("options") or []),
                "required": bool(q.get("required")),
                "remove": False,
                "error": "",
            }
        )
    return rows


def rows_from_post(post) -> list[dict[str, Any]]:
    try:
        count = int(post.get("rows", MIN_ROWS))
    except (TypeError, ValueError):
        count = MIN_ROWS
    count = max(1, min(MAX_QUESTIONS + EXTRA_ROWS, count))
    rows = []
    for i in range(count):
        p = f"q-{i}-"
        try:
            position = float(post.get(p + "position") or i + 1)
        except ValueError:
            position = i + 1
        rows.append(
            {
                "index": i,
                "number": i + 1,
                "position": post.get(p + "position") or str(i + 1),
                "_order": (position, i),
                "type": (post.get(p + "type") or "").strip(),
                "text": (post.get(p + "text") or "").strip(),
                "options": (post.get(p + "options") or "").replace("\r\n", "\n").strip(),
                "required": post.get(p + "required") == "on",
                "remove": post.get(p + "remove") == "on",
                "error": "",
            }
        )
    return rows


def questions_from_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """(questions, error): the rows kept (not removed, with a text) in position order,
    each row's own problem written on it; `error` is the survey-wide problem."""
    kept = [r for r in rows if not r["remove"] and r["text"]]
    kept.sort(key=lambda r: r["_order"])
    questions = []
    for r in kept:
        q: dict[str, Any] = {"type": r["type"], "text": r["text"], "required": r["required"]}
        if r["type"] == QuestionType.CHOICE:
            q["options"] = [line.strip() for line in r["options"].split("\n") if line.strip()]
        try:
            validate_questions([q])
        except ApplicationError as exc:
            r["error"] = exc.message.replace("Question 1", f"Question row {r['number']}", 1)
        questions.append(q)
    if any(r["error"] for r in rows):
        return questions, "Some questions need a change: see the messages beside them."
    try:
        questions = validate_questions(questions)
    except ApplicationError as exc:
        return questions, exc.message
    return questions, ""
