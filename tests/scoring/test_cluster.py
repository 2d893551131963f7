"""`mlgitops score --scheduler`: a scheduler and two workers as processes on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster import dask_cluster
from counting import CountingPipeline
from scoring_inputs import part_bytes

from mlgitops.scoring.batch import score
from mlgitops.scoring.model import PinnedModel
from mlgitops.serving.predictor import Predictor

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def test_a_cluster_scores_as_embedded_and_gets_the_model_once(
    input_csv: Path, pinned: PinnedModel, partition_bytes: int, tmp_path: Path
):
    # Given the pinned model wrapped so that each pickling in this process is counted
    predictor = pinned.predictor
    counted = PinnedModel(
        Predictor.of(
            CountingPipeline(predictor.pipeline),
            predictor.contract,
            predictor.classes.tolist() if predictor.classes is not None else [],
        ),
        pinned.md5,
    )
    embedded = tmp_path / "embedded"
    first = score(str(input_csv), str(embedded), model=counted, partition_bytes=partition_bytes)
    assert CountingPipeline.pickled == 0, "the threaded scheduler shares the model, never pickles"
    # When the same input is scored on a scheduler with two worker processes
    with dask_cluster(2, log_dir=tmp_path, pythonpath=HERE) as address:
        on_cluster = tmp_path / "cluster"
        summary = score(
            str(input_csv),
            str(on_cluster),
            model=counted,
            scheduler=address,
            partition_bytes=partition_bytes,
        )
    # Then the model left this process once for all partitions (scattered, not per task)
    assert summary["partitions"] > 2, "enough partitions that a per-task copy would show"
    assert CountingPipeline.pickled == 1, f"the model was pickled {CountingPipeline.pickled}x"
    # and the output is the embedded run's, byte for byte
    assert summary["scheduler"] == address
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"]
    assert (summary["scored"], summary["quarantined"]) == (first["scored"], first["quarantined"])
    assert part_bytes(on_cluster) == part_bytes(embedded), "cluster and embedded outputs differ"


def test_a_scheduler_that_does_not_answer_is_named(input_csv, pinned, partition_bytes, tmp_path):
    from mlgitops.deploy.local import free_port
    from mlgitops.scoring.model import ScoringError

    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ScoringError, match="no Dask scheduler answers"):
        score(
            str(input_csv),
            str(tmp_path / "out"),
            model=pinned,
            scheduler=address,
            partition_bytes=partition_bytes,
        )
