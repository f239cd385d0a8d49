"""Completer plumbing: the engine stops once a multi-line completion passes max_lines."""

from repoctx.config import Config
from repoctx.pipeline import Completer, RepoContext
from tests.helpers import make_repo
from tests.lsp_support import ScriptedEngine


def test_multiline_generation_stops_past_max_lines(tmp_path):
    root = make_repo(tmp_path, {"a.py": "def f(items):\n    \n"})
    config = Config.from_dict({"index": {"location": str(tmp_path / "ix")}, "completion": {"max_lines": 3, "multiline": "always"}})
    body = "".join(f"    x_{i} = items[{i}]\n" for i in range(40))[4:]
    engine = ScriptedEngine(script=body)
    completer = Completer(RepoContext(root, config), engine, config)
    completer.repo.build_index()
    cursor = completer.repo.workspace.read("a.py")
    from repoctx.types import Cursor

    result = completer.complete(Cursor("a.py", cursor, 1, 4))
    record = engine.log[-1]
    assert record["emitted"] < record["planned"] / 4, record
    assert result.finish_reason == "stop"
    assert result.text.count("\n") <= 2 and result.text.startswith("x_0 = items[0]")
