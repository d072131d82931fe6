"""Experiment IDs survive refactoring: moving where a field is declared (the mel settings from the
ljspeech dataset config to the conformer<->ljspeech adapter config) must not change any ID.

The IDs below were computed by the code *before* the move (commit 4c84b6f), with
``ExperimentBuilder(args, use_base_config=False).build().experiment_id``. Never edit them to make
this test pass: a different ID means existing experiments would no longer resume.
"""

from __future__ import annotations

import pytest

from MLSystem.builder import ExperimentBuilder
from MLSystem.paths import ProjectPaths

RECORDED = [
    (["dataset=digits", "model=cnn"], "55c158756c28"),
    (["dataset=digits", "model=mlp"], "220b522da39b"),
    (["dataset=digits", "model=cnn", "lr=0.01", "seed=3"], "53c112694e10"),
    (["dataset=ljspeech", "model=conformer"], "31a44005956f"),
    (["dataset=ljspeech", "model=conformer", "n_mels=64", "hop_length=200", "f_max=7000.0", "n_fft=512", "f_min=20"],
     "05633dcd88c4"),
    (["dataset=ljspeech", "model=conformer", "d_model=96", "num_layers=2", "ffn_dim=192", "lr=3e-3",
      "warmup_steps=60", "max_epochs=12", "n_mels=40"], "921a2737540c"),
    (["dataset=ljspeech", "model=conformer", "best_metric=val_wer", "best_mode=max", "sample_rate=16000",
      "f_max=8000"], "7b0024cfc62a"),
]


@pytest.mark.parametrize("args, expected", RECORDED, ids=[e for _, e in RECORDED])
def test_experiment_ids_recorded_before_the_field_moves_are_unchanged(project, args, expected):
    ctx = ExperimentBuilder(args, paths=ProjectPaths.discover(), use_base_config=False).build()
    assert ctx.experiment_id == expected
