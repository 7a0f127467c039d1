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

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger

from tspo_eval.benchmarks.registry import benchmark_name_for, resolve_strategy
from tspo_eval.errors import InputError, VideoError
from tspo_eval.lookahead import DEFAULT_LOOKAHEAD
from tspo_eval.selector_options import HOST_ARGUMENTS as SELECTOR_HOST_ARGUMENTS
from tspo_eval.selector_options import SelectorOptions, choice_of

if TYPE_CHECKING:  # typing only: selection pulls in torch when used
    from tspo_eval.frame_index_cache.index_store import IndexRecord
    from tspo_eval.lookahead import Lookahead, LookaheadStats
    from tspo_eval.selection import FrameSelector
    from tspo_eval.selection_result import SelectionResult

FRAME_SELECTIONS: tuple[str, ...] = ("tspo", "index", "uniform")
MISSING_RULES: tuple[str, ...] = ("uniform", "error")
SHORT_RULES: tuple[str, ...] = ("keep", "uniform")
#: benchmarks with a TSPO published ``*_frameIdx.json`` (their rows join on the benchmark's question key)
PUBLISHED_BENCHMARKS: tuple[str, ...] = ("longvideobench", "mlvu", "videomme")

#: the hosts' frame-source arguments besides the selector's (:data:`~tspo_eval.selector_options.HOST_ARGUMENTS`)
FRAME_SOURCE_ARGUMENTS: tuple[str, ...] = ("frame_selection", "frame_index", "missing", "short", "lookahead")
#: every frame-source argument a host model accepts (lmms-eval model_args, VLMEvalKit model arguments)
HOST_ARGUMENTS: tuple[str, ...] = (*FRAME_SOURCE_ARGUMENTS, *SELECTOR_HOST_ARGUMENTS)


@dataclass(frozen=True)
class FrameSourceOptions:
    """Where an adapter's frames come from: the mode and, for ``tspo``, the :class:`SelectorOptions`.

    ``frame_index``: the index file of ``frame_selection=index`` (ours, TSPO's published
    ``*_frameIdx.json``, or an lmms-eval samples file). ``missing``: a question absent from it
    gets ``uniform`` frames (counted, logged) or an ``error``. ``short``: an index row holding
    fewer than ``num_frames`` frames is kept (``keep``) or replaced by ``uniform`` frames, as the
    TSPO reference evaluation did. ``lookahead``: how many upcoming videos a host that knows them
    (:meth:`FrameSource.looking_ahead`) prepares in the background with ``tspo`` frames (0: none;
    no effect for ``index`` / ``uniform`` or without the feature cache). ``selector``: the scorer,
    budget, grid, decoder, device, cache (also used by the uniform baseline for ``num_frames``,
    ``fps`` and ``decoder``).
    """

    frame_selection: str = "tspo"
    frame_index: str | None = None
    missing: str = "uniform"
    short: str = "keep"
    lookahead: int = DEFAULT_LOOKAHEAD
    selector: SelectorOptions = field(default_factory=SelectorOptions)

    def __post_init__(self) -> None:
        mode = choice_of("frame_selection", self.frame_selection, FRAME_SELECTIONS)
        if mode == "index" and not self.frame_index:
            raise InputError("frame_selection=index needs frame_index=PATH (an index JSONL or a TSPO *_frameIdx.json)")
        if mode == "index" and not Path(str(self.frame_index)).is_file():
            raise InputError(f"frame_index={self.frame_index}: no such index file")
        if self.frame_index and mode != "index":
            logger.warning("frame_index={} is ignored with frame_selection={}", self.frame_index, mode)
        object.__setattr__(self, "frame_selection", mode)
        object.__setattr__(self, "missing", choice_of("missing", self.missing, MISSING_RULES))
        object.__setattr__(self, "short", choice_of("short", self.short, SHORT_RULES))
        depth = self.lookahead
        if isinstance(depth, bool) or not str(depth).strip().isdigit():
            raise InputError(f"lookahead={depth!r} must be a number of videos (0 turns it off)")
        object.__setattr__(self, "lookahead", int(depth))

    @property
    def num_frames(self) -> int:
        return self.selector.num_frames

    @classmethod
    def from_dict(cls, options: dict[str, Any], owner: str = "frame source") -> FrameSourceOptions:
        """From host argument names (:data:`HOST_ARGUMENTS`), validated once; :class:`InputError`
        naming ``owner`` and an unknown option or a bad value."""
        unknown = sorted(set(options) - set(HOST_ARGUMENTS))
        if unknown:
            raise InputError(f"{owner}: unknown option(s) {', '.join(unknown)}; known: {', '.join(HOST_ARGUMENTS)}")
        mine = {name: options[name] for name in FRAME_SOURCE_ARGUMENTS if name in options}
        selector = SelectorOptions.from_host_args(
            {name: value for name, value in options.items() if name not in FRAME_SOURCE_ARGUMENTS}, owner)
        try:
            return cls(**mine, selector=selector)
        except InputError as exc:
            raise InputError(f"{owner}: {exc}") from None

    def with_num_frames(self, num_frames: int) -> FrameSourceOptions:
        return replace(self, selector=self.selector.with_(num_frames=num_frames))


def pop_host_options(kwargs: dict[str, Any], owner: str = "tspo") -> dict[str, Any]:
    """Remove the frame-source arguments (:data:`HOST_ARGUMENTS`) from a host model's ``kwargs`` (in
    place) and return them, checked before any model is loaded (:class:`InputError` naming ``owner``)."""
    options = {name: kwargs.pop(name) for name in list(kwargs) if name in HOST_ARGUMENTS}
    FrameSourceOptions.from_dict(options, owner=owner)
    return options


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

    def write(self, record: IndexRecord, task: str | None) -> Path:
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

    def __init__(self, options: FrameSourceOptions, selector: FrameSelector | None = None,
                 log: SelectionLog | None = None) -> None:
        self.options = options
        self.selector = selector
        self.log = log
        self._indices: dict[str, dict[str, IndexRecord]] = {}
        self.last_record: IndexRecord | None = None  # of the last frames_for() that succeeded
        self._lookahead: Lookahead | None = None  # the running lookahead, if any
        self.lookahead_stats: LookaheadStats | None = None  # of the last lookahead that ended

    @classmethod
    def from_options(cls, frame_selection: str = "tspo", *, selector: FrameSelector | None = None,
                     log: SelectionLog | None = None,
                     **options: Any) -> FrameSource:
        """Validate ``options`` (host argument names, :data:`HOST_ARGUMENTS`) and load what the mode
        needs: the scorer and feature cache for ``tspo`` (unless a ready ``selector`` is given),
        nothing else (index files are read on first use, per benchmark)."""
        opts = FrameSourceOptions.from_dict({"frame_selection": frame_selection, **options})
        if opts.frame_selection == "tspo" and selector is None:
            from tspo_eval.selection import FrameSelector

            selector = FrameSelector.build(opts.selector)
        return cls(opts, selector=selector, log=log)

    @property
    def mode(self) -> str:
        return self.options.frame_selection

    # -- lookahead ------------------------------------------------------------------------
    @property
    def lookahead_wanted(self) -> bool:
        """Whether :meth:`plan` prepares videos: ``tspo`` frames, ``lookahead`` > 0, a feature cache."""
        return (self.mode == "tspo" and self.options.lookahead > 0 and self.selector is not None
                and getattr(self.selector, "cache", None) is not None)

    def plan(self, videos: Iterable[str | os.PathLike]) -> None:
        """Videos the host will ask about next, in order: their candidate features are prepared
        ``lookahead`` videos ahead of :meth:`select` in a background thread (started on first use;
        see :mod:`tspo_eval.lookahead`). No-op unless :attr:`lookahead_wanted`."""
        if not self.lookahead_wanted:
            return
        if self._lookahead is None:
            from tspo_eval.lookahead import Lookahead

            self._lookahead = Lookahead(self.selector, self.options.lookahead)
            logger.debug("lookahead: preparing up to {} videos ahead", self.options.lookahead)
        self._lookahead.plan(videos)

    def stop_lookahead(self) -> None:
        """Stop the background thread of :meth:`plan` (within one chunk) and wait for it."""
        lookahead, self._lookahead = self._lookahead, None
        if lookahead is not None:
            lookahead.close()
            self.lookahead_stats = lookahead.stats

    @contextlib.contextmanager
    def looking_ahead(self, videos: Iterable[str | os.PathLike]) -> Iterator[FrameSource]:
        """``with source.looking_ahead(videos):`` :meth:`plan` ``videos``; the thread stops on exit,
        also when the body raises."""
        try:
            self.plan(videos)
            yield self
        finally:
            self.stop_lookahead()

    # -- selection ------------------------------------------------------------------------
    def choose(self, video_path: str | os.PathLike, question: str, question_id: str | None = None,
               task: str | None = None) -> tuple[SelectionResult, str]:
        """(:class:`SelectionResult`, where its frames came from) for one question, no pixels decoded.

        The source is the mode (``tspo``, ``index``, ``uniform``) or a fallback
        (``uniform:missing-from-index``, ``uniform:short-index-row``); :meth:`record` writes it.
        """
        opts = self.options
        video = os.fspath(video_path)
        if opts.frame_selection == "tspo":
            strategy = resolve_strategy(opts.selector.strategy, task)
            if self._lookahead is not None:  # wait while the background prepares this very video
                self._lookahead.claim(video)
            return self.selector.select(video, question, num_frames=opts.num_frames, strategy=strategy), "tspo"
        if opts.frame_selection == "uniform":
            return self._uniform(video, question), "uniform"
        return self._from_index(video, question, question_id, task)

    def select(self, video_path: str | os.PathLike, question: str, question_id: str | None = None,
               task: str | None = None):
        """The :class:`SelectionResult` for one question (see :meth:`choose`)."""
        return self.choose(video_path, question, question_id, task)[0]

    def frames_for(self, video_path: str | os.PathLike, question: str, question_id: str | None = None,
                   task: str | None = None) -> tuple[np.ndarray, SelectionResult]:
        """(frames uint8 [K,H,W,3] decoded at ``result.frame_indices`` in temporal order, result).

        Raises :class:`VideoError` for a missing/broken video, :class:`InputError` for an index
        without the question under ``missing=error``.
        """
        from tspo_eval.video import decode_frames

        self.last_record = None
        result, source = self.choose(video_path, question, question_id, task)
        if not result.frame_indices:
            raise VideoError(video_path, "no frames selected (empty video?)")
        frames = decode_frames(video_path, result.frame_indices, self.options.selector.decoder)
        if len(frames) != len(result.frame_indices):
            raise VideoError(video_path, f"decoded {len(frames)} of {len(result.frame_indices)} selected frames")
        self.last_record = self.record(result, question_id, task, source=source)
        return frames, result

    def record(self, result: SelectionResult, question_id: str | None, task: str | None, *,
               source: str) -> IndexRecord:
        """The IndexRecord of ``result`` with ``extra.frame_source = source`` (from :meth:`choose`);
        logged with loguru and written to the side JSONL when a :class:`SelectionLog` is attached."""
        from tspo_eval.frame_index_cache.index_store import IndexRecord

        qid = str(question_id) if question_id is not None else Path(result.video).stem
        logger.debug("[{}] {}: {}: {}/{} frames {} at {} s", task or "-", qid, Path(result.video).name, source,
                     result.strategy, result.frame_indices, [round(t, 2) for t in result.timestamps])
        record = IndexRecord.from_selection(result, benchmark_name_for(task), qid, Path(result.video).name,
                                            num_frames=self.options.num_frames)
        record.extra = {"frame_source": source}
        if self.log is not None:
            self.log.write(record, task)
        return record

    # -- modes ----------------------------------------------------------------------------
    def _uniform(self, video: str, question: str):
        from tspo_eval.selection import uniform_selection

        return uniform_selection(video, self.options.num_frames, decoder=self.options.selector.decoder, fps=self.options.selector.fps,
                                 question=question)

    def index_for(self, task: str | None) -> dict[str, IndexRecord]:
        """The index records (question id -> IndexRecord) for ``task``'s benchmark, read once
        (an index JSONL, TSPO's ``*_frameIdx.json``, or an lmms-eval samples file of a ``tspo_*`` run)."""
        from tspo_eval.frame_records import read_frames

        benchmark = benchmark_name_for(task)
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
            return self._uniform(video, question), "uniform:missing-from-index"
        if opts.short == "uniform" and len(record.frame_indices) < opts.num_frames:
            logger.info("question {!r}: {} indexed frames < {}: uniform frames (short=uniform)", question_id,
                        len(record.frame_indices), opts.num_frames)
            return self._uniform(video, question), "uniform:short-index-row"
        return self._result_from_record(video, question, record), "index"

    def _result_from_record(self, video: str, question: str, record: IndexRecord) -> SelectionResult:
        """A SelectionResult holding exactly ``record.frame_indices``, timed with the video's own
        presentation times (off the candidate grid, the frames themselves are the candidates)."""
        from tspo_eval.selection import given_selection

        return given_selection(
            video, record.frame_indices, question=question, decoder=self.options.selector.decoder, fps=self.options.selector.fps,
            strategy=record.strategy or "index", scorer=record.scorer or "index",
            agent_fingerprint=record.agent_fingerprint, encoder_fingerprint=record.clip_fingerprint,
            item=f"question {record.question_id}: indexed",
        )

    def close(self) -> None:
        self.stop_lookahead()
        if self.log is not None:
            self.log.close()
