"""Training, finetuning and evaluation log through TorchRL loggers chosen by name (csv, tensorboard, wandb offline)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from torchrl_gbp import train as train_module
from torchrl_gbp.experiments.cli import main
from torchrl_gbp.train import make_logger

TINY_MODEL = ["--training.steps", "3", "--training.batch-size", "8", "--model.hidden-dim", "16", "--model.depth", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "wall"
    assert main(["collect", "--task", "wall", "--out", str(path), "--data.num-trajectories", "12",
                 "--trajectory-steps", "25"]) == 0
    return path


def train_with(logger: str, dataset: Path, tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    assert main(["train", "--task", "wall", "--dataset", str(dataset), "--out", str(tmp_path / "model.pt"),
                 *TINY_MODEL, "--log-dir", str(logs), "--logger", logger]) == 0
    return logs


def test_csv_logger_writes_training_finetuning_and_evaluation_rows(dataset: Path, tmp_path: Path) -> None:
    logs = train_with("csv", dataset, tmp_path)
    (loss,) = (logs / "wall_train").rglob("loss_prediction.csv")
    step, value = loss.read_text().splitlines()[-1].split(",")
    assert int(step) == 3 and float(value) > 0
    assert main(["finetune", "--task", "wall", "--base", str(tmp_path / "model.pt"), "--method", "adversarial",
                 "--out", str(tmp_path / "tuned.pt"), "--dataset", str(dataset), "--finetuning.steps", "2",
                 "--log-dir", str(logs)]) == 0
    assert list((logs / "wall_finetune_adversarial").rglob("loss_prediction.csv"))
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(tmp_path / "model.pt"), "--planner", "gd",
                 "--planners.gd.steps", "2", "--evaluation.episodes", "2", "--log-dir", str(logs)]) == 0
    (success,) = (logs / "wall_evaluate_gd").rglob("success_rate.csv")
    assert 0.0 <= float(success.read_text().splitlines()[-1].split(",")[1]) <= 1.0


def test_tensorboard_logger_writes_readable_events(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = train_with("tensorboard", dataset, tmp_path)
    (events,) = {path.parent for path in logs.rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    (tag,) = [t for t in accumulator.Tags()["scalars"] if t.endswith("loss_prediction")]
    (point,) = accumulator.Scalars(tag)
    assert point.step == 3 and point.value > 0


def test_wandb_logger_writes_an_offline_run(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logs = train_with("wandb", dataset, tmp_path)
    (run,) = (logs / "wandb").glob("offline-run-*")
    (records,) = run.glob("run-*.wandb")
    assert records.stat().st_size > 0


def test_an_unknown_logger_name_is_refused() -> None:
    with pytest.raises(ValueError, match="logger must be one of"):
        make_logger("mlflow", "logs", "train")
    with pytest.raises(SystemExit):  # argparse refuses it before any work
        main(["train", "--dataset", "d", "--out", "m.pt", "--logger", "mlflow"])


@pytest.mark.parametrize("backend", ["tensorboard", "wandb"])
def test_a_missing_backend_names_the_package_and_the_extra(backend: str, monkeypatch, tmp_path: Path,
                                                           capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(train_module.importlib.util, "find_spec",
                        lambda name, *args: None if name == backend else real(name, *args))
    with pytest.raises(ImportError, match=rf"the {backend} logger needs the '{backend}' package.*"
                                          rf"torchrl_gbp\[{backend}\]"):
        make_logger(backend, tmp_path, "train")
    # the command line says so in one line, before training
    assert main(["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--log-dir", str(tmp_path),
                 "--logger", backend]) == 2
    assert f"torchrl_gbp[{backend}]" in capsys.readouterr().err
