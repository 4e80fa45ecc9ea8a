"""CLI conventions: --version, completion, --json, --quiet, plain flag help, '-' refused clearly."""

import json
import re

from conftest import PAPERS
from typer.testing import CliRunner

from sciembed import __version__
from sciembed.cli import app

runner = CliRunner()


def _papers_file(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAPERS))
    return path


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"sciembed {__version__}"


def test_completion_script():
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="sciembed")
    assert result.exit_code == 0, result.output
    assert "complete -o default -F _sciembed_completion sciembed" in result.output


def test_flags_show_without_a_value_in_help():
    result = runner.invoke(app, ["embed", "--help"], terminal_width=120)
    assert result.exit_code == 0

    def line_of(flag):
        return next(line for line in result.output.splitlines() if re.search(rf"(^|[\s,]){flag}(\s|$)", line))

    for flag in ("--skip-invalid", "--compile", "--json", "--quiet", "--help"):
        assert "<bool>" not in line_of(flag) and "BOOLEAN" not in line_of(flag), result.output
    assert "<int" in line_of("--chunk-size")  # "<int>" or "<int range>" with its bound


def test_embed_json_summary_and_info_json_of_the_file(tmp_path, tiny_model_folder):
    out = tmp_path / "out.parquet"
    papers = str(_papers_file(tmp_path))
    result = runner.invoke(app, ["embed", papers, str(out), "-m", str(tiny_model_folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == len(PAPERS) and summary["metadata"]["dimension"] == 32
    assert summary["metadata"]["format"] == "proximity" and summary["metadata"]["sciembed_version"] == __version__
    info = runner.invoke(app, ["info", str(out), "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.stdout)
    assert data["rows"] == len(PAPERS) and data["fingerprint"] == summary["metadata"]["fingerprint"]
    text = runner.invoke(app, ["info", str(out)])
    assert "fingerprint:" in text.output and data["fingerprint"] in text.output


def test_info_json_of_a_model(tiny_model_folder):
    result = runner.invoke(app, ["info", str(tiny_model_folder), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dimension"] == 32 and data["formats"] == ["proximity", "classification", "regression", "adhoc_query"]


def test_quiet_prints_nothing(tmp_path, tiny_model_folder):
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["embed", str(_papers_file(tmp_path)), str(out), "-m", str(tiny_model_folder), "-q"])
    assert result.exit_code == 0 and result.output == ""
    assert out.is_file()


def test_dash_is_refused_with_a_reason(tmp_path, tiny_model_folder):
    for args in (["-", str(tmp_path / "o.parquet")], [str(_papers_file(tmp_path)), "-"]):
        result = runner.invoke(app, ["embed", *args, "-m", str(tiny_model_folder)])
        assert result.exit_code == 2
        assert "cannot be '-'" in result.output
    assert not (tmp_path / "-").exists()
