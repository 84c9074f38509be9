"""`python -m sweeps.report` redraws a study from the MLflow store alone."""

import base64
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sweeps.errors import UserError
from sweeps.kinds import run_study
from sweeps.recording import recorded_study
from sweeps.report import rebuild

COLUMNS = ["variant", "final_loss", "train_acc", "test_acc", "gap"]


@pytest.mark.parametrize(
    ("overrides", "figures"),
    [
        (["+experiment=optimizers", "train.iterations=20"], {"optimizers.png"}),
        (
            ["+experiment=weight_decay", "train.epochs=3"],
            {"weight_decay.png", "weight_decay_loss.png"},
        ),
    ],
)
def test_training_study_table_and_figures_rebuilt(
    make_cfg, tracking_uri: str, tmp_path: Path, overrides: list[str], figures: set[str]
) -> None:
    cfg = make_cfg(*overrides)
    original = run_study(cfg)
    table, folder = rebuild(cfg.study, out=str(tmp_path / "out"), uri=tracking_uri)
    pd.testing.assert_frame_equal(table[COLUMNS], original[COLUMNS], check_dtype=False)
    tables = {"summary.csv", "claims.csv", "report.html"}
    assert {p.name for p in folder.iterdir()} == figures | tables
    # the page logged by the study is the page rebuilt from the store, figures included, and
    # so are the claims judged on the store's numbers
    study = recorded_study(cfg.study, None, tracking_uri)
    logged = study.store.artifact(study.parent.run_id, "report.html").decode()
    assert logged == (folder / "report.html").read_text()
    claims = study.store.artifact(study.parent.run_id, "claims.csv").decode()
    assert claims == (folder / "claims.csv").read_text()
    assert "<h2>Claims</h2>" in logged
    for name in figures:
        assert base64.b64encode((folder / name).read_bytes()).decode() in logged
    assert all(f">{v}</a>" in logged for v in original["variant"])


def test_paths_and_activations_rebuilt(make_cfg, tracking_uri: str, tmp_path: Path) -> None:
    paths = run_study(make_cfg("+experiment=optimizer_paths"))
    table, _ = rebuild("optimizer_paths", out=str(tmp_path / "p"), uri=tracking_uri)
    pd.testing.assert_frame_equal(table, paths, check_dtype=False)
    acts = run_study(make_cfg("+experiment=activations", "probe.samples=100"))
    table, folder = rebuild("activations", out=str(tmp_path / "a"), uri=tracking_uri)
    pd.testing.assert_frame_equal(table, acts, check_dtype=False)
    assert len(list(folder.glob("activations_*.png"))) == 3


def test_unknown_experiment_names_the_known_ones(make_cfg, tracking_uri: str) -> None:
    run_study(make_cfg("+experiment=optimizer_paths"))
    with pytest.raises(UserError, match="no MLflow experiment 'nope'.*optimizer_paths"):
        rebuild("nope", uri=tracking_uri)


def test_command_line(make_cfg, tracking_uri: str, tmp_path: Path) -> None:
    run_study(make_cfg("+experiment=optimizer_paths"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeps.report",
            "optimizer_paths",
            "--tracking-uri",
            tracking_uri,
            "--out",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AdaGrad" in proc.stdout and (tmp_path / "cli" / "optimizer_paths.png").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "sweeps.report", "nope", "--tracking-uri", tracking_uri],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "no MLflow experiment 'nope'" in bad.stderr


def gallery(tmp_path: Path, *arguments: str) -> str:
    """The page `python -m sweeps.gallery ARGUMENTS` wrote under tmp_path/docs."""
    page = tmp_path / "docs" / "gallery.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeps.gallery",
            *arguments,
            "--out",
            str(tmp_path / "docs" / "gallery"),
            "--page",
            str(page),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return page.read_text()


def test_gallery_draws_a_study_from_its_own_store(tmp_path: Path) -> None:
    text = gallery(tmp_path, "optimizer_paths")
    assert "![optimizer_paths](gallery/optimizer_paths/optimizer_paths.png)" in text
    assert "`python -m sweeps.run +experiment=optimizer_paths` (" in text and "threads)" in text
    assert "(textbook ch. 6.1.7)" in text and "AdaGrad" in text
    assert (tmp_path / "docs" / "gallery" / "optimizer_paths" / "optimizer_paths.png").is_file()
    assert not (tmp_path / "mlflow.db").exists()  # the gallery's store is its own


def test_gallery_shows_a_searchs_trials_and_every_studys_claims(tmp_path: Path) -> None:
    tiny = ["search.n_trials=3", "train.epochs=1", "dataset.train_size=100"]
    text = gallery(tmp_path, "hparam_search", *[f"--override={o}" for o in tiny])
    assert "![best_trials](gallery/hparam_search/best_trials.png)" in text
    assert text.count(" COMPLETE ") == 3  # the trials table, a row per trial
    assert "claims: " in text and "good_learning_rates_lie_in_a_band" in text
