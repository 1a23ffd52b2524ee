"""Data params: the repository's params.yaml loads; unknown keys and bad bounds are typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniss.unist.errors import UnistError
from uniss.unist.params import DataParams, load_params


def test_repo_params_yaml_loads_with_documented_paper_values():
    p = load_params()
    assert p.paper_src_max_wer == 0.05 and p.paper_tgt_max_wer == 0.01
    assert p.general_ratio == (0.5, 2.0) and p.hq_ratio == (0.7, 1.5)
    assert set(p.src_max_error) == set(p.tgt_max_error) == {"en", "zh"}
    assert p.size("tiny").train < p.size("demo").train


def test_overrides_and_digest():
    a = load_params(overrides={"hq_ratio": [0.8, 1.3]})
    assert a.hq_ratio == (0.8, 1.3)
    assert a.digest("hq_ratio") != load_params().digest("hq_ratio")
    assert a.digest("seed") == load_params().digest("seed")


@pytest.mark.parametrize("body,match", [
    ("data:\n  src_max_err: {en: 0.1}\n", "src_max_err"),
    ("data:\n  hq_ratio: [1.5, 0.7]\n", "lo < hi"),
    ("data:\n  languages: [en, zh]\n  src_max_error: {en: 0.2}\n", "lacks languages"),
    ("data: [unclosed\n", "not valid YAML"),
])
def test_bad_params_are_typed_errors(tmp_path: Path, body: str, match: str):
    f = tmp_path / "params.yaml"
    f.write_text(body)
    with pytest.raises(UnistError, match=match):
        load_params(f)


def test_unknown_size():
    with pytest.raises(UnistError, match="unknown data size 'huge'"):
        DataParams().size("huge")
