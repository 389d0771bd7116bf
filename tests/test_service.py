"""The HTTP service over real loopback sockets: a server per package is started in a subprocess for this module
and stopped at its end. Good requests, every kind of bad request, unseen categories, and 200 concurrent requests
that must all be logged."""
from __future__ import annotations
import json
import httpx
import numpy as np
import pytest
from mlkit.core import ModelPackageError
from mlkit.package import load_package
from mlkit.predlog import read_log
from mlkit.serve import ServiceProcess, create_app
from conftest import post_one_record_each

RECORD = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0,
          "body_mass_g": 5000.0, "sex": "female", "year": 2008}


@pytest.fixture(scope="module")
def service(clf_package, tmp_path_factory):
    "The classifier's service on a free loopback port, with its own prediction log."
    log = tmp_path_factory.mktemp("log") / "predictions.sqlite"
    with ServiceProcess(clf_package, log_url=str(log)) as svc:
        svc.log = log
        yield svc
    assert svc.proc.poll() is not None  # stopped


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=30) as c:
        yield c


def _problems(r):
    assert r.status_code == 422, r.text
    return [(p["record"], p["field"], p["type"]) for p in r.json()["detail"]]


def test_health_and_metadata(client, clf_package):
    pkg = load_package(clf_package)
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model_version"] == pkg.version
    meta = client.get("/metadata").json()
    assert meta["model_version"] == pkg.version and meta["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert [c["name"] for c in meta["schema"]["columns"]] == pkg.schema.names


def test_predict_matches_the_package(client, clf_package, penguins):
    pkg = load_package(clf_package)
    X = penguins.drop(columns="species").head(25)
    records = json.loads(X.to_json(orient="records"))  # missing values become null
    r = client.post("/predict", json={"records": records})
    assert r.status_code == 200, r.text
    ans = r.json()
    expected = pkg.predict(X)
    assert ans["predictions"] == expected.prediction.tolist()
    got = np.array([[p[c] for c in pkg.classes] for p in ans["probabilities"]])
    np.testing.assert_allclose(got, expected.filter(like="proba_").to_numpy(), rtol=0, atol=1e-12)
    assert ans["model_version"] == pkg.version and len(ans["request_id"]) == 32 and ans["logged"] is True


def test_columns_in_another_order(client):
    a = client.post("/predict", json={"records": [RECORD]}).json()
    b = client.post("/predict", json={"records": [dict(reversed(list(RECORD.items())))]}).json()
    assert a["predictions"] == b["predictions"] == ["Gentoo"] and a["probabilities"] == b["probabilities"]


def test_nulls_are_accepted_where_the_pipeline_imputes(client):
    r = client.post("/predict", json={"records": [{**RECORD, "sex": None, "bill_length_mm": None}]})
    assert r.status_code == 200 and r.json()["predictions"] == ["Gentoo"]


def test_unseen_category_is_scored_and_flagged(client):
    r = client.post("/predict", json={"records": [RECORD, {**RECORD, "island": "Atlantis"}, {**RECORD, "body_mass_g": 9999.0}]})
    assert r.status_code == 200
    warns = {w["field"]: w for w in r.json()["warnings"]}
    assert warns["island"]["issue"] == "unseen_category" and warns["island"]["records"] == [1]
    assert "'Biscoe', 'Dream', 'Torgersen'" in warns["island"]["message"] and "Atlantis" not in r.text
    assert warns["body_mass_g"]["issue"] == "out_of_range" and warns["body_mass_g"]["records"] == [2]


@pytest.mark.parametrize("body, expected", [
    ({"records": [{k: v for k, v in RECORD.items() if k != "sex"}]}, [(0, "sex", "missing")]),
    ({"records": [{**RECORD, "colour": "black"}]}, [(0, "colour", "extra_forbidden")]),
    ({"records": [{**RECORD, "body_mass_g": "heavy"}]}, [(0, "body_mass_g", "float_type")]),
    ({"records": [{**RECORD, "year": True}]}, [(0, "year", "float_type")]),
    ({"records": [{**RECORD, "island": 3}]}, [(0, "island", "string_type")]),
    ({"records": [RECORD, {**RECORD, "flipper_length_mm": [1]}]}, [(1, "flipper_length_mm", "float_type")]),
    ({"records": []}, [(None, "records", "too_short")]),
    ({"rows": [RECORD]}, [(None, "records", "missing"), (None, "rows", "extra_forbidden")]),
    ({"records": [RECORD], "debug": True}, [(None, "debug", "extra_forbidden")]),
    ({"records": ["Biscoe"]}, [(0, None, "dict_type")]),
    ([RECORD], [(None, None, "model_attributes_type")]),
])
def test_bad_requests_get_422_naming_the_field(client, body, expected):
    r = client.post("/predict", json=body)
    assert _problems(r) == expected
    field = expected[0][1]
    if field: assert repr(field) in r.json()["message"]
    for secret in ("black", "heavy"): assert secret not in r.text  # the submitted values are not echoed


def test_non_json_and_non_finite_numbers(client):
    r = client.post("/predict", content=b"records=Biscoe", headers={"content-type": "application/json"})
    assert _problems(r) == [(None, None, "json_invalid")] and "not valid JSON" in r.json()["message"]
    r = client.post("/predict", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 422
    r = client.post("/predict", content=json.dumps({"records": [{**RECORD, "year": float("nan")}]}),
                    headers={"content-type": "application/json"})
    assert _problems(r) == [(0, "year", "finite_number")] and "send null" in r.json()["message"]


def test_many_errors_are_reported_together(client):
    r = client.post("/predict", json={"records": [{**RECORD, "sex": 1}, {**RECORD, "island": None, "year": "x"}, {}]})
    got = _problems(r)
    assert got[:2] == [(0, "sex", "string_type"), (1, "year", "float_type")]
    assert {f for rec, f, t in got if rec == 2} == set(RECORD) and "more" in r.json()["message"]


def test_200_concurrent_requests_are_all_logged(client, service, penguins):
    rows = json.loads(penguins.drop(columns="species").head(200).to_json(orient="records"))
    answers = post_one_record_each(service.url, rows, workers=50)
    ids = [a["request_id"] for a in answers]
    assert len(set(ids)) == 200 and all(a["logged"] for a in answers)
    log = read_log(service.log)
    mine = log[log.request_id.isin(ids)].set_index("request_id").loc[ids]
    assert len(mine) == 200
    assert mine.prediction.tolist() == [a["predictions"][0] for a in answers]
    assert mine.bill_length_mm.tolist() == pytest.approx([np.nan if r["bill_length_mm"] is None else r["bill_length_mm"] for r in rows], nan_ok=True)


def test_the_log_holds_inputs_and_outputs(client, service):
    ans = client.post("/predict", json={"records": [RECORD, {**RECORD, "island": "Dream"}]}).json()
    log = read_log(service.log)
    mine = log[log.request_id == ans["request_id"]]
    assert mine.island.tolist() == ["Biscoe", "Dream"] and mine.prediction.tolist() == ans["predictions"]
    assert mine.proba_Gentoo.tolist() == pytest.approx([p["Gentoo"] for p in ans["probabilities"]])
    assert str(mine.time.dt.tz) == "UTC" and set(mine.model_version) == {ans["model_version"]}


def test_regression_service(reg_package, tmp_path):
    pkg = load_package(reg_package)
    rec = {**RECORD, "species": "Gentoo"}
    del rec["body_mass_g"]
    with ServiceProcess(reg_package, log_url=str(tmp_path / "log.sqlite")) as svc:
        r = httpx.post(f"{svc.url}/predict", json={"records": [rec]}, timeout=30)
        bad = httpx.post(f"{svc.url}/predict", json={"records": [{**rec, "species": 2}]}, timeout=30)
    assert r.status_code == 200
    ans = r.json()
    assert "probabilities" not in ans
    import pandas as pd
    assert ans["predictions"] == pytest.approx(pkg.predict(pd.DataFrame([rec])).prediction.tolist())
    assert _problems(bad) == [(0, "species", "string_type")]
    assert len(read_log(tmp_path / "log.sqlite")) == 1


def test_a_folder_that_is_not_a_package_fails_fast(tmp_path):
    with pytest.raises(ModelPackageError, match="No model package"):
        create_app(tmp_path / "nothing")
    with pytest.raises(ModelPackageError, match="No model package"):
        ServiceProcess(tmp_path / "nothing").start()


def test_a_failing_log_neither_fails_the_request_nor_leaks_the_records(clf_package, tmp_path):
    import sqlite3
    log = tmp_path / "log.sqlite"
    with ServiceProcess(clf_package, log_url=str(log)) as svc:
        with sqlite3.connect(log) as db: db.execute("DROP TABLE predictions")  # the log breaks while serving
        r = httpx.post(f"{svc.url}/predict", json={"records": [{**RECORD, "bill_length_mm": 47.123456}]}, timeout=30)
        out = svc.output()
    assert r.status_code == 200 and r.json()["logged"] is False and r.json()["predictions"] == ["Gentoo"]
    assert "could not write request" in out and "no such table" in out  # the operator learns why
    assert "47.123456" not in out  # but the server's log does not copy the scored records


def test_columnwise_checks_give_the_messages_of_record_by_record_checks(clf_package, penguins):
    "A request is checked column by column; a bad one is explained record by record, with the same messages as before."
    from mlkit.core import SchemaError
    schema = load_package(clf_package).schema
    good = json.loads(penguins.drop(columns="species").head(50).to_json(orient="records"))
    import pandas as pd
    pd.testing.assert_frame_equal(schema.from_columns(schema.check_columns(good)), schema.to_pandas(schema.explain_records(good)))
    bad = [RECORD, {**RECORD, "body_mass_g": "heavy"}, {k: v for k, v in RECORD.items() if k != "sex"}, {**RECORD, "island": 3}]
    assert schema.check_columns(bad) is None
    with pytest.raises(SchemaError) as e: schema.validate_records(bad)
    assert [(p["record"], p["field"], p["type"]) for p in e.value.problems] == [
        (1, "body_mass_g", "float_type"), (2, "sex", "missing"), (3, "island", "string_type")]
    assert "record 1, field 'body_mass_g' must be a number" in str(e.value) and "heavy" not in str(e.value)


def test_serve_with_two_workers_logs_every_request_once(clf_package, penguins, tmp_path):
    "`mlkit serve --workers 2` as a real process: 50 concurrent one-record requests, all answered by two processes, all logged once."
    import subprocess, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    from mlkit.serve import free_port
    port, log, out = free_port(), tmp_path / "shared.sqlite", open(tmp_path / "serve.out", "w")
    mlkit = Path(sys.executable).parent / "mlkit"
    proc = subprocess.Popen([str(mlkit), "serve", str(clf_package), "--port", str(port), "--log", str(log), "--workers", "2"],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while (tmp_path / "serve.out").read_text().count("Application startup complete") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.out").read_text()
            time.sleep(0.2)
        rows = json.loads(penguins.drop(columns="species").head(50).to_json(orient="records"))
        def call(row):
            with httpx.Client(base_url=url, timeout=120) as c:
                r = c.post("/predict", json={"records": [row]})
                return r.status_code, r.json()["request_id"], r.headers["x-worker-pid"]
        pids = set()
        for attempt in range(3):  # which worker accepts a connection is the kernel's choice: a few rounds show both
            with ThreadPoolExecutor(50) as ex: answers = list(ex.map(call, rows))
            assert [a[0] for a in answers] == [200] * 50
            logged = read_log(log)
            mine = logged[logged.request_id.isin([a[1] for a in answers])]
            assert len(mine) == 50 and mine.request_id.nunique() == 50  # every request logged exactly once
            pids |= {a[2] for a in answers}
            if len(pids) == 2: break
        assert len(pids) == 2, pids
        assert len(logged) == 50 * (attempt + 1)
        # a second service on the same port is refused (each worker has a socket of its own on the port: without this
        # check a second `mlkit serve` would silently share the connections)
        r = subprocess.run([str(mlkit), "serve", str(clf_package), "--port", str(port), "--log", str(tmp_path / "other.sqlite"),
                            "--workers", "2"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and f"Cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr, r.stderr
        # the supervisor killed outright takes its workers with it
        import psutil
        workers = [int(p) for p in pids]
        proc.kill(); proc.wait(30)
        deadline = time.monotonic() + 30
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their supervisor"
            time.sleep(0.2)
    finally:
        if proc.poll() is None: proc.terminate(); proc.wait(30)
        out.close()


def test_serve_workers_must_be_a_positive_whole_number(clf_package):
    from click.testing import CliRunner
    from mlkit.cli import main
    for bad in ("0", "two", "-1"):
        r = CliRunner().invoke(main, ["serve", str(clf_package), "--workers", bad])
        assert r.exit_code == 2 and "Invalid value for '--workers'" in r.output, r.output
    r = CliRunner().invoke(main, ["serve", str(clf_package), "--workers", "2", "--log", "sqlite://"])
    assert r.exit_code == 2 and "cannot be shared by 2 workers" in r.output, r.output
