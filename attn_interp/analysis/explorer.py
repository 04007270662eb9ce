"""`write_explorer`: a static, self-contained HTML explorer of every erased document of a model.

One file, no server, no external resources (opens from disk and in Colab's output frame): a
table of all documents with sortable, filterable columns — gold and predicted class, n, whether
removing the top item of each ranking flips the decision, k (removals until the first flip) per
ranking and the exact minimum k_min, Kendall tau of attention with the gradient and leave-one-out
rankings, and the adversarial attention's max JS — and a heatmap of the chosen document's items
shaded by attention, gradient and the adversarial attention. The data are embedded as one JSON
block; only the current page of rows (50) and the chosen document are rendered, so pages of
thousands of documents open fast.

Filters: a number with an optional comparison (">0.5", "<=3", "=2", "!=-1"), or text matched as a
substring (case-insensitive). Click a header to sort (again to reverse), a row to show it.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from attn_interp.analysis.model_results import ModelResults, ranking_label
from attn_interp.erasure import to_flat
from attn_interp.io_utils import atomic_write_text

# (column key, header, ranking or None) of the rankings whose removal counts are shown.
_K_RANKINGS = ("attention", "gradient", "grad_x_attention", "leave_one_out", "random0")
_FLIP_TARGETS = (("top", "attention"), ("grad_top", "gradient"), ("gxa_top", "grad_x_attention"))
_TAU_RANKINGS = ("gradient", "leave_one_out")
PAGE_SIZE = 50


def _num(x) -> float | int | None:
    if isinstance(x, np.integer | int | bool | np.bool_):
        return int(x)
    x = float(x)
    return None if not math.isfinite(x) else float(f"{x:.4g}")


def _columns(model: ModelResults, res: Mapping[str, np.ndarray], followups):
    """(column specs, rows) from the flat results `res` (`to_flat`): specs are {key, label,
    kind}; rows lists of cell values."""
    docs = len(res["doc_id"])
    by_doc = {}
    if model.documents is not None:
        by_doc = {int(d["doc_index"]): d for d in model.documents if "doc_index" in d}
    gold = [by_doc.get(int(i), {}).get("label") for i in res["doc_id"]]
    if "label" in res:
        gold = [int(g) for g in res["label"]]
    specs = [("doc", "doc", "int"), ("gold", "gold", "class"), ("pred", "predicted", "class")]
    cols = [res["doc_id"], gold, res["predicted"]]
    specs.append(("n", "n", "int"))
    cols.append(res["seq_len"])
    for target, rank in _FLIP_TARGETS:
        key = f"single_{target}_flip"
        if key in res:
            specs.append((f"flip_{rank}", f"top {ranking_label(rank)} flips", "bool"))
            cols.append(np.asarray(res[key]) >= 0)
    for rank in _K_RANKINGS:
        if f"rank_{rank}_k" in res:
            specs.append((f"k_{rank}", f"k {ranking_label(rank)}", "k"))
            cols.append(res[f"rank_{rank}_k"])
    if "k_min" in res:
        specs.append(("k_min", "k_min", "k"))
        cols.append(res["k_min"])
    if followups is not None:
        rows_of = {int(d): i for i, d in enumerate(followups["doc_index"])}
        take = np.array([rows_of.get(int(d), -1) for d in res["doc_id"]])
        for rank in _TAU_RANKINGS:
            if f"tau_{rank}" in followups:
                specs.append((f"tau_{rank}", f"τ {ranking_label(rank)}", "float"))
                cols.append(_aligned(followups[f"tau_{rank}"], take))
        adv = [k for k in followups if k.startswith("adv_js_")]
        if adv:
            specs.append(("adv_js", f"adversarial JS ({adv[0][len('adv_js_') :]})", "float"))
            cols.append(_aligned(followups[adv[0]], take))
    rows = [[_num(c[i]) if c[i] is not None else None for c in cols] for i in range(docs)]
    return [{"key": k, "label": lbl, "kind": kind} for k, lbl, kind in specs], rows


def _aligned(values: np.ndarray, take: np.ndarray) -> np.ndarray:
    out = np.full(take.shape, np.nan)
    ok = take >= 0
    out[ok] = np.asarray(values, np.float64)[take[ok]]
    return out


def _items(model: ModelResults, res: Mapping[str, np.ndarray], followups) -> dict:
    """Per-document item texts and per-item arrays (attention, gradient, adversarial) from the
    flat results `res`."""
    offsets = model.item_offsets()
    by_doc = {}
    if model.documents is not None:
        by_doc = {int(d["doc_index"]): d.get("items", []) for d in model.documents}
    adv_key = None
    adv_off = None
    if followups is not None:
        keys = [k for k in followups if k.startswith("items/adv_")]
        if keys:
            adv_key = keys[0]
            adv_off = np.concatenate([[0], np.cumsum(followups["seq_len"])])
            rows_of = {int(d): i for i, d in enumerate(followups["doc_index"])}
    text, alpha, grad, adv = [], [], [], []
    for i, doc in enumerate(res["doc_id"]):
        n = int(res["seq_len"][i])
        items = list(by_doc.get(int(doc), []))
        text.append(
            [str(t) for t in items] if len(items) == n else [f"[{j + 1}]" for j in range(n)]
        )
        sl = slice(int(offsets[i]), int(offsets[i + 1]))
        alpha.append([_num(v) for v in res["items/alpha"][sl]])
        grad.append([_num(v) for v in res["items/gradient"][sl]] if "items/gradient" in res else [])
        row = rows_of.get(int(doc), -1) if adv_key else -1
        if row >= 0 and int(followups["seq_len"][row]) == n:
            adv.append([_num(v) for v in followups[adv_key][adv_off[row] : adv_off[row + 1]]])
        else:
            adv.append([])
    return {"text": text, "alpha": alpha, "gradient": grad, "adversarial": adv}


def write_explorer(
    model: ModelResults,
    path: str,
    *,
    followups: Mapping[str, np.ndarray] | None = None,
    title: str | None = None,
) -> str:
    """Writes the explorer of every document of `model` (erasure results with per-item arrays)
    to `path`; `followups`: the `load_followups` columns of the same model (adds tau and the
    adversary). Returns `path`."""
    if model.results.items is None:
        raise ValueError(
            f"results of {model.label} have no per-item arrays; run the erasure tests with "
            "ErasureConfig(store_item_arrays=True)."
        )
    res = to_flat(model.results)
    specs, rows = _columns(model, res, followups)
    data = {
        "title": title or f"Documents of {model.label}",
        "classes": list(model.class_names) if model.class_names is not None else None,
        "columns": specs,
        "rows": rows,
        "items": _items(model, res, followups),
        "pageSize": PAGE_SIZE,
    }
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = _TEMPLATE.replace("__TITLE__", html.escape(data["title"])).replace("__DATA__", payload)
    atomic_write_text(path, page)
    return path


def explorer_links(paths: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(label, href) pairs for the report's link list."""
    return [(f"{label}: all documents", href) for label, href in paths]


_TEMPLATE = r"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:sans-serif;margin:1em;color:#222}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;user-select:none}
th .sort{cursor:pointer}
th .sort[data-dir=asc]::after{content:" ▲"}
th .sort[data-dir=desc]::after{content:" ▼"}
th input{width:5.5em;font-size:.9em;display:block;margin-top:2px}
tbody tr{cursor:pointer}
tbody tr:hover{background:#eef4fb}
tr.sel{background:#dbe9f7}
#pager{margin:.5em 0}
#view{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:1em 0;max-height:45vh;overflow:auto}
#wrap{overflow-x:auto}
.row{margin:.3em 0;line-height:1.9}
.lab{display:inline-block;width:10em;font-weight:bold;vertical-align:top}
.it{padding:1px 3px;margin:1px;border-radius:3px}
.han .it{display:block;margin:2px 0 2px 10em}
</style></head><body>
<h1>__TITLE__</h1>
<p>Filters: a number with an optional comparison (&gt;0.5, &lt;=3, =2, !=-1) or text. Click a
header to sort, a row to show the document. k: removals in that ranking's order until the
decision flips (-1: never); k_min: the exact minimum.</p>
<div id="view"><em>Click a row to show the document here.</em></div>
<div id="pager"></div>
<div id="wrap"><table id="docs"><thead></thead><tbody></tbody></table></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const C = D.columns, R = D.rows;
let shown = R.map((_, i) => i), sortCol = -1, sortDir = 1, page = 0, selected = -1;
const filters = C.map(() => "");
function cls(v) { return v === null ? "–" : (D.classes && D.classes[v] !== undefined ? D.classes[v] + " (" + v + ")" : String(v)); }
function fmt(c, v) {
  if (v === null || v === undefined) return "–";
  if (c.kind === "class") return cls(v);
  if (c.kind === "bool") return v ? "yes" : "no";
  if (c.kind === "k") return v < 0 ? "never" : String(v);
  return String(v);
}
function matcher(text) {
  const t = text.trim();
  if (!t) return null;
  const m = t.match(/^(<=|>=|!=|<|>|=)?\s*(-?\d+(\.\d*)?([eE]-?\d+)?)$/);
  if (m) {
    const op = m[1] || "=", x = parseFloat(m[2]);
    return v => {
      if (v === null || v === undefined) return false;
      const y = typeof v === "boolean" ? (v ? 1 : 0) : v;
      return op === "<" ? y < x : op === ">" ? y > x : op === "<=" ? y <= x : op === ">=" ? y >= x : op === "!=" ? y !== x : y === x;
    };
  }
  const s = t.toLowerCase();
  return (v, c) => fmt(c, v).toLowerCase().includes(s);
}
function apply() {
  const ms = filters.map(matcher);
  shown = [];
  for (let i = 0; i < R.length; i++) {
    let ok = true;
    for (let j = 0; j < C.length && ok; j++) if (ms[j]) ok = ms[j](R[i][j], C[j]);
    if (ok) shown.push(i);
  }
  if (sortCol >= 0) {
    const j = sortCol;
    shown.sort((a, b) => {
      const x = R[a][j], y = R[b][j];
      if (x === null) return y === null ? a - b : 1;
      if (y === null) return -1;
      return x < y ? -sortDir : x > y ? sortDir : a - b;
    });
  }
  page = 0;
  render();
}
function header() {
  const tr = document.createElement("tr");
  C.forEach((c, j) => {
    const th = document.createElement("th");
    th.dataset.col = c.key;
    const lab = document.createElement("span");
    lab.className = "sort"; lab.textContent = c.label;
    lab.addEventListener("click", () => {
      sortDir = sortCol === j ? -sortDir : 1; sortCol = j; apply();
      document.querySelectorAll("th .sort").forEach(x => x.dataset.dir = "");
      lab.dataset.dir = sortDir > 0 ? "asc" : "desc";
    });
    th.appendChild(lab);
    const inp = document.createElement("input");
    inp.name = "filter_" + c.key; inp.placeholder = "filter";
    inp.addEventListener("input", () => { filters[j] = inp.value; apply(); });
    th.appendChild(inp);
    tr.appendChild(th);
  });
  document.querySelector("#docs thead").appendChild(tr);
}
function render() {
  const pages = Math.max(1, Math.ceil(shown.length / D.pageSize));
  page = Math.min(page, pages - 1);
  const tb = document.querySelector("#docs tbody");
  tb.textContent = "";
  for (const i of shown.slice(page * D.pageSize, (page + 1) * D.pageSize)) {
    const tr = document.createElement("tr");
    tr.dataset.row = i;
    if (i === selected) tr.className = "sel";
    R[i].forEach((v, j) => { const td = document.createElement("td"); td.textContent = fmt(C[j], v); tr.appendChild(td); });
    tr.addEventListener("click", () => {
      selected = i; render(); view(i);
      document.getElementById("view").scrollIntoView({block: "nearest"});
    });
    tb.appendChild(tr);
  }
  const p = document.getElementById("pager");
  p.textContent = "";
  const btn = (label, to, name) => {
    const b = document.createElement("button"); b.textContent = label; b.name = name;
    b.disabled = to < 0 || to >= pages || to === page;
    b.addEventListener("click", () => { page = to; render(); }); p.appendChild(b);
  };
  btn("« first", 0, "first"); btn("‹ prev", page - 1, "prev");
  const s = document.createElement("span");
  s.id = "count";
  s.textContent = ` ${shown.length} of ${R.length} documents · page ${page + 1} of ${pages} `;
  p.appendChild(s);
  btn("next ›", page + 1, "next"); btn("last »", pages - 1, "last");
}
function shade(v, scale, signed) {
  if (!(scale > 0) || v === null) return "transparent";
  const a = Math.min(Math.abs(v) / scale, 1) * 0.85;
  return signed && v < 0 ? `rgba(214,39,40,${a.toFixed(3)})` : signed === "adv" ? `rgba(44,160,44,${a.toFixed(3)})` : `rgba(31,119,180,${a.toFixed(3)})`;
}
function view(i) {
  const I = D.items, v = document.getElementById("view");
  v.textContent = "";
  v.className = I.text[i].length && I.text[i][0].length > 40 ? "han" : "flan";
  const h = document.createElement("h3");
  h.textContent = C.map((c, j) => c.label + ": " + fmt(c, R[i][j])).join(" · ");
  v.appendChild(h);
  const rows = [["attention", I.alpha[i], false], ["gradient", I.gradient[i], true], ["adversarial attention", I.adversarial[i], "adv"]];
  for (const [name, vals, signed] of rows) {
    if (!vals || !vals.length) continue;
    const scale = Math.max(...vals.map(x => Math.abs(x || 0)));
    const div = document.createElement("div"); div.className = "row"; div.dataset.shade = name;
    const lab = document.createElement("span"); lab.className = "lab"; lab.textContent = name; div.appendChild(lab);
    I.text[i].forEach((t, k) => {
      const s = document.createElement("span"); s.className = "it"; s.textContent = t;
      s.title = name + " = " + vals[k]; s.style.background = shade(vals[k], scale, signed);
      div.appendChild(s); div.appendChild(document.createTextNode(" "));
    });
    v.appendChild(div);
  }
}
header();
apply();
window.explorerReady = performance.now();
</script></body></html>
"""
