"""The prediction log on PostgreSQL, through the same SQLAlchemy code as SQLite.

Runs when MLKIT_TEST_POSTGRES_URL names a database (`.ci/run` starts a throwaway server on
loopback and sets it); skipped otherwise.
"""
from __future__ import annotations
import json, os, subprocess, sys
from pathlib import Path

import pytest

from mlkit.predlog import read_log, safe_url
from mlkit.serve import ServiceProcess
from conftest import post_one_record_each

URL = os.environ.get("MLKIT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set MLKIT_TEST_POSTGRES_URL to a PostgreSQL database to run these")


def test_concurrent_requests_are_all_logged_in_postgres(clf_package, penguins, tmp_path):
    rows = json.loads(penguins.drop(columns="species").head(100).to_json(orient="records"))
    with ServiceProcess(clf_package, log_url=URL) as svc:
        answers = post_one_record_each(svc.url, rows, workers=25)
    assert all(a["logged"] for a in answers)
    ids = [a["request_id"] for a in answers]
    log = read_log(URL)
    mine = log[log.request_id.isin(ids)].set_index("request_id").loc[ids]
    assert mine.prediction.tolist() == [a["predictions"][0] for a in answers]
    # monitoring reads the same log back by URL
    out = tmp_path / "mon"
    r = subprocess.run([str(Path(sys.executable).with_name("mlkit")), "monitor", str(clf_package), "--current", URL,
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "monitor.json").read_text())["columns"]


def test_a_wrong_password_is_a_clear_error_without_the_password():
    from sqlalchemy.engine import make_url
    from mlkit.core import DataError
    bad = make_url(URL).set(username="nobody", password="s3cret", port=1)
    with pytest.raises(DataError) as e:
        read_log(bad.render_as_string(hide_password=False))
    assert "s3cret" not in str(e.value) and safe_url(bad.render_as_string(hide_password=False)) in str(e.value)


def test_two_workers_share_one_postgres_log(clf_package, penguins):
    "`serve(workers=2)` with a PostgreSQL log: every request answered and logged exactly once."
    rows = json.loads(penguins.drop(columns="species").head(60).to_json(orient="records"))
    with ServiceProcess(clf_package, log_url=URL, workers=2, timeout=180) as svc:
        answers = post_one_record_each(svc.url, rows, workers=30)
    ids = [a["request_id"] for a in answers]
    log = read_log(URL)
    mine = log[log.request_id.isin(ids)]
    assert all(a["logged"] for a in answers) and len(mine) == 60 and mine.request_id.nunique() == 60
