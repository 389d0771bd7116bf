"""Build the library's documentation offline: run each notebook in `notebooks/` and write it as HTML, with an index.

nbdev's own documentation needs Quarto, which the package registries do not carry (PyPI's `quarto-cli` only
downloads it from GitHub when installed), so the pages are made with nbconvert instead: each library notebook is
executed (its examples show their results) and exported with JupyterLab's look; `index.html` lists the modules by
concern, each with the one-line summary its notebook opens with. `make docs` writes `_docs/`; `make test` builds it
too, so the documentation cannot rot. Usage: python tools/build_docs.py [OUT_DIR] [--only NOTEBOOK ...]
"""
from __future__ import annotations
import html, re, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# The modules by concern, in the order a reader meets them along the workflow.
SECTIONS = [
    ("Foundations", ["core", "constraints", "metrics", "problem"]),
    ("Data in", ["sources", "data", "conversions", "profiling"]),
    ("Modelling", ["features", "split", "models", "evaluate", "tune", "clusters"]),
    ("The model in use", ["persist", "package", "card", "schema", "batch", "predlog", "serve"]),
    ("Watching it", ["drift", "monitor", "monitor_report", "retrain"]),
    ("The chain", ["stages", "runfolder", "cache", "runner", "kernels", "guard", "runs", "run_report", "cluster", "sweep", "tracking", "cli"]),
    ("Teaching", ["exercises", "workshop"]),
]
DIRECTIVE = re.compile(r"^#\|.*$\n?", re.M)
CDN_SCRIPT = re.compile(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', re.S)


def listed() -> list:
    "Every notebook name the index lists, in order."
    return [n for _, names in SECTIONS for n in names]


def missing_from_index() -> list:
    "Library notebooks the index does not list (a new module must be placed in SECTIONS)."
    return sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb") if p.stem not in listed())


def title_and_summary(nb) -> tuple:
    "The notebook's `# Title` and `> summary`."
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = next((l[2:].strip() for l in first.splitlines() if l.startswith("# ")), "")
    summary = next((l[1:].strip() for l in first.splitlines() if l.startswith(">")), "")
    return title, summary


def for_reading(nb):
    "Drop nbdev's bookkeeping (the `default_exp` cell, `#|` directives) so the page reads as documentation."
    cells = []
    for c in nb.cells:
        if c.cell_type == "code" and c.source.lstrip().startswith("#| default_exp"): continue
        if c.cell_type == "code": c.source = DIRECTIVE.sub("", c.source)
        cells.append(c)
    nb.cells = cells
    return nb


def build_one(name: str, out: Path) -> tuple:
    """Run one notebook as `nbdev-test` does (nbdev's own processor and execnb shell, in the notebooks folder) and
    write its HTML page; return (name, title, summary, seconds). A failing cell fails the build."""
    import nbformat
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbconvert import HTMLExporter
    from nbformat.v4.rwbase import rejoin_lines
    from nbdev.process import NBProcessor
    from nbdev.test import _skip_cell
    from nbdev.config import get_config
    t0 = time.perf_counter()
    fn = NOTEBOOKS / f"{name}.ipynb"
    nb = NBProcessor(fn, rm_directives=False, process=True).nb
    shell = CaptureShell(fn)
    with working_directory(NOTEBOOKS):
        shell.run_cell("%set_env IN_TEST=1")
        flags = get_config().tst_flags  # cells nbdev-test skips (e.g. `#| slow`) are skipped here too
        flags = flags.split() if isinstance(flags, str) else flags
        try: shell.run_all(nb, exc_stop=True, preproc=_skip_cell(nb, flags, None), cell_timeout=600)
        except Exception as e:
            raise RuntimeError(f"{fn.name} failed:\n{shell.prettytb(fname=fn) or e}") from None
    keep = {"code": ("id", "cell_type", "source", "metadata", "outputs", "execution_count"),
            "markdown": ("id", "cell_type", "source", "metadata")}
    cells = [{k: c[k] for k in keep.get(c["cell_type"], ()) if k in c} for c in nb.cells]
    for c in cells:
        c["metadata"] = {}
        if c["cell_type"] == "code": c.setdefault("outputs", []); c.setdefault("execution_count", None)
    page = nbformat.from_dict({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    rejoin_lines(page)  # execnb keeps outputs as lists of lines, as on disk; the exporter wants each as one string
    title, summary = title_and_summary(page)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(for_reading(page))
    body = CDN_SCRIPT.sub("", body)  # require.js and MathJax from a CDN: the pages need neither, and must work offline
    (out / f"{name}.html").write_text(body)
    return name, title, summary, round(time.perf_counter() - t0, 1)


def index(pages: dict) -> str:
    "The index page: the modules by concern, linked, each with its summary."
    rows = []
    for section, names in SECTIONS:
        rows.append(f"<h2>{html.escape(section)}</h2><ul>")
        for n in names:
            title, summary = pages[n]
            rows.append(f'<li><a href="{n}.html"><code>mlkit.{n}</code></a>: <b>{html.escape(title)}</b>. '
                        f"{html.escape(summary)}</li>")
        rows.append("</ul>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>mlkit library</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:820px;margin:2em auto;padding:0 1em;line-height:1.5;color:#222}"
            "code{background:#f3f3f3;padding:0 .2em}li{margin:.3em 0}</style></head><body>"
            "<h1>mlkit: the helper library</h1><p>Each page is one module's notebook, run: why the module exists, each "
            "function with an example and its result, then its tests. The workflow itself is the eleven templates; see "
            "the project's README.</p>" + "".join(rows) + "</body></html>\n")


def main(out=None, only=None) -> int:
    out = Path(out or ROOT / "_docs"); out.mkdir(parents=True, exist_ok=True)
    if missing_from_index():
        print(f"build_docs: notebooks missing from the index (add them to SECTIONS in {Path(__file__).name}): "
              f"{', '.join(missing_from_index())}", file=sys.stderr)
        return 1
    absent = [n for n in listed() if not (NOTEBOOKS / f"{n}.ipynb").exists()]
    if absent:
        print(f"build_docs: the index lists notebooks that do not exist: {', '.join(absent)}", file=sys.stderr)
        return 1
    import multiprocessing
    sys.path.insert(0, str(Path(__file__).parent))
    import build_docs  # by its module name: IPython, run in a worker, replaces the worker's __main__
    names = listed()
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            print(f"build_docs: no library notebook named {', '.join(unknown)}; they are: {', '.join(names)}", file=sys.stderr)
            return 2
        names = [n for n in names if n in only]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        try: built = list(pool.map(build_docs.build_one, names, [out]*len(names)))
        except RuntimeError as e:
            print(f"build_docs: {e}", file=sys.stderr); return 1
    if not only: (out / "index.html").write_text(index({n: (t, s) for n, t, s, _ in built}))
    print(f"built {len(built)} pages in {out} ({sum(b[3] for b in built):.0f} s of notebook time)")
    return 0


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Run the library notebooks and build their pages, with an index, offline.")
    ap.add_argument("out", nargs="?", help="the folder to write the pages to (default: _docs/ at the top of the checkout)")
    ap.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run and build only these notebooks (no index), e.g. --only tune models")
    a = ap.parse_args()
    sys.exit(main(a.out, a.only))
