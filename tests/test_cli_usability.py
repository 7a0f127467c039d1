"""What a new user meets first: ``--version``, ``--help`` with descriptions and defaults, one logging
setup for every command, row counts of ``convert``, an options-only question refused before any
model loads, the offline-hub advice, and docs that link only to files of the repository."""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from loguru import logger

from tspo_eval.cli import COMMANDS, build_parser, main
from tspo_eval.errors import CheckpointError, InputError

REPO = Path(__file__).resolve().parents[1]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) sub-command parser under ``parser``, by its prog name."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse keeps sub-parsers here; no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found[child.prog] = child
                found.update(_subparsers(child))
    return found


# ---- version and help ---------------------------------------------------------------------------
def test_version_comes_from_the_installed_distribution(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"tspo-eval {metadata.version('tspo-eval')}"


def test_select_help_has_a_description_and_defaults() -> None:
    text = build_parser("select")._subparsers._group_actions[0].choices["select"].format_help()
    assert "Pick the K frames of one video" in text and "example:" in text
    flat = " ".join(text.split())
    for fragment in ("(default: 64)", "(default: topk)", "(default: tspo)", "(default: hzf666/TSPO-0.4B)",
                     "(default: 1.0)", "--verbose", "--quiet"):
        assert fragment in flat, fragment
    assert "(default: None)" not in flat and "(default: False)" not in flat


def test_every_command_describes_itself_and_shows_its_defaults() -> None:
    parsers = _subparsers(build_parser())
    assert {f"tspo-eval {name}" for name in COMMANDS} <= set(parsers)
    for prog, parser in parsers.items():
        assert parser.description and len(parser.description) > 20, prog
        help_text = " ".join(parser.format_help().split())
        for action in parser._actions:
            shown_default = (action.option_strings and action.nargs != 0 and action.help
                             and action.default not in (None, argparse.SUPPRESS, [], ())
                             and not isinstance(action.default, bool))
            if shown_default:
                assert "default" in " ".join(parser._get_formatter()._expand_help(action).split()).lower(), \
                    (prog, action.option_strings)
        assert "--quiet" in help_text, prog


# ---- logging ------------------------------------------------------------------------------------
def test_logging_levels_and_loguru_left_as_found(capsys, tmp_path: Path) -> None:
    """INFO by default, DEBUG with -v, WARNING with --quiet; loguru's default handler is back afterwards."""
    from tspo_eval.cli import logging_setup

    def emit(args: argparse.Namespace) -> int:
        logger.debug("debug-line")
        logger.info("info-line")
        logger.warning("warning-line")
        return 0

    parser = argparse.ArgumentParser()
    logging_setup.add_logging_options(parser)
    for flags, expected in (([], {"info-line", "warning-line"}), (["-v"], {"debug-line", "info-line", "warning-line"}),
                            (["--quiet"], {"warning-line"})):
        args = parser.parse_args(flags)
        with logging_setup.cli_logging(logging_setup.level_from_args(args)):
            emit(args)
        err = capsys.readouterr().err
        assert {m for m in ("debug-line", "info-line", "warning-line") if m in err} == expected, (flags, err)
        assert all(err.count(m) == 1 for m in expected)   # each line once: one handler, not two
    with pytest.raises(SystemExit):
        parser.parse_args(["-v", "--quiet"])
    # after the command, loguru prints DEBUG again, once (its default handler, not ours, not twice)
    logger.debug("after-the-command")
    assert capsys.readouterr().err.count("after-the-command") == 1


def test_main_configures_logging_for_every_command(capsys, tmp_path: Path) -> None:
    """A command run through main(): no DEBUG line by default; -v shows them; each message once."""
    cache = tmp_path / "cache"
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    first = capsys.readouterr()
    assert "DEBUG" not in first.err and str(cache) in first.out
    marker = "tspo-eval-test-marker"
    logger.debug(marker)  # outside main: loguru's own default handler
    assert capsys.readouterr().err.count(marker) == 1


# ---- convert: rows, not lines -------------------------------------------------------------------
VMME_ROWS = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "History", "videoID": "yt1",
     "question_id": "001-1", "task_type": "Counting Problem", "question": "How many?\nCount them all.",
     "options": ["A. One.", "B. Two\nor more.", "C. Three.", "D. Four."], "answer": "C"},
    {"video_id": "002", "duration": "long", "domain": "Sports", "sub_category": "Football", "videoID": "yt2",
     "question_id": "002-1", "task_type": "Action Recognition", "question": "What happens\n\nnext?",
     "options": ["A. a", "B. b", "C. c", "D. d"], "answer": "A"},
]


def test_convert_counts_tsv_rows_not_lines(tmp_path: Path, capsys) -> None:
    import pandas as pd  # what VLMEvalKit reads the TSV with

    annotations = tmp_path / "videomme.json"
    annotations.write_text(json.dumps(VMME_ROWS), encoding="utf-8")
    out = tmp_path / "videomme.tsv"
    assert main(["convert", "videomme", str(annotations), "--to", "vlmevalkit", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert text.count("\n") - 1 > 2                       # cells with newlines: lines != rows
    assert len(pd.read_csv(out, sep="\t")) == 2
    assert len(list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))) - 1 == 2
    assert f"{out}: 2 questions (vlmevalkit)" in printed


def test_convert_real_videomme_reports_2700(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "videomme.tsv"
    assert main(["convert", "videomme", str(shared_data / "annotations" / "videomme.json"),
                 "--to", "vlmevalkit", "-o", str(out)]) == 0
    assert f"{out}: 2700 questions (vlmevalkit)" in capsys.readouterr().out


def test_convert_wrong_file_says_which_format_was_expected(shared_data: Path, tmp_path: Path, capsys) -> None:
    status = main(["convert", "lvbench", str(shared_data / "annotations" / "mlvu.json"), "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "invalid JSON" not in err
    assert "expected lvbench annotations (video_info.meta.jsonl): JSON lines" in err
    assert "found one JSON list of 2174 objects" in err and "looks like mlvu annotations" in err


# ---- an options-only question is refused before any model or video work --------------------------
OPTIONS_ONLY = "A. red\nB. blue"


def test_select_refuses_options_only_question_before_loading(capsys, make_video, tmp_path: Path) -> None:
    video = make_video("usability_10fps.mp4", n_frames=40, fps=10.0, width=32, height=24)
    # the agent path does not exist: loading it would fail with "no such file or folder"
    status = main(["select", str(video), "-q", OPTIONS_ONLY, "--agent", str(tmp_path / "no-agent")])
    err = capsys.readouterr().err
    assert status == 2 and "question has no text before its options" in err and "no such file" not in err


def test_frame_selector_refuses_options_only_question_before_decoding(make_video, tiny_agent) -> None:
    from tspo_eval.selection import FrameSelector

    class Counting:
        def __init__(self, inner) -> None:
            self.inner, self.frames = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode_frames(self, frames, batch_size: int = 32):
            self.frames += len(frames)
            return self.inner.encode_frames(frames, batch_size=batch_size)

    video = make_video("usability_10fps.mp4", n_frames=40, fps=10.0, width=32, height=24)
    scorer = Counting(tiny_agent)
    selector = FrameSelector(scorer, cache=False, decoder="pyav")
    with pytest.raises(InputError, match="no text before its options"):
        selector.select(video, "(A) red\n(B) blue", num_frames=2)
    with pytest.raises(InputError, match="no text before its options"):
        selector.select_many(video, ["What colour?", OPTIONS_ONLY], num_frames=2)
    assert scorer.frames == 0            # nothing decoded or encoded
    assert selector.select(video, "What colour?\nA. red\nB. blue", num_frames=2).frame_indices
    assert scorer.frames == 4            # 4 s at 1 fps: the good question still works


# ---- offline hub advice -------------------------------------------------------------------------
def test_offline_hub_error_advises_the_installed_hf_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from tspo_eval.agent.checkpoint import resolve_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("nobody-here/not-a-tspo-model")
    message = str(info.value)
    match = re.search(r"\((\S+) download nobody-here/not-a-tspo-model --local-dir (\S+)\)", message)
    assert match and "huggingface-cli" not in message, message
    command = match.group(1)
    scripts = {ep.name for ep in metadata.distribution("huggingface_hub").entry_points
               if ep.group == "console_scripts"}
    assert command in scripts, f"{command} is not a console script of the installed huggingface_hub: {scripts}"
    executable = Path(sys.executable).parent / command
    if executable.is_file():   # the advised sub-command and option exist in that CLI
        help_text = subprocess.run([str(executable), "download", "--help"], capture_output=True, text=True,
                                   timeout=120).stdout
        assert "--local-dir" in help_text


# ---- docs ---------------------------------------------------------------------------------------
def test_user_docs_point_only_inside_the_repository() -> None:
    """Relative links resolve to files of the repository; user docs name no path above it."""
    docs = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = (doc.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(REPO) and resolved.exists(), f"{doc.name}: link {target}"
    for name in ("agent.md", "precompute.md", "benchmarks.md", "leaderboard.md"):
        text = (REPO / "docs" / name).read_text(encoding="utf-8")
        assert not re.search(r"`\.\./[^`]*`", text), f"docs/{name} names a file outside the repository"
