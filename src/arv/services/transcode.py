"""Web renditions: every uploaded video transcoded on a worker into MP4s every phone browser plays.

What phones upload (HEVC in QuickTime with a rotation tag, 10-bit HDR, 4K at 60 frames, VP9 or AV1 in
WebM) often does not play where the AR page opens, and takes too long to start on a mobile network.
Each video gets a rendition that does: H.264 High (yuv420p, 8-bit) and AAC in MP4 with its index at
the front, the display rotation applied, HDR tone-mapped to SDR, at most 1080 px on the long side and
30 frames a second, its bitrate capped; and, when the video is large enough for it to pay, a smaller
one for slow networks. One ffmpeg process decodes the source once and encodes both.

The job (`TRANSCODE`, queue `videos`) writes its renditions under keys of its own and points the video
at them in the transaction that settles it, as a compile does with its marker; a video deleted or
transcoded anew meanwhile leaves the record alone and the job deletes what it wrote. Progress (percent,
from ffmpeg's `-progress` output) is written to the video as it goes. ffmpeg runs at a lower CPU
priority than the compiles beside it, in a process group of its own (a signal to the worker's group
reaches it only through the worker), and dies with the worker that started it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from arv.config import Settings, get_settings
from arv.db.models import Job, RenditionStatus, Video, utcnow
from arv.jobs import store
from arv.jobs.kinds import InFlightQuota, JobKind, JobOutcome, TryLater, register
from arv.jobs.queues import Queue
from arv.services.uploads import UploadRefused
from arv.services.video_probe import VideoProbe, probe_file
from arv.storage import ObjectNotFound, Storage, get_storage

log = structlog.get_logger(__name__)

RENDITION_CONTENT_TYPE = "video/mp4"
# The highest frame rate a rendition keeps; a faster source is halved until it fits (60 -> 30, 50 -> 25).
MAX_FRAME_RATE = Fraction(30)
# A source's rate within this fraction of a whole or an NTSC rate is taken to be that rate.
RATE_SNAP = 0.02
# The rates cameras also record a thousandth slower (NTSC's 24000/1001, 30000/1001, ...).
NTSC_RATES = frozenset({24, 30, 48, 60, 120, 240})
# A keyframe every this many seconds: a seek or a late start never waits long for a picture.
KEYFRAME_INTERVAL_S = 2
# x264's constant quality; the caps below bound the bitrate where the picture is busy.
VIDEO_CRF = 23
# Progress is written to the video at most this often.
PROGRESS_WRITE_INTERVAL_S = 1.0
# ffmpeg's own messages can be long; a person needs the gist.
MAX_REASON_CHARS = 300
# ffmpeg's exit status when it stopped on a signal it caught (SIGTERM, SIGINT).
FFMPEG_SIGNALLED_EXIT = 255
# What ffmpeg says of a stream it has no decoder for. The picture decoded at upload (the probe read
# its pixel format), and only the first picture and the first sound are mapped: it is the sound.
_NO_DECODER = re.compile(r"Decoder \(codec [^)]*\) not found for input stream")
# Linux's prctl(PR_SET_PDEATHSIG): the kernel sends the signal to ffmpeg when its parent dies.
_SETPRIV = shutil.which("setpriv")
# ffmpeg started at its niceness by coreutils' nice, so every thread it starts has it from the first.
_NICE = shutil.which("nice")


@dataclass(frozen=True)
class RenditionSpec:
    """One rendition: its name, its longest side, and the caps on its video and audio bitrates."""

    label: str
    max_side: int
    video_kbps: int
    audio_kbps: int


# Capped for mobile networks: about 3 Mbit/s at 1080p, well under a 4G link's; the small one about
# 0.9 Mbit/s in all, within a slow 3G link's 1.6 Mbit/s.
MAIN = RenditionSpec("main", max_side=1080, video_kbps=3000, audio_kbps=128)
SMALL = RenditionSpec("small", max_side=540, video_kbps=800, audio_kbps=64)
# The small rendition pays when the main one is larger than this on its long side; below, the main
# rendition is small already.
SMALL_PAYS_ABOVE = 720


class TranscodeError(Exception):
    """The video cannot be transcoded; the message says why in words a person can act on."""


def rendition_key(job_id: str) -> str:
    """The key the transcode job `job_id` writes its main rendition under (its own, like a marker's)."""
    return f"renditions/{job_id}.mp4"


def small_rendition_key(job_id: str) -> str:
    """The key of the small rendition the transcode job `job_id` writes."""
    return f"renditions/{job_id}-small.mp4"


def output_size(display: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The picture size of a rendition of a video shown at `display` (width, height): the same shape,
    the long side at most `max_side`, never enlarged, both sides even (yuv420p needs that)."""
    width, height = display
    scale = min(1.0, max_side / max(width, height))

    def even(side: float) -> int:
        return max(2, int(round(side * scale / 2)) * 2)

    return even(width), even(height)


def nominal_frame_rate(rate: Fraction) -> Fraction:
    """The whole rate (30) or NTSC rate (30000/1001) that `rate` stands for, when it is within
    `RATE_SNAP` of one; else `rate`. ffprobe gives a phone's rate as an average of its timestamps
    (30.03, 59.96) rounded to three decimals (29.97 for 30000/1001), near the nominal rate, not on it."""
    candidates = [Fraction(round(rate))]
    if round(rate * Fraction(1001, 1000)) in NTSC_RATES:
        candidates.append(Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001))
    near = [c for c in candidates if c > 0 and abs(rate - c) <= rate * RATE_SNAP]
    return min(near, key=lambda c: abs(rate - c)) if near else rate


def output_frame_rate(rate: float | None) -> Fraction:
    """The rendition's frame rate: the source's nominal rate, halved until it is at most 30; a source
    that does not say (or a variable rate ffprobe averages oddly) gets the nearest whole rate within
    1..30."""
    if not rate or rate <= 0:
        return MAX_FRAME_RATE
    exact = nominal_frame_rate(Fraction(rate))
    while exact > MAX_FRAME_RATE:
        exact = nominal_frame_rate(exact / 2)
    if exact.denominator not in (1, 1001):
        exact = Fraction(max(1, min(int(MAX_FRAME_RATE), round(float(exact)))))
    return exact


def renditions_for(probe: VideoProbe) -> list[RenditionSpec]:
    """The renditions a video gets: the main one, and the small one where it pays."""
    main_side = max(output_size(probe.display_size, MAIN.max_side))
    return [MAIN, SMALL] if main_side > SMALL_PAYS_ABOVE else [MAIN]


def _tone_map(probe: VideoProbe) -> str:
    """The filters that bring an HDR picture (PQ or HLG, BT.2020) to SDR BT.709, with zimg and Hable's
    curve; they run after the downscale, on at most 1080 px."""
    transfer = probe.color_transfer or "smpte2084"
    primaries = probe.color_primaries or "bt2020"
    matrix = "bt2020nc" if (probe.color_space or "bt2020nc").startswith("bt2020") else probe.color_space
    return (
        f"zscale=tin={transfer}:pin={primaries}:min={matrix}:t=linear:npl=100,format=gbrpf32le,"
        "zscale=p=bt709,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv"
    )


def ffmpeg_command(
    ffmpeg: str, source: Path, probe: VideoProbe, outputs: list[tuple[RenditionSpec, Path]]
) -> list[str]:
    """ffmpeg's arguments to make `outputs` from `source` in one run, its progress on stdout.

    ffmpeg applies the display rotation itself before the filters (its `autorotate`, on by default),
    so the filters see the picture upright and the renditions carry no rotation tag.
    """
    rate = output_frame_rate(probe.frame_rate)
    main_size = output_size(probe.display_size, outputs[0][0].max_side)
    chain = [f"fps={rate.numerator}/{rate.denominator}", f"scale={main_size[0]}:{main_size[1]}"]
    if probe.is_hdr:
        chain.append(_tone_map(probe))
    chain += ["format=yuv420p", "setsar=1"]
    labels = [f"v{index}" for index in range(len(outputs))]
    graph = ",".join(chain)
    if len(outputs) == 1:
        graph = f"[0:v:0]{graph}[{labels[0]}]"
    else:
        splits = "".join(f"[s{index}]" for index in range(len(outputs)))
        graph = f"[0:v:0]{graph},split={len(outputs)}{splits};[s0]null[{labels[0]}]"
        for index, (spec, _) in enumerate(outputs[1:], start=1):
            width, height = output_size(main_size, spec.max_side)
            graph += f";[s{index}]scale={width}:{height},setsar=1[{labels[index]}]"
    keyframes = max(1, round(float(rate) * KEYFRAME_INTERVAL_S))
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y",
        "-progress", "pipe:1", "-nostats", "-stats_period", "0.5",
        "-i", str(source), "-filter_complex", graph,
    ]  # fmt: skip
    for label, (spec, path) in zip(labels, outputs, strict=True):
        command += [
            "-map", f"[{label}]", "-map", "0:a:0?",
            # Nothing of the camera's metadata (its location, the phone's name) goes on to viewers.
            "-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-level:v", "4.0",
            "-crf", str(VIDEO_CRF), "-maxrate", f"{spec.video_kbps}k", "-bufsize", f"{spec.video_kbps * 2}k",
            "-g", str(keyframes), "-pix_fmt", "yuv420p",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
            "-c:a", "aac", "-b:a", f"{spec.audio_kbps}k", "-ac", "2", "-ar", "48000",
            "-movflags", "+faststart", "-f", "mp4", str(path),
        ]  # fmt: skip
    return command


def _reader(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    # Ends when ffmpeg does (its end of the pipe closes), however it ended.
    with stream:
        for line in stream:
            lines.put(line)
    lines.put(None)


@dataclass
class _Progress:
    """What ffmpeg's `-progress` output said last: seconds of output written, and whether it ended."""

    out_time_s: float = 0.0
    ended: bool = False

    def read(self, line: bytes) -> bool:
        """Take one `key=value` line; True when the output time advanced."""
        key, _, value = line.decode(errors="replace").strip().partition("=")
        if key == "progress":
            self.ended = value == "end"
        if key != "out_time_us":
            return False
        try:
            seconds = int(value) / 1e6
        except ValueError:  # "N/A" before the first frame
            return False
        advanced = seconds > self.out_time_s
        self.out_time_s = max(self.out_time_s, seconds)
        return advanced


def run_ffmpeg(
    command: list[str],
    *,
    duration_s: float,
    stall_timeout_s: float,
    niceness: int,
    on_progress: Callable[[float], None],
) -> None:
    """Run ffmpeg, calling `on_progress(percent)` as its output time advances.

    Raises TranscodeError when ffmpeg fails on the file or makes no progress for `stall_timeout_s`;
    TryLater when it was stopped by a signal from outside (the worker shutting down, the OOM killer).
    ffmpeg never outlives this call: whatever ends it (a time limit raised in this thread included),
    its process group is killed on the way out.
    """
    argv = (
        ([_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else [])
        + ([_NICE, "-n", str(niceness)] if _NICE else [])
        + command
    )
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
        )
        try:
            if not _NICE:
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
            _follow(proc, duration_s=duration_s, stall_timeout_s=stall_timeout_s, on_progress=on_progress)
        finally:
            _kill(proc)
        stderr.seek(0)
        complaint = _gist(stderr.read()[-16384:].decode(errors="replace"))
    if proc.returncode == 0:
        return
    if proc.returncode < 0 or proc.returncode == FFMPEG_SIGNALLED_EXIT:
        raise TryLater(
            f"ffmpeg was stopped from outside (exit status {proc.returncode})",
            delay_s=5,
            counts_as_attempt=True,
        )
    if _NO_DECODER.search(complaint):
        raise TranscodeError(
            f"the video's sound is in a format ffmpeg cannot decode ({complaint}): export it again "
            "with AAC sound, or without sound"
        )
    raise TranscodeError(
        f"ffmpeg cannot transcode the video: {complaint or f'exit status {proc.returncode}'}"
    )


def _follow(
    proc: subprocess.Popen[bytes],
    *,
    duration_s: float,
    stall_timeout_s: float,
    on_progress: Callable[[float], None],
) -> None:
    assert proc.stdout is not None
    lines: queue.Queue[bytes | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True, name="ffmpeg-progress").start()
    progress = _Progress()
    last_advance = time.monotonic()
    while True:
        try:
            # A short wait: a time limit raised in this thread is seen within a second.
            line = lines.get(timeout=1.0)
        except queue.Empty:
            line = b""
        if line is None:
            proc.wait()
            return
        if line and progress.read(line):
            last_advance = time.monotonic()
            on_progress(min(99.9, 100 * progress.out_time_s / duration_s) if duration_s > 0 else 0.0)
        elif time.monotonic() - last_advance > stall_timeout_s and not progress.ended:
            raise TranscodeError(
                f"ffmpeg made no progress on the video for {stall_timeout_s:g} s and was stopped "
                "(the file makes it hang); export the video again as a plain MP4"
            )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _gist(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return " / ".join(lines[-3:])[-MAX_REASON_CHARS:] if lines else ""


def _rendition_facts(spec: RenditionSpec, path: Path, key: str, *, timeout_s: float) -> dict[str, Any]:
    """What ffprobe reads of a rendition made, checked to be what phones play."""
    try:
        probe = probe_file(path, max_seconds=float("inf"), timeout_s=timeout_s)
    except UploadRefused as exc:
        raise TranscodeError(f"the {spec.label} rendition came out unreadable: {exc}") from exc
    if probe.video_codec != "h264" or probe.pix_fmt != "yuv420p":
        raise TranscodeError(
            f"the {spec.label} rendition came out as {probe.video_codec} {probe.pix_fmt}, not H.264 yuv420p"
        )
    return {
        "label": spec.label,
        "key": key,
        "width": probe.width,
        "height": probe.height,
        "duration_s": probe.duration_s,
        "frame_rate": probe.frame_rate,
        "audio_codec": probe.audio_codec,
        "size_bytes": path.stat().st_size,
    }


def request_transcode(session: Session, video: Video, company_id: int) -> str:
    """Queue the renditions of `video` in the caller's transaction; the video plays once they exist.

    A rendition already made stays served until the new one is ready. Returns the job id.
    """
    job_id = store.enqueue(session, TRANSCODE, {"video_id": video.id}, company_id=company_id)
    video.transcode_task_id = job_id
    video.rendition_status = RenditionStatus.PENDING
    video.transcode_progress = None
    video.transcode_error = None
    return job_id


def _progress_writer(session: Session, video_id: int, job_id: str) -> Callable[[float], None]:
    """A callback that writes a transcode's percent to its video, at most once a second; a database
    that is away costs a progress update, never the transcode."""
    last = 0.0

    def write(percent: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_WRITE_INTERVAL_S:
            return
        last = now
        try:
            session.execute(
                update(Video)
                .where(Video.id == video_id, Video.transcode_task_id == job_id)
                .values(transcode_progress=round(percent, 1))
                .execution_options(synchronize_session=False)
            )
            session.commit()
        except (OperationalError, DBAPIError) as exc:
            with contextlib.suppress(OperationalError, DBAPIError):
                session.rollback()
            log.warning("transcode.progress_not_written", video_id=video_id, error=str(exc))

    return write


def transcode_video(session: Session, storage: Storage, job: Job, settings: Settings) -> JobOutcome:
    """Make and store the renditions of the video `job` names; the outcome's `record` points the video
    at them. Raises TranscodeError for a video that cannot become one; storage errors propagate for a
    retry."""
    video_id = job.args["video_id"]
    started = session.execute(
        update(Video)
        .where(
            Video.id == video_id,
            Video.transcode_task_id == job.id,
            Video.rendition_status.in_([RenditionStatus.PENDING, RenditionStatus.PROCESSING]),
        )
        .values(rendition_status=RenditionStatus.PROCESSING, transcode_progress=0.0)
        .returning(Video.storage_key)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    session.commit()
    if started is None:
        # Deleted, done already, or transcoded anew since: nothing left to do.
        return JobOutcome({"superseded": True})
    keys = {MAIN.label: rendition_key(job.id), SMALL.label: small_rendition_key(job.id)}
    with tempfile.TemporaryDirectory(prefix="arv-transcode-") as folder:
        source = Path(folder) / "source"
        try:
            storage.get_file(started.storage_key, source)
        except ObjectNotFound as exc:
            raise TranscodeError("the uploaded video is missing from storage; upload it again") from exc
        try:
            probe = probe_file(source, max_seconds=float("inf"), timeout_s=settings.video_probe_timeout_s)
        except UploadRefused as exc:
            raise TranscodeError(str(exc)) from exc
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise TranscodeError("ffmpeg is not installed on the worker, so the video cannot be transcoded")
        outputs = [(spec, Path(folder) / f"{spec.label}.mp4") for spec in renditions_for(probe)]
        run_ffmpeg(
            ffmpeg_command(ffmpeg, source, probe, outputs),
            duration_s=probe.duration_s,
            stall_timeout_s=settings.video_stall_timeout_s,
            niceness=settings.video_transcode_niceness,
            on_progress=_progress_writer(session, video_id, job.id),
        )
        facts = [
            _rendition_facts(spec, path, keys[spec.label], timeout_s=settings.video_probe_timeout_s)
            for spec, path in outputs
        ]
        for spec, path in outputs:
            storage.put_file(keys[spec.label], path, RENDITION_CONTENT_TYPE)
    return _recorded(storage, video_id, job.id, facts, keep_original=settings.keep_video_originals)


def _recorded(
    storage: Storage,
    video_id: int,
    job_id: str,
    facts: list[dict[str, Any]],
    *,
    keep_original: bool,
) -> JobOutcome:
    """The outcome that points the video at the renditions `facts` name (main first), unless the job
    was superseded; after the commit, the renditions it replaced (and the original, when it is not
    kept) are deleted."""
    result: dict[str, Any] = {"renditions": facts}
    written = [fact["key"] for fact in facts]

    def record(session: Session) -> Callable[[], None]:
        current = session.execute(
            select(Video.transcode_task_id, Video.rendition_key, Video.small_rendition_key, Video.storage_key)
            .where(Video.id == video_id)
            .with_for_update()
        ).one_or_none()
        if current is None or current.transcode_task_id != job_id:
            result["superseded"] = True
            return lambda: _delete_all(storage, written)
        values: dict[str, Any] = {
            "rendition_status": RenditionStatus.READY,
            "rendition_key": written[0],
            "small_rendition_key": written[1] if len(written) > 1 else None,
            "renditions": facts,
            "transcode_progress": 100.0,
            "transcode_error": None,
        }
        if not keep_original:
            values["original_deleted_at"] = utcnow()
        session.execute(
            update(Video)
            .where(Video.id == video_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        replaced = [
            key for key in (current.rendition_key, current.small_rendition_key) if key and key not in written
        ]
        if not keep_original:
            replaced.append(current.storage_key)
        return lambda: _delete_all(storage, replaced)

    return JobOutcome(result, record=record)


def _delete_all(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        storage.delete(key)


def record_transcode_failure(session: Session, video_id: int, job_id: str, reason: str) -> None:
    """Say on the video why it has no rendition; a rendition made before stays served."""
    session.execute(
        update(Video)
        .where(
            Video.id == video_id,
            Video.transcode_task_id == job_id,
            Video.rendition_status.in_([RenditionStatus.PENDING, RenditionStatus.PROCESSING]),
        )
        .values(
            rendition_status=RenditionStatus.FAILED, transcode_error=reason[:2000], transcode_progress=None
        )
        .execution_options(synchronize_session=False)
    )


TRANSCODE = register(
    JobKind(
        name="transcode_video",
        queue=Queue.VIDEOS,
        run=lambda session, job: transcode_video(session, get_storage(), job, get_settings()),
        permanent_errors=(TranscodeError,),
        on_failure=lambda session, job, reason: record_transcode_failure(
            session, job.args["video_id"], job.id, reason
        ),
        quota=InFlightQuota.TRANSCODES,
    )
)
