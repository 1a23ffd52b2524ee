"""uniss.jsonio.read_json: one way to read a JSON object or fail with a typed, named error."""

import pytest

from uniss.errors import UnissError
from uniss.jsonio import JsonFileError, read_json


class _MyError(UnissError):
    pass


def test_reads_object(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"x": 1}')
    assert read_json(f) == {"x": 1}


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "not found"), (b"\xff\xfe\x00", "unreadable"), (b"{nope", "not valid JSON"), (b"[1, 2]", "expected a JSON object, got list")],
)
def test_each_problem_is_named(tmp_path, content, problem):
    f = tmp_path / "m.json"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(JsonFileError, match=problem) as ei:
        read_json(f, what="test manifest")
    assert "test manifest" in str(ei.value) and str(f) in str(ei.value)


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(JsonFileError, match="unreadable"):
        read_json(tmp_path)


def test_caller_error_type(tmp_path):
    with pytest.raises(_MyError, match="not found"):
        read_json(tmp_path / "none.json", error=_MyError)
