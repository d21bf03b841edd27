"""The ``gpuseg`` command through its real entry point (a subprocess), on small generated data.

Every bad input ends with exit status 2 and one line on stderr naming the file, the column and
what was expected, never a traceback, and leaves no output under its final name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuseg.retail import write_transactions

N_CUSTOMERS = 600


def gpuseg(*args, cwd=None, check=None):
    """Run ``python -m gpuseg.cli ARGS``; return the completed process."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("GPUSEG_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "gpuseg.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip
    if check is not None:
        assert proc.returncode == check, proc.stderr + proc.stdout
    return proc


class Result:
    """What an in-process run of ``gpuseg.cli.main`` returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys):
    """Run ``gpuseg.cli.main(ARGS)`` in this process (the subprocess path is tested above it).

    The bad-input cases run here: the same code as the command, without paying the start of a
    Python process with numba and scikit-learn each time.
    """
    from gpuseg.cli import main

    def call(*args, check=None):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # --help and argparse usage errors
            code = exc.code
        out, err = capsys.readouterr()
        result = Result(code, out, err)
        if check is not None:
            assert code == check, err + out
        return result

    return call


def user_error(proc, *words):
    """Exit status 2, one error line (the last; progress lines may precede it), no traceback."""
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A transaction log, its RFM table (through the command) and a model fitted on it."""
    root = tmp_path_factory.mktemp("cli")
    write_transactions(root / "log", N_CUSTOMERS, n_files=2, random_state=3)
    proc = gpuseg("rfm", root / "log", "-o", root / "customers.parquet", "--order", "order_id",
                  "--category", "category", "--channel", "channel", "--as-of", "2024-12-01",
                  check=0)  # fmt: skip
    assert "as_of: 2024-12-01" in proc.stdout
    gpuseg("fit", root / "customers.parquet", "-k", 4, "-o", root / "model", "--seed", 1,
           check=0)  # fmt: skip
    return root


@pytest.fixture
def table(tmp_path):
    """A small numeric customer table written by the test: (path, frame)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "customer_id": np.arange(40, dtype=np.int64),
        "spend": rng.lognormal(3, 1, 40),
        "visits": rng.poisson(4, 40).astype(np.int64),
        "name": [f"c{i}" for i in range(40)],
    })  # fmt: skip
    path = tmp_path / "table.parquet"
    frame.to_parquet(path)
    return path, frame


# -- the commands ----------------------------------------------------------------------------------


def test_rfm_saves_as_of_in_the_file_metadata(work):
    table = pq.read_table(work / "customers.parquet")
    assert table.schema.metadata[b"gpuseg.as_of"] == b"2024-12-01"
    assert table.num_rows <= N_CUSTOMERS
    assert {"recency_days", "frequency", "monetary_total", "R", "F", "M", "segment"} <= set(
        table.column_names
    )


def test_fit_writes_a_model_that_loads(work):
    from gpuseg.model import load

    model = load(work / "model")
    assert model.n_clusters == 4
    assert model.as_of.startswith("2024-12-01")
    assert model.id_column == "customer_id"


def test_assign_profile_drift_and_report(work, tmp_path):
    gpuseg("assign", work / "model", work / "customers.parquet", "-o", tmp_path / "labels",
           check=0)  # fmt: skip
    labels = pq.read_table(tmp_path / "labels").to_pandas()
    assert (tmp_path / "labels" / "_SUCCESS").exists()
    assert len(labels) == pq.read_metadata(work / "customers.parquet").num_rows
    assert {"customer_id", "segment", "distance", "runner_up", "margin", "ambiguous"} <= set(
        labels.columns
    )

    proc = gpuseg("profile", work / "model", work / "customers.parquet", "-o",
                  tmp_path / "segments.json", check=0)  # fmt: skip
    assert "| segment | name | customers | share |" in proc.stdout
    profile = json.loads((tmp_path / "segments.json").read_text())
    assert sum(s["size"] for s in profile["segments"]) == len(labels)
    assert (tmp_path / "segments.md").exists()

    proc = gpuseg("drift", tmp_path / "labels", tmp_path / "labels", "-o", tmp_path / "d.json",
                  check=0)  # fmt: skip
    drift = json.loads((tmp_path / "d.json").read_text())
    assert drift["psi"] == pytest.approx(0.0, abs=1e-12)
    assert drift["stayed"] == 1.0
    matrix = np.array(drift["matrix"])
    assert matrix.sum(axis=1).tolist() == np.bincount(labels["segment"], minlength=4).tolist()
    assert (np.bincount(labels["segment"], minlength=4) > 0).all()

    gpuseg("report", work / "model", work / "customers.parquet", "-o", tmp_path / "r.html",
           "--previous", tmp_path / "labels", check=0)  # fmt: skip
    page = (tmp_path / "r.html").read_text()
    assert page.count('class="chart"') >= 6
    assert "Migration from the previous run" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_choose_k_recommends_and_writes_json(work, tmp_path):
    proc = gpuseg("choose-k", work / "customers.parquet", "--k", "2..4", "--sample", 300,
                  "-o", tmp_path / "k.json", check=0)  # fmt: skip
    assert "recommended:" in proc.stdout
    scores = json.loads((tmp_path / "k.json").read_text())
    assert [s["k"] for s in scores["scores"]] == [2, 3, 4]


def test_config_file_gives_the_options(work, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(
        f'seed = 3\n[fit]\ndata = "{work / "customers.parquet"}"\nk = 3\n'
        f'output = "{tmp_path / "m"}"\ncolumns = ["recency_days", "frequency"]\n'
    )
    proc = gpuseg("fit", "--config", job, check=0)
    assert "fitted k=3" in proc.stdout and "recency_days, frequency)" in proc.stdout
    job.write_text("[fit]\nclusters = 3\n")
    user_error(gpuseg("fit", "--config", job), str(job), "unknown option 'clusters'")


def test_top_level_job_keys_are_shared_by_the_commands_that_take_them(tmp_path):
    from gpuseg.cli import _apply_config, build_parser

    job = tmp_path / "job.toml"
    job.write_text('seed = 7\nambiguity = 0.2\n[rfm]\ntransactions = "log/"\noutput = "f"\n')
    parser = build_parser()
    argv = ["rfm", "--config", str(job)]
    args = _apply_config(parser, parser.parse_args(argv), argv)
    assert args.transactions == "log/" and not hasattr(args, "seed")


def test_bench_prints_a_table_and_writes_json(tmp_path):
    proc = gpuseg("bench", "--rows", 3000, "--features", 4, "-k", 3, "--iterations", 3,
                  "--peers", "sklearn", "-o", tmp_path / "b.json", check=0)  # fmt: skip
    assert "gpuseg-cpu" in proc.stdout and "sklearn" in proc.stdout
    result = json.loads((tmp_path / "b.json").read_text())
    assert {r["tool"] for r in result["results"]} == {"gpuseg-cpu", "sklearn"}


def test_demo_runs_every_step(tmp_path):
    proc = gpuseg("demo", "--customers", 1500, "--out", tmp_path / "demo", "--k-range", "3..4",
                  check=0)  # fmt: skip
    for name in ("customers.parquet", "choose-k.json", "model", "labels", "segments.json",
                 "report.html"):  # fmt: skip
        assert (tmp_path / "demo" / name).exists(), name
        assert name in proc.stdout
    assert "revenue" in proc.stdout and "ambig." in proc.stdout
    # A second run replaces the demo's own directory.
    gpuseg("demo", "--customers", 300, "--out", tmp_path / "demo", "-k", 3, "--k-range", "3",
           check=0)  # fmt: skip


@pytest.mark.parametrize(
    "command", ["rfm", "fit", "assign", "choose-k", "profile", "drift", "report", "bench", "demo"]
)
def test_help_has_examples(command, run):
    proc = run(command, "--help", check=0)
    assert "examples:" in proc.stdout and f"gpuseg {command}" in proc.stdout
    assert "--config" in proc.stdout


def test_help_through_the_installed_entry_point():
    proc = gpuseg("fit", "--help", check=0)
    assert "examples:" in proc.stdout and "--device" in proc.stdout


# -- bad input: exit 2, one line, nothing left behind ----------------------------------------------


def test_missing_file(tmp_path):
    user_error(gpuseg("fit", tmp_path / "nope.parquet", "-k", 2, "-o", tmp_path / "m"),
               "nope.parquet", "no such file")  # fmt: skip
    assert not (tmp_path / "m").exists()


def test_missing_column(table, tmp_path, run):
    path, _ = table
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m", "--columns", "spend,age"),
               str(path), "'age'", "missing")  # fmt: skip


def test_non_numeric_feature_column(table, tmp_path, run):
    path, _ = table
    line = user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m", "--columns", "name"),
                      str(path), "'name'", "expected a numeric column")  # fmt: skip
    assert "--categorical" in line


def test_columns_left_out_of_the_default_features_are_named(table, tmp_path, run):
    path, _ = table
    proc = run("fit", path, "-k", 2, "-o", tmp_path / "m", check=0)
    assert "x 2 features (spend, visits)" in proc.stdout
    assert "not used as features: name (string)" in proc.stderr
    proc = run("choose-k", path, "--k", "2..3", "-o", tmp_path / "k.json", check=0)
    assert "not used as features: name (" in proc.stderr
    proc = run("fit", path, "-k", 2, "-o", tmp_path / "m2", "--categorical", "name", check=0)
    assert "not used as features" not in proc.stderr


def test_persist_choices_fit_the_same_model(table, tmp_path, run):
    from gpuseg.model import load

    path, _ = table
    centers = []
    for choice in ("auto", "yes", "no"):
        run("fit", path, "-k", 3, "-o", tmp_path / choice, "--persist", choice, check=0)
        centers.append(load(tmp_path / choice).centers)
    np.testing.assert_array_equal(centers[0], centers[1])
    np.testing.assert_array_equal(centers[0], centers[2])
    assert run("fit", path, "-k", 3, "-o", tmp_path / "x", "--persist", "maybe").returncode == 2


def test_nan_is_an_error_unless_dropped_or_imputed(table, tmp_path, run):
    path, frame = table
    frame.loc[7, "spend"] = np.nan
    frame.loc[9, "visits"] = 0
    frame["visits"] = frame["visits"].astype(float)
    frame.loc[11, "visits"] = np.inf
    frame.to_parquet(path)
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m"), str(path), "'spend'",
               "null at row 7", "--nan drop|impute")  # fmt: skip
    assert not (tmp_path / "m").exists()
    proc = run("fit", path, "-k", 2, "-o", tmp_path / "m", "--nan", "drop", check=0)
    assert "on 38 rows" in proc.stdout
    run("fit", path, "-k", 2, "-o", tmp_path / "m2", "--nan", "impute", check=0)
    user_error(run("assign", tmp_path / "m", path, "-o", tmp_path / "labels"), "'spend'")
    run("assign", tmp_path / "m", path, "-o", tmp_path / "labels", "--nan", "impute", check=0)
    assert pq.read_table(tmp_path / "labels").num_rows == 40
    # Profiles describe the raw values, which imputing does not change: the error comes from the
    # thread that folds the statistics and still names the column, and nothing is written.
    profile = tmp_path / "profile.json"
    user_error(run("profile", tmp_path / "m2", path, "-o", profile, "--nan", "impute"),
               "column '", "has NaN or infinite values")  # fmt: skip
    assert not profile.exists() and not profile.with_suffix(".md").exists()


def test_empty_data(table, tmp_path, run):
    path, frame = table
    frame.iloc[:0].to_parquet(path)
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m"), str(path), "no rows")


def test_corrupt_parquet(tmp_path, run):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not really parquet PAR1")
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m"), str(path), "Parquet")


def test_schemas_differ_between_files(table, tmp_path, run):
    _, frame = table
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:20].to_parquet(folder / "a.parquet")
    frame.iloc[20:].assign(spend=lambda f: f["spend"].astype(str)).to_parquet(folder / "b.parquet")
    user_error(run("fit", folder, "-k", 2, "-o", tmp_path / "m"), "b.parquet", "'spend'",
               "schemas differ")  # fmt: skip


@pytest.mark.parametrize("k", [0, 41])
def test_k_out_of_range(table, tmp_path, k, run):
    path, _ = table
    line = user_error(run("fit", path, "-k", k, "-o", tmp_path / "m"), f"-k {k}")
    if k > 1:
        assert str(path) in line and "40 rows" in line
    assert not (tmp_path / "m").exists()


def test_duplicated_customer_ids(table, tmp_path, run):
    path, frame = table
    frame.loc[5, "customer_id"] = 3
    frame.to_parquet(path)
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m"), str(path), "'customer_id'",
               "duplicated customer id 3")  # fmt: skip


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_repeated_ids_found_by_numpy_as_by_arrow(order):
    from gpuseg.commands._common import _repeats

    rng = np.random.default_rng()
    ids = np.arange(50_000, dtype=np.int64) * 3
    if order == "shuffled":
        ids = rng.permutation(ids)
    assert _repeats(pa.chunked_array([ids])) is None
    copies = rng.choice(len(ids), 4, replace=False)
    ids[copies[:2]] = ids[copies[2:]]  # two rows repeat ids of two others
    as_ints = _repeats(pa.chunked_array([ids[:20_000], ids[20_000:]]))
    as_strings = _repeats(pa.chunked_array([ids.astype(str)]))  # Arrow's hash count
    assert as_ints == (int(as_strings[0]), as_strings[1]) and as_ints[1] == 2


def test_unknown_device(table, tmp_path, run):
    path, _ = table
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m", "--device", "tpu"),
               "--device tpu", "'auto', 'cpu', 'cuda'")  # fmt: skip


def test_cuda_without_a_gpu(table, tmp_path, run):
    from gpuseg._backend import _cuda_visible

    if _cuda_visible():
        pytest.skip("a CUDA device is visible")
    path, _ = table
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m", "--device", "cuda"),
               "--device cuda", "no CUDA device")  # fmt: skip


def test_output_exists_refused_unless_overwrite(table, tmp_path, run):
    path, _ = table
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    user_error(run("fit", path, "-k", 2, "-o", tmp_path / "m"), "already exists",
               "--overwrite")  # fmt: skip
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"
    run("fit", path, "-k", 2, "-o", tmp_path / "m", "--overwrite", check=0)
    assert (tmp_path / "m" / "model.json").exists() and not (tmp_path / "m" / "keep.txt").exists()


def test_unwritable_output(table, tmp_path, run):
    path, _ = table
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    user_error(run("fit", path, "-k", 2, "-o", blocker / "m"), str(blocker / "m"),
               "cannot write")  # fmt: skip


def test_model_from_a_newer_format(work, table, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(work / "model", model)
    meta = json.loads((model / "model.json").read_text())
    meta["format_version"] = 99
    (model / "model.json").write_text(json.dumps(meta))
    user_error(gpuseg("assign", model, work / "customers.parquet", "-o", tmp_path / "labels"),
               str(model), "newer", "upgrade gpuseg")  # fmt: skip
    assert not (tmp_path / "labels").exists()


def test_assign_with_a_missing_model_column(work, table, tmp_path, run):
    path, _ = table
    user_error(run("assign", work / "model", path, "-o", tmp_path / "labels"), str(path),
               "'recency_days'", "missing")  # fmt: skip
    assert not (tmp_path / "labels").exists()


def test_rfm_missing_column(work, tmp_path, run):
    user_error(run("rfm", work / "log", "-o", tmp_path / "c.parquet", "--amount", "total"),
               str(work / "log"), "'total'")  # fmt: skip
    assert not (tmp_path / "c.parquet").exists()


def test_no_partial_output_on_failure(table, tmp_path, run):
    path, frame = table
    frame.loc[39, "spend"] = np.nan  # found late, while the labels are written
    frame.to_parquet(path)
    folder = tmp_path / "out"
    folder.mkdir()
    user_error(run("fit", path, "-k", 2, "-o", folder / "m"), "null at row 39")
    assert list(folder.iterdir()) == []


# -- Dask ------------------------------------------------------------------------------------------


def test_fit_on_a_local_cluster_gives_the_local_centres(work, tmp_path):
    # --workers: the workers read the file and apply the plan (one partition, as the local run's
    # one block), so the seed gives the same centres.
    from gpuseg.model import load

    proc = gpuseg("fit", work / "customers.parquet", "-k", 4, "-o", tmp_path / "model", "--seed",
                  1, "--workers", 2, check=0)  # fmt: skip
    assert "local cluster of 2 worker process(es)" in proc.stderr
    local, on_cluster = load(work / "model"), load(tmp_path / "model")
    np.testing.assert_allclose(on_cluster.centers, local.centers, rtol=1e-6, atol=1e-9)
    assert on_cluster.inertia == pytest.approx(local.inertia, rel=1e-6)


def test_rfm_on_a_local_cluster_writes_the_local_table(work, tmp_path):
    gpuseg("rfm", work / "log", "-o", tmp_path / "customers.parquet", "--order", "order_id",
           "--category", "category", "--channel", "channel", "--as-of", "2024-12-01",
           "--workers", 2, check=0)  # fmt: skip
    local = pd.read_parquet(work / "customers.parquet")
    on_cluster = pd.read_parquet(tmp_path / "customers.parquet")
    pd.testing.assert_frame_equal(on_cluster, local)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], ["exclude each other"]),
        (["--workers", "0"], ["--workers 0", "integer >= 1"]),
        (["--scheduler", "tcp://127.0.0.1:9"], ["tcp://127.0.0.1:9", "cannot connect"]),
    ],
)
def test_bad_cluster_options_are_one_line_errors(run, work, tmp_path, options, words):
    result = run("fit", work / "customers.parquet", "-k", 2, "-o", tmp_path / "m", *options)
    user_error(result, *words)
    assert not (tmp_path / "m").exists()
