"""Personalised messages: an owner's subject and body templates, compiled once per
campaign and rendered for each customer.

Safety: templates are Jinja2 in a `SandboxedEnvironment` with no loader and no
globals; the only names a template sees are the merge fields of `MERGE_FIELDS`
(plain strings or None), so settings, the ORM, other customers and other
organisations are out of reach. A template may hold text, merge fields, `if`,
`set`, simple arithmetic and a short list of text filters (`ALLOWED_FILTERS`);
anything else (other names, attributes, calls, loops, macros, other templates) is
refused when the template is compiled, with the field (`subject`/`body`) and line
named. `*`, `**` and `%` are bounded so a template cannot build a huge string;
anything that still fails while rendering is an `ApplicationError` too.

Email: the owner writes plain text with optional simple HTML. Per customer the
rendered body is sanitised with nh3 (basic formatting and http/https/mailto links
only), bare URLs become links, paragraphs become <p>, and every http(s) link goes
through the sender's `link()` (which turns it into a tracked link). The responsive
layout is MJML (mjml-python) with its CSS inlined by css-inline, both done once per
`Compiled`; each customer's message is the layout's parts joined around their
content. The text part comes from the same sanitised content (links as
"text (url)").

Blocks: `{% recommendations 3 %}` (the customer's recommended products with image,
name and link) and `{% offer %}` (the customer's offer code) render a marker in the
template's output; the marker is replaced after sanitising by HTML we build, so it
survives nh3 without owner HTML ever being trusted.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

import css_inline
import mjml
import nh3
from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment

from core.exceptions import ApplicationError

__all__ = [
    "MERGE_FIELDS",
    "Compiled",
    "Rendered",
    "compile_message",
    "customer_contexts",
    "sms_parts",
    "uses_field",
]

MERGE_FIELDS = (
    "first_name",
    "last_name",
    "segment",
    "persona",
    "favourites",
    "loyalty_tier",
    "offer_code",
    "offer_name",
    "offer_ends",
    "survey_link",
    "shop_name",
)
MAX_TEMPLATE_CHARS = 50_000
MAX_RECOMMENDATIONS = 12
MAX_BUILT_LENGTH = 10_000  # the longest string or list `*` may build in a template

# What an owner's HTML may keep (everything else is dropped, its text kept).
ALLOWED_TAGS = {
    "a", "b", "strong", "i", "em", "u", "s", "br", "p", "ul", "ol", "li",
    "h1", "h2", "h3", "blockquote", "hr", "small", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}
_BLOCK_TAG = re.compile(r"^\s*<(p|ul|ol|h1|h2|h3|blockquote|hr)\b", re.I)

# Block markers: private-use characters that nh3 keeps as text.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(f"{_MARK_OPEN}(rec:(\\d+)|offer){_MARK_CLOSE}")
_URL_IN_TEXT = re.compile(r"(?<![\w/=\"'])(https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]])")
_HREF = re.compile(r'<a href="([^"]*)"')

# Styles for the content inserted into the layout (inlined into each fragment).
CONTENT_CSS = """
p { margin: 0 0 16px 0; }
a { color: #1d4ed8; text-decoration: underline; }
h1, h2, h3 { margin: 0 0 12px 0; line-height: 1.3; color: #111827; }
h1 { font-size: 24px; } h2 { font-size: 20px; } h3 { font-size: 17px; }
ul, ol { margin: 0 0 16px 0; padding-left: 22px; }
blockquote { margin: 0 0 16px 0; padding-left: 12px; border-left: 3px solid #d1d5db; color: #4b5563; }
hr { border: 0; border-top: 1px solid #e5e7eb; margin: 20px 0; }
.sg-recs { width: 100%; border-collapse: collapse; margin: 0 0 16px 0; }
.sg-rec { padding: 8px 0; vertical-align: top; border-top: 1px solid #e5e7eb; }
.sg-rec img { width: 96px; max-width: 96px; height: auto; border-radius: 6px; display: block; }
.sg-rec-name { padding: 8px 0 8px 12px; vertical-align: middle; font-weight: bold; border-top: 1px solid #e5e7eb; }
.sg-rec-only { padding-left: 0; }
.sg-offer { margin: 0 0 16px 0; padding: 14px; border: 2px dashed #1d4ed8; border-radius: 8px; text-align: center; font-size: 18px; }
"""

_FOOTER_LINK = ' style="color:#4b5563;text-decoration:underline;"'
_LAYOUT = """<mjml lang="en">
  <mj-head>
    <mj-title>SGXTITLEX</mj-title>
    <mj-preview>SGXPREVIEWX</mj-preview>
    <mj-attributes>
      <mj-all font-family="Helvetica, Arial, sans-serif" />
      <mj-text font-size="16px" line-height="1.5" color="#1f2937" />
    </mj-attributes>
  </mj-head>
  <mj-body background-color="#f3f4f6" width="600px">
    <mj-section padding="24px 0 8px 0">
      <mj-column>
        <mj-text align="center" font-size="18px" font-weight="bold" color="#111827">SGXSHOPX</mj-text>
      </mj-column>
    </mj-section>
    <mj-section background-color="#ffffff" border-radius="8px" padding="12px 4px">
      <mj-column>
        <mj-text>SGXBODYX</mj-text>
      </mj-column>
    </mj-section>
    <mj-section padding="8px 0 24px 0">
      <mj-column>
        <mj-text align="center" font-size="12px" color="#6b7280">SGXFOOTERX</mj-text>
        <mj-raw>SGXPIXELX</mj-raw>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""
_SLOTS = ("TITLE", "PREVIEW", "SHOP", "BODY", "FOOTER", "PIXEL")
_SLOT = re.compile("SGX(" + "|".join(_SLOTS) + ")X")


@lru_cache(maxsize=1)
def _layout_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The layout compiled by MJML and CSS-inlined, split at its slots:
    (literal parts, slot names), with len(parts) == len(names) + 1. The layout is
    the same for every campaign, so this runs once per process."""
    compiled = mjml.mjml2html(_LAYOUT, fonts={}, disable_comments=True)
    inlined = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(
        compiled
    )
    pieces = _SLOT.split(inlined)
    return tuple(pieces[0::2]), tuple(pieces[1::2])


_CONTENT_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


# --- the sandbox ----------------------------------------------------------------------
class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        if operator == "%":
            if isinstance(left, str):  # printf formatting can pad to any width
                raise SecurityError("formatting text with % is not available")
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise SecurityError("the power is too large")
        else:
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_BUILT_LENGTH:
                        raise SecurityError("the text built with * is too long")
        return super().call_binop(context, operator, left, right)


class _BlocksExtension(Extension):
    """`{% recommendations N %}` and `{% offer %}`: each outputs a marker that the
    renderer replaces with the customer's products or offer."""

    tags = {"recommendations", "offer"}

    def parse(self, parser):
        token = next(parser.stream)
        if token.value == "offer":
            return nodes.Output([nodes.Const(f"{_MARK_OPEN}offer{_MARK_CLOSE}")]).set_lineno(
                token.lineno
            )
        count = 3
        if parser.stream.current.type != "block_end":
            expr = parser.parse_expression()
            if not (isinstance(expr, nodes.Const) and type(expr.value) is int):
                parser.fail(
                    "recommendations takes a whole number, e.g. {% recommendations 3 %}",
                    token.lineno,
                )
            count = max(1, min(MAX_RECOMMENDATIONS, expr.value))
        return nodes.Output([nodes.Const(f"{_MARK_OPEN}rec:{count}{_MARK_CLOSE}")]).set_lineno(
            token.lineno
        )


def _finalize(value):
    return "" if value is None else value


def _environment(*, html: bool) -> _Sandbox:
    env = _Sandbox(
        loader=None,
        autoescape=html,
        extensions=[_BlocksExtension],
        finalize=_finalize,
        keep_trailing_newline=False,
    )
    env.globals.clear()  # no range, dict, lipsum, cycler, joiner, namespace
    return env


_ENVS = {True: _environment(html=True), False: _environment(html=False)}


def _fail(field_name: str, line: int | None, message: str) -> ApplicationError:
    where = f"{field_name}, line {line}" if line else field_name
    return ApplicationError(
        f"The {where}: {message}",
        {field_name: [f"line {line}: {message}" if line else message]},
    )


# What a message template may contain: text, merge fields, conditions, simple
# arithmetic and text filters. No loops, macros, calls, attribute access or other
# templates: nothing that could run long, build huge text or reach an object.
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
    nodes.CondExpr, nodes.And, nodes.Or, nodes.Not, nodes.Compare, nodes.Operand,
    nodes.Filter, nodes.Test, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div,
    nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.Neg, nodes.Pos, nodes.Getitem, nodes.Slice,
    nodes.Assign, nodes.Tuple, nodes.List, nodes.Keyword, nodes.With, nodes.FilterBlock,
)  # fmt: skip
ALLOWED_FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int",
    "last", "length", "lower", "replace", "round", "string", "striptags", "title", "trim",
    "truncate", "upper", "wordcount",
})  # fmt: skip
_REFUSED = {
    nodes.For: "loops ({% for %}) are not available in messages.",
    nodes.Macro: "macros are not available in messages.",
    nodes.CallBlock: "{% call %} is not available in messages.",
    nodes.Call: "calling functions is not available in messages; use a filter, e.g. {{ first_name|title }}.",
    nodes.Include: "messages cannot include other templates.",
    nodes.Extends: "messages cannot extend other templates.",
    nodes.Import: "messages cannot import other templates.",
    nodes.FromImport: "messages cannot import other templates.",
}


def _refused(node) -> str | None:
    """Why `node` may not appear in a message template, or None."""
    if isinstance(node, nodes.Getattr):
        if node.attr.startswith("_"):
            return f"'{node.attr}' cannot be used in a message."
        return f"merge fields have no parts ('.{node.attr}'); use the field itself."
    if not isinstance(node, _ALLOWED_NODES):
        for kind, reason in _REFUSED.items():
            if isinstance(node, kind):
                return reason
        return f"'{type(node).__name__}' is not available in messages."
    if isinstance(node, nodes.Filter | nodes.FilterBlock):
        name = node.name if isinstance(node, nodes.Filter) else node.filter.name
        if name not in ALLOWED_FILTERS:
            return f"the filter '{name}' is not available in messages."
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        if str(node.arg.value).startswith("_"):
            return f"'{node.arg.value}' cannot be used in a message."
    return None


def _parse(env: _Sandbox, source: str, field_name: str):
    if len(source) > MAX_TEMPLATE_CHARS:
        raise _fail(field_name, None, f"is too long (at most {MAX_TEMPLATE_CHARS:,} characters).")
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        raise _fail(field_name, exc.lineno, exc.message or "the template cannot be read.") from exc
    unknown = sorted(meta.find_undeclared_variables(ast) - set(MERGE_FIELDS))
    if unknown:
        name = unknown[0]
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), None)
        raise _fail(
            field_name,
            line,
            f"unknown merge field {{{{ {name} }}}}. Use one of: " + ", ".join(MERGE_FIELDS) + ".",
        )
    for node in ast.find_all(nodes.Node):
        problem = _refused(node)
        if problem:
            raise _fail(field_name, getattr(node, "lineno", None), problem)
    try:
        return env.from_string(ast)
    except TemplateError as exc:  # pragma: no cover - parse already succeeded
        raise _fail(field_name, getattr(exc, "lineno", None), str(exc)) from exc


# --- rendering ------------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    links: list[str] = field(default_factory=list)  # the body's http(s) URLs, before link()


def _first_line(message: str) -> str:
    return message.splitlines()[0] if message else "the template cannot be rendered."


def _render(template, field_name: str, values: dict) -> str:
    try:
        return template.render(values)
    except SecurityError as exc:
        raise _fail(field_name, None, f"not allowed in a message ({exc}).") from exc
    except TemplateError as exc:
        raise _fail(field_name, getattr(exc, "lineno", None), _first_line(str(exc))) from exc
    except (TypeError, ValueError, ArithmeticError, OverflowError, RecursionError) as exc:
        raise _fail(field_name, None, f"cannot be rendered ({exc}).") from exc


def _values(ctx: dict) -> dict[str, Any]:
    out = {}
    for name in MERGE_FIELDS:
        value = ctx.get(name)
        # only plain values reach a template: never a model instance
        if value is not None and not isinstance(value, str | int | float):
            value = str(value)
        out[name] = value
    return out


def _esc(value: Any) -> str:
    return html_lib.escape("" if value is None else str(value), quote=True)


def _safe_url(url: str) -> str:
    return url if re.match(r"^https?://", url or "", re.I) else ""


def _autolink(fragment: str) -> str:
    """Bare http(s) URLs in text (outside tags and existing links) become links."""
    out, inside_a = [], False
    for piece in re.split(r"(<[^>]*>)", fragment):
        if piece.startswith("<"):
            low = piece.lower()
            if low.startswith("<a "):
                inside_a = True
            elif low.startswith("</a"):
                inside_a = False
            out.append(piece)
        elif inside_a or "http" not in piece:
            out.append(piece)
        else:
            out.append(
                _URL_IN_TEXT.sub(lambda m: f'<a href="{m.group(1)}">{m.group(1)}</a>', piece)
            )
    return "".join(out)


def _paragraphs(fragment: str) -> str:
    # a block ({% offer %}, {% recommendations %}) is a paragraph of its own
    fragment = _MARKER.sub(lambda m: "\n\n" + m.group(0) + "\n\n", fragment.replace("\r\n", "\n"))
    chunks = [c.strip() for c in re.split(r"\n\s*\n", fragment)]
    out = []
    for chunk in chunks:
        if not chunk:
            continue
        if _BLOCK_TAG.match(chunk) or _MARKER.fullmatch(chunk):
            out.append(chunk)
        else:
            out.append("<p>" + chunk.replace("\n", "<br>\n") + "</p>")
    return "\n".join(out)


def _rec_items(ctx: dict, count: int) -> list[dict]:
    return [r for r in (ctx.get("recommendations") or []) if r.get("name")][:count]


def _recs_html(items: list[dict], link: Callable[[str], str]) -> str:
    if not items:
        return ""
    rows = []
    for item in items:
        url = _safe_url(item.get("url") or "")
        href = _esc(link(url)) if url else ""
        name = _esc(item["name"])
        name_html = f'<a href="{href}">{name}</a>' if href else name
        image = _safe_url(item.get("image_url") or "")
        if image:
            image_html = f'<img src="{_esc(image)}" alt="{name}" width="96">'
            if href:
                image_html = f'<a href="{href}">{image_html}</a>'
            rows.append(
                f'<tr><td class="sg-rec" width="96">{image_html}</td>'
                f'<td class="sg-rec-name">{name_html}</td></tr>'
            )
        else:  # no picture: the name takes the whole row
            rows.append(
                f'<tr><td class="sg-rec-name sg-rec-only" colspan="2">{name_html}</td></tr>'
            )
    return '<table class="sg-recs" role="presentation">' + "".join(rows) + "</table>"


def _recs_text(items: list[dict], link: Callable[[str], str]) -> str:
    lines = []
    for item in items:
        url = _safe_url(item.get("url") or "")
        lines.append(f"- {item['name']} ({link(url)})" if url else f"- {item['name']}")
    return "\n".join(lines)


def _offer_html(ctx: dict) -> str:
    code = ctx.get("offer_code")
    if not code:
        return ""
    name = f"{_esc(ctx['offer_name'])}<br>" if ctx.get("offer_name") else ""
    ends = (
        f'<br><span style="font-size:14px;">Until {_esc(ctx["offer_ends"])}</span>'
        if ctx.get("offer_ends")
        else ""
    )
    return _CONTENT_INLINER.inline_fragment(
        f'<div class="sg-offer">{name}Your code: <strong>{_esc(code)}</strong>{ends}</div>',
        CONTENT_CSS,
    )


def _offer_text(ctx: dict) -> str:
    code = ctx.get("offer_code")
    if not code:
        return ""
    name = f"{ctx['offer_name']}: " if ctx.get("offer_name") else ""
    ends = f" (until {ctx['offer_ends']})" if ctx.get("offer_ends") else ""
    return f"{name}Your code: {code}{ends}"


class _TextMaker(HTMLParser):
    """The plain-text part from the sanitised HTML: links as "text (url)"."""

    def __init__(self, urls: list[str]):
        super().__init__(convert_charrefs=True)
        self.urls = urls  # slot number -> URL, to show a link whose text is its URL once
        self.out: list[str] = []
        self.href: str | None = None
        self.link_text: list[str] = []
        self.list_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.href = dict(attrs).get("href") or ""
            self.link_text = []
        elif tag == "br":
            self._emit("\n")
        elif tag == "li":
            self._emit("\n- ")
        elif tag in ("p", "h1", "h2", "h3", "blockquote", "ul", "ol", "table", "tr", "div"):
            self._emit("\n\n" if tag != "tr" else "\n")
        elif tag == "hr":
            self._emit("\n\n----\n\n")

    def handle_endtag(self, tag):
        if tag == "a" and self.href is not None:
            text = "".join(self.link_text).strip()
            href = self.href
            self.href = None
            if not href:
                self.out.append(text)
            elif not text or text == href or text == self._slot_url(href):
                self.out.append(href)
            else:
                self.out.append(f"{text} ({href})")
        elif tag in ("p", "h1", "h2", "h3", "blockquote", "ul", "ol", "table", "div"):
            self._emit("\n\n")
        elif tag == "td":
            self._emit(" ")

    def handle_data(self, data):
        data = re.sub(r"[ \t\r\n]+", " ", data)
        if self.href is not None:
            self.link_text.append(data)
        else:
            self.out.append(data)

    def _slot_url(self, href: str) -> str | None:
        match = re.fullmatch(f"{_URL_SLOT_OPEN}(\\d+){_URL_SLOT_CLOSE}", href)
        return self.urls[int(match.group(1))] if match else None

    def _emit(self, text):
        if self.href is not None:
            self.link_text.append(" ")
        else:
            self.out.append(text)

    def text(self) -> str:
        raw = "".join(self.out)
        raw = re.sub(r"[ \t]+\n", "\n", raw)
        raw = re.sub(r"\n[ \t]+", "\n", raw)
        raw = re.sub(r"\n{3,}", "\n\n", raw)
        return raw.strip()


def _html_to_text(fragment: str, urls: list[str]) -> str:
    maker = _TextMaker(urls)
    maker.feed(fragment)
    maker.close()
    return maker.text()


_URL_SLOT_OPEN, _URL_SLOT_CLOSE = "\ue002", "\ue003"
_SLOT_OR_MARKER = re.compile(
    f"{_URL_SLOT_OPEN}(\\d+){_URL_SLOT_CLOSE}|{_MARK_OPEN}(rec:(\\d+)|offer){_MARK_CLOSE}"
)


@lru_cache(maxsize=1024)  # about 10 MB at most: bodies of a few kilobytes
def _prepare(body: str) -> tuple[str, str, tuple[str, ...]]:
    """The customer-independent work on a rendered body, cached by its text (many
    customers share a first name, and a body without merge fields is the same for
    all): sanitise, link bare URLs, make paragraphs, inline the CSS, and derive the
    text part. Each http(s) link becomes a numbered slot and each block stays a
    marker; `render` fills both per customer. Returns (html, text, urls)."""
    clean = nh3.clean(
        body,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )
    fragment = _paragraphs(_autolink(clean))
    urls: list[str] = []

    def slot(match: re.Match) -> str:
        url = html_lib.unescape(match.group(1))
        if not re.match(r"^https?://", url, re.I):
            return match.group(0)
        if url not in urls:
            urls.append(url)
        return f'<a href="{_URL_SLOT_OPEN}{urls.index(url)}{_URL_SLOT_CLOSE}"'

    fragment = _HREF.sub(slot, fragment)
    text = _html_to_text(fragment, urls)
    # block markers stand alone in the text part
    text = _MARKER.sub(lambda m: "\n\n" + m.group(0) + "\n\n", text)
    html = _CONTENT_INLINER.inline_fragment(fragment, CONTENT_CSS)
    return html, text, tuple(urls)


class _Tracker:
    """`link()` once per distinct URL of a message, remembering them in order
    (`Rendered.links`): the email and the SMS renderers both track this way."""

    def __init__(self, link: Callable[[str], str]):
        self.link = link
        self.links: list[str] = []
        self._tracked: dict[str, str] = {}

    def __call__(self, url: str) -> str:
        if url not in self._tracked:
            self.links.append(url)
            self._tracked[url] = self.link(url)
        return self._tracked[url]


class Compiled:
    """A campaign's (or variant's) subject and body, parsed once; `render` per customer."""

    def __init__(self, *, channel: str, subject: str, body: str):
        if channel not in ("email", "sms"):
            raise ApplicationError("channel must be email or sms.", {"channel": ["email or sms"]})
        self.channel = channel
        html = channel == "email"
        env = _ENVS[html]
        self.subject_source = subject or ""
        self.body_source = body or ""
        # the subject is plain text in either channel: never autoescaped
        self._subject = _parse(_ENVS[False], self.subject_source, "subject") if html else None
        self._body = _parse(env, self.body_source, "body")
        if html:
            self._parts, self._slots = _layout_parts()

    # -- email ---------------------------------------------------------------
    def render(
        self,
        ctx: dict,
        *,
        link: Callable[[str], str] = lambda url: url,
        unsubscribe_url: str = "",
        open_pixel_url: str = "",
        preferences_url: str = "",
    ) -> Rendered:
        values = _values(ctx)
        if self.channel == "sms":
            return self._render_sms(ctx, values, link, unsubscribe_url, preferences_url)
        assert self._subject is not None
        subject = _render(self._subject, "subject", values)
        subject = " ".join(_MARKER.sub("", subject).split())
        body = _render(self._body, "body", values)
        html_fragment, text, urls = _prepare(body)

        track = _Tracker(link)

        def html_slot(match: re.Match) -> str:
            if match.group(1) is not None:
                return _esc(track(urls[int(match.group(1))]))
            if match.group(2) == "offer":
                return _offer_html(ctx)
            return _CONTENT_INLINER.inline_fragment(
                _recs_html(_rec_items(ctx, int(match.group(3))), track), CONTENT_CSS
            )

        def text_slot(match: re.Match) -> str:
            if match.group(1) is not None:
                return track(urls[int(match.group(1))])
            if match.group(2) == "offer":
                return _offer_text(ctx)
            return _recs_text(_rec_items(ctx, int(match.group(3))), track)

        html_fragment = _SLOT_OR_MARKER.sub(html_slot, html_fragment)
        text = _SLOT_OR_MARKER.sub(text_slot, text)
        text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        shop = values.get("shop_name") or ""
        footer_bits = []
        text_footer = []
        if unsubscribe_url:
            footer_bits.append(f'<a href="{_esc(unsubscribe_url)}"{_FOOTER_LINK}>Unsubscribe</a>')
            text_footer.append(f"Unsubscribe: {unsubscribe_url}")
        if preferences_url:
            footer_bits.append(
                f'<a href="{_esc(preferences_url)}"{_FOOTER_LINK}>Email preferences</a>'
            )
            text_footer.append(f"Email preferences: {preferences_url}")
        why = (
            f"You are receiving this because you agreed to hear from {_esc(shop)}." if shop else ""
        )
        footer = why + ("<br>" if why and footer_bits else "") + " &middot; ".join(footer_bits)
        if text_footer or shop:
            text += "\n\n--\n" + "\n".join(
                (
                    [f"You are receiving this because you agreed to hear from {shop}."]
                    if shop
                    else []
                )
                + text_footer
            )
        pixel = (
            f'<img src="{_esc(open_pixel_url)}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0;">'
            if open_pixel_url
            else ""
        )
        slots = {
            "TITLE": _esc(subject),
            "PREVIEW": _esc(" ".join(re.sub(r"\(?https?://\S+", "", text).split())[:120]),
            "SHOP": _esc(shop),
            "BODY": html_fragment,
            "FOOTER": footer,
            "PIXEL": pixel,
        }
        out = [self._parts[0]]
        for name, part in zip(self._slots, self._parts[1:], strict=True):
            out.append(slots[name])
            out.append(part)
        return Rendered(subject=subject, html="".join(out), text=text, links=track.links)

    # -- sms -----------------------------------------------------------------
    def _render_sms(self, ctx, values, link, unsubscribe_url, preferences_url) -> Rendered:
        body = _render(self._body, "body", values)
        # an SMS is text: any tags the owner typed are dropped, entities read back
        body = html_lib.unescape(nh3.clean(body, tags=set(), strip_comments=True))
        track = _Tracker(link)

        def block_text(match: re.Match) -> str:
            if match.group(1) == "offer":
                return _offer_text(ctx)
            items = _rec_items(ctx, int(match.group(2)))
            return "\n".join(
                f"{i['name']} {track(i['url'])}" if _safe_url(i.get("url") or "") else i["name"]
                for i in items
            )

        text = _URL_IN_TEXT.sub(lambda m: track(m.group(1)), body)
        text = _MARKER.sub(block_text, text)
        text = re.sub(r"[ \t]+", " ", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        stop = (
            f"Stop: {preferences_url or unsubscribe_url}"
            if (preferences_url or unsubscribe_url)
            else "Reply STOP to opt out"
        )
        text = f"{text}\n{stop}" if text else stop
        return Rendered(subject="", html="", text=text, links=track.links)


def uses_field(source: str, name: str, *, channel: str = "email") -> bool:
    """Whether a template reads the merge field `name` (in `{{ }}`, a condition or a
    filter; not in text or comments). A template that cannot be read counts as not
    using it: compiling it reports that problem."""
    if not source or name not in source:
        return False
    try:
        ast = _ENVS[channel == "email"].parse(source)
    except TemplateError:
        return False
    return name in meta.find_undeclared_variables(ast)


def compile_message(*, channel: str, subject: str, body: str) -> Compiled:
    """Parse a message's templates once; raises ApplicationError naming the field and line."""
    return Compiled(channel=channel, subject=subject, body=body)


# --- merge fields for a batch of customers ----------------------------------------------
_CHUNK = 2000


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _names(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def offer_ends_words(offer, organization) -> str | None:
    """The offer's last day in the organisation's time zone ("31 December 2026")."""
    import zoneinfo

    if offer is None or offer.ends_at is None:
        return None
    try:
        zone = zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    day = offer.ends_at.astimezone(zone)
    return f"{day.day} {day.strftime('%B %Y')}"


def customer_contexts(customers: list, *, organization, offer=None, survey=None) -> dict[int, dict]:
    """Merge fields for a batch of customers (instances or ids) of `organization`,
    in a few queries per 2,000 customers: {customer id: {merge field: value,
    "recommendations": [{"name", "url", "image_url"}]}}. `segment` and `persona` are
    names from the live segmentation; `favourites` the names of the customer's top
    three recommended products; products hidden, out of stock or not merchandise
    are left out; `loyalty_tier` the customer's tier in the loyalty programme. With
    the campaign's `offer`: `offer_code` is the code that customer was given (None in
    the offer's hold-out or outside it), `offer_name` and `offer_ends` its terms. With
    the campaign's `survey` (of `organization`): `survey_link` is that customer's own
    signed link to it (research.links.personal_url); None without a survey."""
    from accounts.tenancy import tenant_context
    from customers.models import Customer, Product
    from loyalty.selectors import tiers_for
    from recommendations.models import CustomerRecommendation, RecommendationRun
    from research.links import personal_url
    from segmentation.models import Persona
    from segmentation.selectors import customer_segments

    with tenant_context(organization):
        rows = [c for c in customers if not isinstance(c, int)]
        ids = [c for c in customers if isinstance(c, int)]
        for chunk in _chunks(ids):
            rows += list(
                Customer.objects.filter(pk__in=chunk).only("id", "first_name", "last_name")
            )
        # never another organisation's customer, whatever the caller passed
        rows = [c for c in rows if c.organization_id == organization.pk]
        if survey is not None and survey.organization_id != organization.pk:
            raise ApplicationError("This survey belongs to another organisation.")
        all_ids = [c.pk for c in rows]
        shop = organization.name
        out: dict[int, dict] = {
            c.pk: {
                "first_name": c.first_name or None,
                "last_name": c.last_name or None,
                "segment": None,
                "persona": None,
                "favourites": None,
                "loyalty_tier": None,
                "offer_code": None,
                "offer_name": offer.name if offer is not None else None,
                "offer_ends": offer_ends_words(offer, organization),
                "survey_link": personal_url(survey, c.pk) if survey is not None else None,
                "shop_name": shop,
                "recommendations": [],
            }
            for c in rows
        }
        for chunk in _chunks(all_ids):
            for cid, tier in tiers_for(customer_ids=chunk).items():
                if cid in out:
                    out[cid]["loyalty_tier"] = tier
            if offer is not None:
                from offers.selectors import customer_codes

                for cid, code in customer_codes(offer=offer, customer_ids=chunk).items():
                    if cid in out:
                        out[cid]["offer_code"] = code
        segment_of: dict[int, int] = {}
        for chunk in _chunks(all_ids):
            for cid, entry in customer_segments(customer_ids=chunk).items():
                if entry["segment"]:
                    out[cid]["segment"] = entry["segment"]["name"]
                    segment_of[cid] = entry["segment"]["id"]
        if segment_of:
            personas = dict(
                Persona.objects.filter(segment_id__in=set(segment_of.values())).values_list(
                    "segment_id", "name"
                )
            )
            for cid, sid in segment_of.items():
                out[cid]["persona"] = personas.get(sid)

        run = RecommendationRun.objects.filter(is_live=True).first()
        if run is not None:
            for chunk in _chunks(all_ids):
                recs = (
                    CustomerRecommendation.objects.filter(
                        run=run, customer_id__in=chunk, rank__lte=MAX_RECOMMENDATIONS * 2
                    )
                    .exclude(product__hidden=True)
                    .exclude(product__merchandise=False)
                    .exclude(product__in_stock=False)
                    .order_by("customer_id", "rank")
                    .values_list("customer_id", "product__name", "product__sku", "product__url",
                                 "product__image_url")
                )  # fmt: skip
                for cid, name, sku, url, image in recs:
                    items = out[cid]["recommendations"]
                    if len(items) < MAX_RECOMMENDATIONS:
                        items.append({"name": name or sku, "url": url, "image_url": image})
            # customers with nothing bought: their segment's popular products
            popular = run.popular or {}
            cold = [cid for cid in all_ids if not out[cid]["recommendations"]]
            if cold:
                wanted: dict[int, list[int]] = {}
                for cid in cold:
                    sid = segment_of.get(cid)
                    wanted[cid] = list(
                        ((popular.get("segments") or {}).get(str(sid)) if sid else None)
                        or popular.get("overall")
                        or []
                    )[: MAX_RECOMMENDATIONS * 2]
                pids = {p for v in wanted.values() for p in v}
                products = {
                    p.pk: p
                    for p in Product.objects.filter(pk__in=pids, hidden=False, merchandise=True)
                    .exclude(in_stock=False)
                    .only("id", "name", "sku", "url", "image_url")
                }
                for cid, pid_list in wanted.items():
                    out[cid]["recommendations"] = [
                        {"name": p.name or p.sku, "url": p.url, "image_url": p.image_url}
                        for p in (products[i] for i in pid_list if i in products)
                    ][:MAX_RECOMMENDATIONS]
        for entry in out.values():
            names = [r["name"] for r in entry["recommendations"][:3]]
            entry["favourites"] = _names(names) or None
    return out


# --- SMS length ---------------------------------------------------------------------
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("\f^{}\\[~]|€")


def sms_parts(text: str) -> dict[str, Any]:
    """Encoding and length of an SMS (GSM 03.38): GSM-7 when every character is in
    the basic or extension table (extension characters count 2), 160 characters in
    one part or 153 per part when split; otherwise UCS-2, 70 or 67 per part
    (characters outside the Basic Multilingual Plane count 2 UTF-16 units)."""
    text = text or ""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        n = sum(2 if ch in _GSM_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        n = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
        single, multi, encoding = 70, 67, "UCS-2"
    if n == 0:
        parts = 0
    elif n <= single:
        parts = 1
    else:
        parts = -(-n // multi)
    return {"encoding": encoding, "characters": n, "parts": parts}
