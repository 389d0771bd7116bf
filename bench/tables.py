"""Generated tables for the benchmarks: nothing is downloaded.

`make_table(n_rows)` is the table the scale issue describes: 20 columns (14 numeric, 6 categorical), 3 % of the
feature values missing, and a binary target (or a numeric one with task='regression') that depends on a few
columns non-linearly, with noise, so that a model has something to learn and more rows help."""
from __future__ import annotations
from pathlib import Path
import numpy as np
import pandas as pd


def make_table(n_rows: int, seed: int = 0, task: str = "classification") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 14)).astype("float64")
    df = pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(14)])
    levels = [list("abc"), list("abcde"), [f"r{i}" for i in range(8)], ["north", "south", "east", "west"],
              [f"p{i}" for i in range(20)], ["yes", "no"]]
    for j, lv in enumerate(levels):
        df[f"c{j}"] = pd.Categorical(rng.choice(lv, n_rows, p=np.linspace(2, 1, len(lv)) / np.linspace(2, 1, len(lv)).sum())).astype(str)
    signal = (1.2 * df.x00 - 0.8 * df.x01 ** 2 + 0.6 * df.x02 * df.x03 + np.sin(2 * df.x04)
              + 0.7 * (df.c0 == "a") - 0.5 * (df.c3 == "west") + 0.3 * df.c2.str[1:].astype(int) / 7)
    noise = rng.normal(scale=0.8, size=n_rows)
    if task == "classification": df["target"] = np.where(signal + noise > np.median(signal), "positive", "negative")
    else: df["target"] = (10 * (signal + noise)).round(3)
    mask = rng.random(size=(n_rows, 20)) < 0.03
    feats = [c for c in df.columns if c != "target"]
    for i, c in enumerate(feats): df.loc[mask[:, i], c] = np.nan if df[c].dtype.kind == "f" else None
    return df


def write_table(path, n_rows: int, seed: int = 0, task: str = "classification") -> Path:
    "Write the table as Parquet (or CSV by the suffix) once; reuse it when it is there."
    path = Path(path)
    if not path.exists():
        df = make_table(n_rows, seed, task)
        path.parent.mkdir(parents=True, exist_ok=True)
        (df.to_csv(path, index=False) if path.suffix == ".csv" else df.to_parquet(path, index=False))
    return path
