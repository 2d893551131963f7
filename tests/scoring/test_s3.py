"""`mlgitops score` from and to S3 URLs, against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitops.scoring.batch import MARKER, SCORED_DIR, score
from mlgitops.scoring.model import PinnedModel

pytestmark = pytest.mark.slow
BUCKET = "mlgitops-scoring-test"


def test_s3_in_and_out(aws_env, input_csv: Path, pinned: PinnedModel, tmp_path: Path):
    # Given the input in a bucket of the S3 server
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(input_csv), BUCKET, "in/rows.csv")
    local = score(str(input_csv), str(tmp_path / "local"), model=pinned, partition_bytes=1 << 20)
    # When it is scored into the bucket, twice
    source, target = f"s3://{BUCKET}/in/rows.csv", f"s3://{BUCKET}/out/scores"
    summary = score(source, target, model=pinned, partition_bytes=1 << 20)
    again = score(source, target, model=pinned, partition_bytes=1 << 20)
    # Then the counts are the local file's, the marker is in the bucket, no temporary is left,
    # and the second run wrote nothing
    assert (summary["scored"], summary["quarantined"]) == (local["scored"], local["quarantined"])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    marker = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/scores/{MARKER}")["Body"].read())
    assert marker["rows_in"] == marker["scored"] + marker["quarantined"] == summary["rows_in"]
    assert any(k.startswith(f"out/scores/{SCORED_DIR}/") for k in keys), keys
    assert not [k for k in keys if ".partial-" in k], f"temporary files left: {keys}"
    assert again["rewritten"] is False, "a complete S3 output is not rewritten"
    assert (marker["input"], marker["output"]) == (source, target)
