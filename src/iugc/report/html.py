"""The report a reviewer reads: one self-contained HTML file (figures and downloads embedded).

Its first section says what was studied and how (data, split, preset, seeds, commit, wall
time) and what the study shows, in a paragraph written from the numbers; then the paper's claims
as tested, the ablation, the reference comparison, where the error is, the figures with their
captions, the data behind the pretraining, and the provenance of every number.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1.2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.lead { font-size: 1.08em; background: #f5f7fa; padding: 0.8em 1em; border-left: 4px solid #4a78b5; }
.warn { background: #fff4e5; border-left: 4px solid #e69500; padding: 0.6em 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.5em; text-align: left; }
th { background: #eef1f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-size: 0.92em; color: #444; padding-bottom: 0.4em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; } dt { font-weight: 600; }
.small { font-size: 0.85em; color: #555; }
"""


@dataclass
class Section:
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, paragraph: str, css: str = "") -> "Section":
        self.parts.append(f'<p class="{css}">{html.escape(paragraph)}</p>' if css else f"<p>{html.escape(paragraph)}</p>")
        return self

    def facts(self, items: Mapping[str, str]) -> "Section":
        rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items.items())
        self.parts.append(f"<dl>{rows}</dl>")
        return self

    def table(self, frame: pd.DataFrame, caption: str = "", bold: Mapping[tuple[int, str], str] | None = None) -> "Section":
        """``bold``: (row position, column) -> "b" or "u" for the cells that earned emphasis."""
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        body = []
        for i, (_, row) in enumerate(frame.iterrows()):
            cells = []
            for column in frame.columns:
                value = row[column]
                text = html.escape(_format(value))
                mark = (bold or {}).get((i, column))
                css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
                cells.append(f"<td{css}><{mark}>{text}</{mark}></td>" if mark else f"<td{css}>{text}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        return self

    def figure(self, png: Path, caption: str) -> "Section":
        data = base64.b64encode(Path(png).read_bytes()).decode()
        self.parts.append(f'<figure id="{html.escape(Path(png).stem)}"><img alt="{html.escape(Path(png).stem)}" '
                          f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')
        return self

    def downloads(self, files: Sequence[Path]) -> "Section":
        links = []
        for path in files:
            data = base64.b64encode(Path(path).read_bytes()).decode()
            links.append(f'<li><a download="{html.escape(path.name)}" '
                         f'href="data:application/octet-stream;base64,{data}">{html.escape(path.name)}</a></li>')
        self.parts.append(f"<ul>{''.join(links)}</ul>")
        return self

    def render(self) -> str:
        anchor = self.title.lower().replace(" ", "-")
        return f'<section id="{html.escape(anchor)}"><h2>{html.escape(self.title)}</h2>{"".join(self.parts)}</section>'


def _format(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.2f}"
    return str(value)


def document(title: str, lead: str, sections: Sequence[Section]) -> str:
    toc = "".join(f'<li><a href="#{html.escape(s.title.lower().replace(" ", "-"))}">{html.escape(s.title)}</a></li>'
                  for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"lead\">{html.escape(lead)}</p>"
            f"<nav><ul>{toc}</ul></nav>{''.join(s.render() for s in sections)}</body></html>\n")
