"""Where a video-LLM adapter gets its frames: one switch, one code path.

``frame_selection`` picks the source of the frame numbers; everything after that (decoding at
those numbers, the :class:`~tspo_eval.selection.SelectionResult`, the side log) is shared, so two
runs that differ only in ``frame_selection`` differ only in the frames:

* ``tspo``    - the temporal agent (or the CLIP baseline, ``scorer=clip``) picks ``num_frames``
  frames online through :class:`~tspo_eval.selection.FrameSelector` (features cached per video);
* ``index``   - frames read from an index file (ours, or TSPO's published ``*_frameIdx.json``),
  keyed by question id; questions missing from it follow ``missing=uniform|error``;
* ``uniform`` - the baseline: ``num_frames`` evenly spaced frames of the same 1 fps candidate grid.

Every selection is logged (loguru), kept as :attr:`FrameSource.last_record` (an
:class:`~tspo_eval.frame_index_cache.index_store.IndexRecord`: the lmms-eval models put it into
the samples file through :mod:`tspo_eval.frame_records`) and, when a :class:`SelectionLog` is
attached, written as an IndexRecord JSONL line, so a run can be audited and re-used with
``frame_selection=index`` (whose ``frame_index`` may also be an lmms-eval samples file).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from tspo_eval.errors import InputError, VideoError

FRAME_SELECTIONS: tuple[str, ...] = ("tspo", "index", "uniform")
MISSING_RULES: tuple[str, ...] = ("uniform", "error")
SHORT_RULES: tuple[str, ...] = ("keep", "uniform")
DEFAULT_TSPO = "hzf666/TSPO-0.4B"
#: benchmarks with a TSPO published ``*_frameIdx.json`` (their rows join on the benchmark's question key)
PUBLISHED_BENCHMARKS: tuple[str, ...] = ("longvideobench", "mlvu", "videomme")

#: task-name fragment (lower case, no "_"/"-") -> benchmark name used in index records
_BENCHMARK_OF_TASK: tuple[tuple[str, str], ...] = (
    ("longvideobench", "longvideobench"),
    ("videomme", "videomme"),
    ("mlvu", "mlvu"),
    ("lvbench", "lvbench"),
    ("synthetic", "synthetic"),
)


def benchmark_for_task(task: str | None) -> str:
    """Benchmark name of an lmms-eval / VLMEvalKit task (``videomme_w_subtitle`` -> ``videomme``);
    the task name itself when it is none of the four (``"unknown"`` for None)."""
    if not task:
        return "unknown"
    key = task.lower().replace("_", "").replace("-", "")
    for fragment, name in _BENCHMARK_OF_TASK:
        if fragment in key:
            return name
    return task


@dataclass(frozen=True)
class FrameSourceOptions:
    """The frame-source options (the TSPO ``model_args`` of the lmms-eval models).

    ``feature_cache``: cache folder (None: the default cache; ``"off"``: no cache).
    ``short``: what to do with an index row holding fewer than ``num_frames`` frames
    (``keep`` them, or fall back to ``uniform`` as the TSPO reference evaluation did).
    ``fps``: candidate rate of the grid (1.0 in TSPO). ``device``/``dtype``: the agent's.
    """

    frame_selection: str = "tspo"
    tspo_path: str = DEFAULT_TSPO
    num_frames: int = 64
    strategy: str = "auto"
    scorer: str = "tspo"
    clip_model: str | None = None
    feature_cache: str | None = None
    frame_index: str | None = None
    missing: str = "uniform"
    short: str = "keep"
    decoder: str = "auto"
    fps: float = 1.0
    device: str | None = None
    dtype: str | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, options: dict[str, Any], owner: str = "frame source") -> FrameSourceOptions:
        """Validated options; :class:`InputError` naming an unknown option or a bad value."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise InputError(f"{owner}: unknown option(s) {', '.join(unknown)}; known: {', '.join(cls.names())}")
        try:
            return cls(**options).validated()
        except InputError as exc:
            raise InputError(f"{owner}: {exc}") from None

    def validated(self) -> FrameSourceOptions:
        from tspo_eval.agent import SCORERS
        from tspo_eval.agent.selection import STRATEGIES
        from tspo_eval.video import DECODERS

        def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
            text = str(value).strip().lower()
            if text not in allowed:
                raise InputError(f"{name}={value!r} is not one of {', '.join(allowed)}")
            return text

        num = self.num_frames
        if isinstance(num, bool) or not str(num).strip().isdigit() or int(num) <= 0:
            raise InputError(f"num_frames={num!r} must be a positive integer")
        try:
            fps = float(self.fps)
        except (TypeError, ValueError):
            raise InputError(f"fps={self.fps!r} must be a positive number") from None
        if not fps > 0:
            raise InputError(f"fps={self.fps!r} must be a positive number")
        mode = choice("frame_selection", self.frame_selection, FRAME_SELECTIONS)
        if mode == "index" and not self.frame_index:
            raise InputError("frame_selection=index needs frame_index=PATH (an index JSONL or a TSPO *_frameIdx.json)")
        if mode == "index" and not Path(str(self.frame_index)).is_file():
            raise InputError(f"frame_index={self.frame_index}: no such index file")
        if self.frame_index and mode != "index":
            logger.warning("frame_index={} is ignored with frame_selection={}", self.frame_index, mode)
        return replace(
            self,
            frame_selection=mode,
            num_frames=int(num),
            fps=fps,
            strategy=choice("strategy", self.strategy, ("auto", *STRATEGIES)),
            scorer=choice("scorer", self.scorer, SCORERS),
            missing=choice("missing", self.missing, MISSING_RULES),
            short=choice("short", self.short, SHORT_RULES),
            decoder=choice("decoder", self.decoder, DECODERS),
            tspo_path=str(self.tspo_path),
        )


class SelectionLog:
    """Writes selections as IndexRecord JSONL lines, one file per task.

    ``template`` is a path that may contain ``{task}`` (the lmms-eval task name) and ``{rank}``;
    a template without ``{task}`` puts every task in one file.  Files are opened lazily and
    appended to (resumable: a question id already in the file is not written again).
    """

    def __init__(self, template: str | os.PathLike, rank: int = 0) -> None:
        self.template = os.fspath(template)
        self.rank = rank
        self._writers: dict[str, Any] = {}

    def path_for(self, task: str | None) -> Path:
        name = (task or "default").replace(os.sep, "_")
        return Path(self.template.format(task=name, rank=self.rank))

    def write(self, record: Any, task: str | None) -> Path:
        """Append ``record`` (an IndexRecord) to the file of ``task``; returns the file's path."""
        from tspo_eval.frame_index_cache.index_store import IndexWriter

        path = self.path_for(task)
        writer = self._writers.get(str(path))
        if writer is None:
            writer = self._writers[str(path)] = IndexWriter(path)
        writer.write(record)
        return path

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self._writers]

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class FrameSource:
    """Frames for (video, question) by ``frame_selection`` = tspo | index | uniform.

    Build with :meth:`from_options`; call :meth:`frames_for` per question.  ``log`` (a
    :class:`SelectionLog` or None) may be attached or replaced at any time.
    """

    def __init__(self, options: FrameSourceOptions, selector: Any = None, log: SelectionLog | None = None) -> None:
        self.options = options
        self.selector = selector
        self.log = log
        self._indices: dict[str, dict[str, Any]] = {}
        self._source = self.mode  # where the last selection came from (recorded in the side log)
        self.last_record: Any = None  # IndexRecord of the last frames_for() that succeeded, else None

    @classmethod
    def from_options(cls, frame_selection: str = "tspo", *, selector: Any = None, log: SelectionLog | None = None,
                     **options: Any) -> FrameSource:
        """Validate ``options`` (see :class:`FrameSourceOptions`) and load what the mode needs:
        the scorer and feature cache for ``tspo`` (unless a ready ``selector`` is given), nothing
        else (index files are read on first use, per benchmark)."""
        opts = FrameSourceOptions.from_dict({"frame_selection": frame_selection, **options})
        if opts.frame_selection == "tspo" and selector is None:
            from tspo_eval.selection import FrameSelector

            cache_off = str(opts.feature_cache).lower() in ("off", "none", "false", "0")
            selector = FrameSelector.from_options(
                scorer=opts.scorer, agent=opts.tspo_path, clip_model=opts.clip_model, device=opts.device,
                dtype=opts.dtype, cache_dir=None if cache_off else opts.feature_cache, decoder=opts.decoder,
                fps=opts.fps, cache=not cache_off,
            )
        return cls(opts, selector=selector, log=log)

    @property
    def mode(self) -> str:
        return self.options.frame_selection

    # -- selection ------------------------------------------------------------------------
    def select(self, video_path: str | os.PathLike, question: str, question_id: str | None = None,
               task: str | None = None):
        """The :class:`SelectionResult` for one question (no pixels decoded for the VLM yet)."""
        opts = self.options
        video = os.fspath(video_path)
        self._source = opts.frame_selection
        if opts.frame_selection == "tspo":
            from tspo_eval.agent.selection import resolve_strategy

            strategy = resolve_strategy(opts.strategy, task)
            return self.selector.select(video, question, num_frames=opts.num_frames, strategy=strategy)
        if opts.frame_selection == "uniform":
            return self._uniform(video, question)
        return self._from_index(video, question, question_id, task)

    def frames_for(self, video_path: str | os.PathLike, question: str, question_id: str | None = None,
                   task: str | None = None) -> tuple[np.ndarray, Any]:
        """(frames uint8 [K,H,W,3] decoded at ``result.frame_indices`` in temporal order, result).

        Raises :class:`VideoError` for a missing/broken video, :class:`InputError` for an index
        without the question under ``missing=error``.
        """
        from tspo_eval.video import decode_frames

        self.last_record = None
        result = self.select(video_path, question, question_id, task)
        if not result.frame_indices:
            raise VideoError(video_path, "no frames selected (empty video?)")
        frames = decode_frames(video_path, result.frame_indices, self.options.decoder)
        if len(frames) != len(result.frame_indices):
            raise VideoError(video_path, f"decoded {len(frames)} of {len(result.frame_indices)} selected frames")
        self.last_record = self.record(result, question_id, task)
        return frames, result

    def record(self, result: Any, question_id: str | None, task: str | None) -> Any:
        """The IndexRecord of ``result`` (``extra.frame_source`` says where the frames came from);
        logged with loguru and written to the side JSONL when a :class:`SelectionLog` is attached."""
        from tspo_eval.frame_index_cache.index_store import IndexRecord

        qid = str(question_id) if question_id is not None else Path(result.video).stem
        logger.debug("[{}] {}: {}: {}/{} frames {} at {} s", task or "-", qid, Path(result.video).name, self.mode,
                     result.strategy, result.frame_indices, [round(t, 2) for t in result.timestamps])
        record = IndexRecord.from_selection(result, benchmark_for_task(task), qid, Path(result.video).name,
                                            num_frames=self.options.num_frames)
        record.extra = {"frame_source": self._source}
        if self.log is not None:
            self.log.write(record, task)
        return record

    # -- modes ----------------------------------------------------------------------------
    def _uniform(self, video: str, question: str):
        from tspo_eval.selection import uniform_selection

        result = uniform_selection(video, self.options.num_frames, decoder=self.options.decoder, fps=self.options.fps)
        result.question = question
        return result

    def index_for(self, task: str | None) -> dict[str, Any]:
        """The index records (question id -> IndexRecord) for ``task``'s benchmark, read once
        (an index JSONL, TSPO's ``*_frameIdx.json``, or an lmms-eval samples file of a ``tspo_*`` run)."""
        from tspo_eval.frame_records import read_frames

        benchmark = benchmark_for_task(task)
        if benchmark not in self._indices:
            hint = benchmark if benchmark in PUBLISHED_BENCHMARKS else None  # names a TSPO *_frameIdx.json
            self._indices[benchmark] = read_frames(self.options.frame_index, benchmark=hint)
            logger.info("frame index {}: {} questions", self.options.frame_index, len(self._indices[benchmark]))
        return self._indices[benchmark]

    def _from_index(self, video: str, question: str, question_id: str | None, task: str | None):
        opts = self.options
        record = self.index_for(task).get(str(question_id)) if question_id is not None else None
        if record is None:
            if opts.missing == "error":
                raise InputError(f"question {question_id!r} ({Path(video).name}) is not in the frame index "
                                 f"{opts.frame_index} (missing=error)")
            logger.warning("question {!r} is not in {}: uniform frames (missing=uniform)", question_id, opts.frame_index)
            self._source = "uniform:missing-from-index"
            return self._uniform(video, question)
        if opts.short == "uniform" and len(record.frame_indices) < opts.num_frames:
            logger.info("question {!r}: {} indexed frames < {}: uniform frames (short=uniform)", question_id,
                        len(record.frame_indices), opts.num_frames)
            self._source = "uniform:short-index-row"
            return self._uniform(video, question)
        return self._result_from_record(video, question, record)

    def _result_from_record(self, video: str, question: str, record: Any):
        """A SelectionResult holding exactly ``record.frame_indices``, timed with the video's own fps."""
        from tspo_eval.selection import SelectionResult
        from tspo_eval.video import candidate_grid, open_video

        indices = sorted(int(i) for i in record.frame_indices)
        with open_video(video, self.options.decoder) as reader:
            meta = reader.metadata
            bad = [i for i in indices if not 0 <= i < meta.n_frames]
            if bad:
                raise VideoError(video, f"question {record.question_id}: indexed frames {bad[:5]} outside 0..{meta.n_frames - 1}")
            times = [round(float(t), 6) for t in reader.frame_times(indices)]  # presentation times (VFR-safe)
        grid = [int(i) for i in candidate_grid(meta, self.options.fps)]
        position = {f: p for p, f in enumerate(grid)}
        return SelectionResult(
            video=video, question=question, frame_indices=indices,
            timestamps=times,
            candidate_indices=grid, scores=[],
            selected_positions=[position[i] for i in indices] if all(i in position for i in indices) else [],
            strategy=record.strategy or "index", scorer=record.scorer or "index", num_candidates=len(grid),
            fps=self.options.fps, avg_fps=float(meta.avg_fps), n_frames=int(meta.n_frames),
            agent_fingerprint=record.agent_fingerprint, clip_fingerprint=record.clip_fingerprint,
            feature_cache_hit=False,
        )

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
