"""The run index, diffs and the run report, on real runs (the session's fast chain), and the report in a real browser.

The browser check uses Chromium from Debian's packages, driven by Playwright (`.ci/run` installs Chromium,
best effort, as it starts PostgreSQL); without it that test skips and says why. Its screenshot is kept in
test-output/ at the top of the checkout."""
from __future__ import annotations
import json, os, re, shutil, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import mlkit.runner as runner
from conftest import FAST

MLKIT = str(Path(sys.executable).with_name("mlkit"))
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "") if p and Path(p).exists()), None)


@pytest.fixture(scope="module")
def two_runs(cold, store):
    "The cold run and one with another tuning setting (its stages 01-07 from the cache)."
    d, _ = cold
    if not (d / "more").exists():
        runner.run_chain({**FAST, "n_iter": 5}, out=d / "more", cache=store, echo=lambda s: None)
    return d


def mlkit(*args, cwd):
    return subprocess.run([MLKIT, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_runs_lists_each_run_with_what_differs(two_runs):
    r = mlkit("runs", two_runs, cwd=two_runs)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:6] == ["run", "started", "status", "seconds", "cached", "data"] and "n_iter" in lines[0]
    rows = {l.split()[0]: l for l in lines[1:]}
    assert "succeeded" in rows["cold"] and "0/11" in rows["cold"] and "7/11" in rows["more"]
    assert "penguins" in rows["cold"] and "balanced_accuracy" in rows["cold"] and "yes" in rows["cold"]
    as_json = json.loads(mlkit("runs", two_runs, "--format", "json", "--sort", "balanced_accuracy", cwd=two_runs).stdout)
    assert {r["run"] for r in as_json} >= {"cold", "more"} and all(r["n_iter" if "n_iter" in r else "param:n_iter"] for r in as_json)
    assert mlkit("runs", two_runs, "--format", "md", cwd=two_runs).stdout.startswith("| run | started |")


def test_diff_says_what_differs_and_why(two_runs):
    r = mlkit("diff", two_runs / "cold", two_runs / "more", cwd=two_runs)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"parameter\s+n_iter\s+3\s+5\s+\+2", out)
    assert re.search(r"stage key\s+08_tune\s+\w+\s+\w+\s+parameters \(n_iter\)", out)
    assert re.search(r"stage key\s+09_test\s+\w+\s+\w+\s+inputs from earlier stages \(tuned\)", out)
    assert "05_select" not in [l.split()[2] for l in out.splitlines() if l.startswith("stage key")]


def test_runs_and_diff_work_on_copied_and_older_runs(two_runs, tmp_path):
    old = tmp_path / "runs" / "old"; shutil.copytree(two_runs / "cold", old)
    rec = json.loads((old / "run.json").read_text())
    for k in ("data", "headline", "process"): rec.pop(k, None)
    for s in rec["stages"]: s.pop("key", None); s.pop("key_parts", None)
    (old / "run.json").write_text(json.dumps(rec))
    shutil.copytree(two_runs / "more", tmp_path / "runs" / "more")
    r = mlkit("runs", tmp_path / "runs", cwd=tmp_path)
    assert r.returncode == 0 and "old" in r.stdout, r.stderr
    r = mlkit("diff", tmp_path / "runs" / "old", tmp_path / "runs" / "more", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("args,message", [
    (["diff", "nowhere", "alsonowhere"], "holds no mlkit run"),
    (["runs", "nowhere"], "There is no folder 'nowhere'"),
    (["runs", "empty"], "No runs in empty"),
    (["report", "empty"], "holds no mlkit run"),
])
def test_bad_input_to_runs_diff_report(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    r = mlkit(*args, cwd=tmp_path)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


class _Links(HTMLParser):
    def __init__(self): super().__init__(); self.hrefs, self.srcs = [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"): self.hrefs.append(a["href"])
        if a.get("src"): self.srcs.append(a["src"])


def test_the_report_is_one_self_contained_page(two_runs):
    run = two_runs / "more"
    page = (run / "report.html").read_text()
    assert "predicting species (classification)" in page and "Leaderboard" in page and "Model card" in page
    assert page.count("data:image/png;base64,") >= 5  # the main figures, in the page
    links = _Links(); links.feed(page)
    assert links.hrefs and all((run / h).is_file() for h in links.hrefs), [h for h in links.hrefs if not (run / h).is_file()]
    assert all(s.startswith("data:") for s in links.srcs)  # nothing fetched from elsewhere
    assert {f"reports/notebooks/{s}.html" for s in runner.stage_names()} <= set(links.hrefs)
    r = mlkit("report", run, cwd=two_runs)  # rebuilt on demand
    assert r.returncode == 0 and (run / "report.html").read_text().count("<h2>") == page.count("<h2>")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium where it can)")
def test_the_report_renders_in_a_real_browser(two_runs):
    pytest.importorskip("playwright", reason="playwright (the test extra) drives Chromium")
    from playwright.sync_api import sync_playwright
    run = two_runs / "more"
    OUTPUT.mkdir(exist_ok=True)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic",
                                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((run / "report.html").as_uri())
            page.wait_for_load_state("load")
            assert page.title().startswith("Run more")
            hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.href)")
            images = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            page.screenshot(path=str(OUTPUT / "report.png"), full_page=True)
            page.goto((run / "reports" / "notebooks" / "05_select.html").as_uri())  # an executed notebook's page opens too
            page.wait_for_load_state("load")
        finally:
            browser.close()
    assert errors == [], errors
    assert hrefs and all(h.startswith("file://") and Path(h[7:]).is_file() for h in hrefs)
    assert images and all(w > 0 for w in images)  # every figure decoded
    assert (OUTPUT / "report.png").stat().st_size > 10_000
