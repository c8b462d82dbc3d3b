"""The gallery's HTML: every piece of text escaped, nothing loaded from outside the folder."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soulcli.gallery import Card, Picture

# Scripts, styles and images only from the gallery folder itself: nothing remote, no
# inline script (a prompt that got through escaping still could not run), no forms.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'"
)
DATE_FORMAT = "%Y-%m-%d %H:%M"
# The first cards (several screens' worth) load at once, so a page of a few tasks is
# whole when it has loaded; the ones after load as they come near the window.
EAGER_CARDS = 24
PTC_UNITS = 10_000


def text(value: object) -> str:
    """Any value as HTML text or an attribute value: <, >, &, and both quotes escaped."""
    return escape(str(value), quote=True)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_page(cards: list[Card], *, filters: str, generator: str) -> str:
    """The whole page: totals, the search box and style filter, then the cards."""
    from soulcli.models import format_ptc

    tasks = sum(len(card.records) for card in cards)
    images = sum(card.images for card in cards)
    spent = sum((card.price for card in cards), Decimal(0))
    styles = sorted({style for card in cards for style in card.styles}, key=str.lower)
    options = "".join(f'<option value="{text(s.lower())}">{text(s)}</option>' for s in styles)
    built = time.strftime(DATE_FORMAT)
    scope = f" · only {text(filters)}" if filters else ""
    body = "\n".join(render_card(card, eager=n < EAGER_CARDS) for n, card in enumerate(cards))
    if cards:
        empty = ""
    elif filters:
        empty = f'<p class="empty">No task matches {text(filters)}.</p>'
    else:
        empty = '<p class="empty">No tasks yet: run <code>soul generate</code>.</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="generator" content="{text(generator)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>soul gallery</title>
<link rel="stylesheet" href="assets/gallery.css">
<script src="assets/gallery.js" defer></script>
</head>
<body>
<header>
<h1>soul gallery</h1>
<p class="totals" id="totals"><span id="shown">{len(cards)}</span> of \
{plural(len(cards), "card")} · <span id="tasks">{plural(tasks, "task")}</span> · \
<span id="images">{plural(images, "image")}</span> · <span id="spent">\
{format_ptc(spent)} PTC</span> spent · built {built}{scope}</p>
<form class="filters" role="search">
<input type="search" id="search" placeholder="Search prompts, styles, task ids" \
aria-label="Search prompts, styles and task ids" autocomplete="off">
<select id="style" aria-label="Style"><option value="">All styles</option>{options}</select>
</form>
</header>
<main id="cards">
{body}
</main>
{empty}<p class="empty" id="nomatch" hidden>No card matches.</p>
</body>
</html>
"""


def render_card(card: Card, *, eager: bool = True) -> str:
    """One card: pictures, prompt, the request's facts, and the command to make it again."""
    from soulcli.models import format_ptc

    first = card.first
    search = " ".join(
        [first.prompt, first.negative_prompt, *card.styles]
        + [r.remote_id or "" for r in card.records]
    ).lower()
    style_keys = json.dumps([s.lower() for s in card.styles], ensure_ascii=False)
    # Whole ten-thousandths of a PTC: the page adds them up exactly.
    units = int(card.price * PTC_UNITS)
    pictures = "".join(render_picture(p, eager=eager) for p in card.pictures)
    # A sweep of many styles takes two columns of the page, so its tiles stay legible.
    kind = ("card sweep wide" if len(card.pictures) > 6 else "card sweep") if card.sweep else "card"
    kind += "" if eager else " later"
    shape = f"pictures n{min(len(card.pictures), 4)}" if not card.sweep else "pictures grid"
    # Boxes take the request's shape (the stylesheet knows the API's ratios), so a
    # missing image's box is as big as the ones beside it.
    shape += " ar-" + "-".join(part for part in first.aspect_ratio.split(":") if part.isdigit())
    facts = []
    if card.sweep:
        facts.append(("styles", f"{len(card.styles)} (sweep)"))
    else:
        facts.append(("style", first.style_name))
    facts += [
        ("ratio", first.aspect_ratio),
        ("quality", first.quality),
        ("seed", str(first.seed)),
        ("date", time.strftime(DATE_FORMAT, time.localtime(card.created_at))),
        ("price", f"{format_ptc(card.price)} PTC"),
    ]
    states = sorted({r.state for r in card.records} - {"completed"})
    if states:
        facts.append(("state", ", ".join(states)))
    ids = [r.remote_id for r in card.records if r.remote_id]
    facts_html = "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in facts)
    if len(ids) == 1:
        facts_html += f'<dt>task</dt><dd class="id">{text(ids[0])}</dd>'
    elif ids:
        listed = "".join(
            f"<li>{text(r.style_name)}: {text(r.remote_id)}</li>" for r in card.records
        )
        facts_html += (
            f'<dt>tasks</dt><dd class="id"><details><summary>{len(ids)} task ids</summary>'
            f"<ul>{listed}</ul></details></dd>"
        )
    negative = (
        f'<p class="negative"><span>not:</span> {text(first.negative_prompt)}</p>'
        if first.negative_prompt
        else ""
    )
    errors = sorted({r.error for r in card.records if r.error})
    error = "".join(f'<p class="error">{text(e)}</p>' for e in errors)
    command = card.command()
    return (
        f'<article class="{kind}" data-search="{text(search)}" data-styles="{text(style_keys)}" '
        f'data-tasks="{len(card.records)}" data-images="{card.images}" data-units="{units}">'
        f'<div class="{shape}">{pictures}</div>'
        f'<p class="prompt" title="{text(first.prompt)}">{text(first.prompt)}</p>{negative}{error}'
        f'<dl class="facts">{facts_html}</dl>'
        f'<div class="again"><code title="{text(command)}">{text(command)}</code>'
        f'<button type="button" class="copy" data-command="{text(command)}">Copy</button></div>'
        "</article>"
    )


def render_picture(picture: Picture, *, eager: bool = True) -> str:
    """A thumbnail linking to the full image, or a grey box saying why there is none."""
    # A task's pictures are told apart by place; a sweep's by the style under each.
    caption = f"<figcaption>{text(picture.caption)}</figcaption>" if picture.label else ""
    if picture.thumb is not None and picture.path is not None:
        thumb = picture.thumb
        return (
            f'<figure><a href="{text(picture.path.as_uri())}" title="{text(picture.path)}">'
            f'<img src="thumbs/{text(thumb.name)}" width="{thumb.width}" '
            f'height="{thumb.height}" loading="{"eager" if eager else "lazy"}" decoding="async" '
            f'alt="{text(picture.caption)}"></a>{caption}</figure>'
        )
    status = picture.status or "missing"
    place = "" if picture.label else f"{text(picture.caption)} · "
    box = f"<div>{place}{text(status)}</div>"
    if picture.path is not None:  # on disk, but no thumbnail could be made of it
        box = f'<a href="{text(picture.path.as_uri())}" title="{text(picture.path)}">{box}</a>'
    return f'<figure class="missing">{box}{caption}</figure>'
