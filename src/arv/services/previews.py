"""Previews: a small thumbnail of each portrait and AR content image, a poster frame of each video."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import ARContent, Job, JobStatus, Portrait, Video
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, recording_or_discarding, register
from arv.jobs.queues import Queue
from arv.storage import ObjectNotFound, Storage, get_storage

# The records a thumbnail job may name, by the `kind` in its arguments.
THUMBNAIL_SUBJECTS: dict[str, type[Portrait] | type[ARContent]] = {
    "portrait": Portrait,
    "ar_content": ARContent,
}
JPEG_QUALITY = 85
# A picture is box-reduced to at least this many times the thumbnail's size before the final
# Lanczos resize, as Image.thumbnail itself does.
THUMBNAIL_REDUCING_GAP = 2
# Pixels converted at a time when a picture is reduced for its thumbnail.
THUMBNAIL_BAND_PIXELS = 1 << 20
# The EXIF orientation tag, and how each of its values turns the stored pixels for display.
EXIF_ORIENTATION = 0x0112
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Where in the video the poster is taken: a little past the start, which is often black.
POSTER_AT_S = 0.5
# ffmpeg's own messages can be long; a person needs the gist.
MAX_REASON_CHARS = 300


class PreviewInputError(Exception):
    """The file cannot give a preview; the message says why in words a customer can act on."""


def request_thumbnail(session: Session, subject: Portrait | ARContent) -> str:
    """Queue the thumbnail of a portrait or an AR content image in the caller's transaction."""
    kind = "portrait" if isinstance(subject, Portrait) else "ar_content"
    return store.enqueue(session, THUMBNAIL, {"kind": kind, "id": subject.id}, company_id=subject.company_id)


def request_poster(session: Session, video: Video, company_id: int) -> str:
    """Queue the poster frame of a video in the caller's transaction."""
    return store.enqueue(session, POSTER, {"video_id": video.id}, company_id=company_id)


def thumbnail_jpeg(image_data: bytes, *, max_px: int) -> bytes:
    """A JPEG of the image as a person sees it (EXIF orientation applied), longest side `max_px`.

    The picture is never copied at full size: a JPEG is decoded at a reduced DCT scale, and any other
    image is converted to RGB and box-reduced a band of rows at a time, before the final resize.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_data)) as opened:
                opened.draft(opened.mode, (max_px, max_px))  # JPEG decodes at a smaller scale
                opened.load()
                image = reduced_rgb(opened, max(opened.size) // (THUMBNAIL_REDUCING_GAP * max_px))
                image = as_shown(image, opened.getexif().get(EXIF_ORIENTATION, 1))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PreviewInputError(f"the image cannot be read for a thumbnail ({exc})") from exc
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def reduced_rgb(image: Image.Image, factor: int) -> Image.Image:
    """The image in RGB, box-reduced by `factor` (1: not reduced), converted a band of rows at a time.

    Each band's height is a multiple of `factor`, so the result equals reducing the whole picture.
    """
    factor = max(factor, 1)
    width, height = image.size
    if factor == 1 and width * height <= THUMBNAIL_BAND_PIXELS:
        return image.convert("RGB")
    rows = factor * max(1, THUMBNAIL_BAND_PIXELS // (width * factor))
    reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(top + rows, height))).convert("RGB")
        reduced.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return reduced


def as_shown(image: Image.Image, orientation: object) -> Image.Image:
    """The image turned as its EXIF orientation says (what ImageOps.exif_transpose does)."""
    method = _ORIENTATION_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def thumbnail_key(job_id: str) -> str:
    """The key the thumbnail job `job_id` writes: its own, so no two subjects ever share one (SQLite
    may give a new row the id of a deleted one), and a retry of the job overwrites only its output."""
    return f"thumbnails/{job_id}.jpg"


def poster_key(job_id: str) -> str:
    """The key the poster job `job_id` writes (its own, like a thumbnail's)."""
    return f"posters/{job_id}.jpg"


def _uploaded(storage: Storage, key: str, what: str) -> bytes:
    """The uploaded file a preview is made from; its absence is the job's permanent failure."""
    try:
        return storage.get(key)
    except ObjectNotFound as exc:
        raise PreviewInputError(f"the uploaded {what} is missing from storage") from exc


def generate_thumbnail(session: Session, storage: Storage, job: Job, *, max_px: int) -> JobOutcome:
    """Make and store the thumbnail of the subject named by `job`; raises PreviewInputError."""
    model = THUMBNAIL_SUBJECTS[job.args["kind"]]
    subject: Portrait | ARContent | None = session.get(model, job.args["id"])  # type: ignore[assignment]
    if subject is None:
        return JobOutcome({"superseded": True})
    image_key = subject.image_key
    thumbnail = thumbnail_jpeg(_uploaded(storage, image_key, "image"), max_px=max_px)
    key = thumbnail_key(job.id)
    storage.put(key, thumbnail, "image/jpeg")
    # Only the same record: one deleted meanwhile matches nothing (nor does a new row given its id).
    return recording_or_discarding(
        {"thumbnail_key": key, "size_bytes": len(thumbnail)},
        update(model).where(model.id == subject.id, model.image_key == image_key).values(thumbnail_key=key),
        storage,
        key,
    )


def thumbnail_failure(session: Session, subject: Portrait | ARContent) -> str | None:
    """Why the subject's thumbnail job failed for good, or None when it has not failed."""
    args = {"kind": "portrait" if isinstance(subject, Portrait) else "ar_content", "id": subject.id}
    failed = session.scalars(
        select(Job)
        .where(
            Job.kind == THUMBNAIL.name,
            Job.company_id == subject.company_id,
            Job.status == JobStatus.FAILED,
            Job.created_at >= subject.created_at,
        )
        .order_by(Job.created_at.desc())
    )
    # Images are checked whole at upload, so failed thumbnail jobs are rare: a short scan.
    return next((job.error for job in failed if job.args == args), None)


def poster_frame(video_path: Path, *, timeout_s: float) -> bytes:
    """One JPEG frame of the video near its start, read by ffmpeg within `timeout_s` seconds.

    Raises PreviewInputError when ffmpeg is missing, cannot read the video, or runs out of time.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise PreviewInputError("ffmpeg is not installed on the worker, so no poster can be made")
    # -ss before -i seeks cheaply; a video shorter than that gives no frame, so the start is tried next.
    for seek in (POSTER_AT_S, 0.0):
        command = [
            ffmpeg, "-nostdin", "-v", "error", "-ss", str(seek), "-i", str(video_path),
            "-frames:v", "1", "-vf", "scale='min(640,iw)':-2", "-q:v", "4",
            "-f", "image2", "-c:v", "mjpeg", "pipe:1",
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PreviewInputError(
                f"ffmpeg could not read a frame of the video within {timeout_s:g} s"
            ) from exc
        if done.returncode == 0 and done.stdout:
            return done.stdout
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            gist = reason[-1] if reason else f"exit status {done.returncode}"
            raise PreviewInputError(f"the video cannot be read by ffmpeg: {gist[:MAX_REASON_CHARS]}")
    raise PreviewInputError("the video has no picture: ffmpeg found no frame to use as a poster")


def generate_poster(session: Session, storage: Storage, job: Job, *, timeout_s: float) -> JobOutcome:
    """Make and store the poster of the video named by `job`; raises PreviewInputError."""
    video = session.get(Video, job.args["video_id"])
    if video is None:
        return JobOutcome({"superseded": True})
    video_key = video.storage_key
    # The original is gone once its rendition stands in for it (ARV_KEEP_VIDEO_ORIGINALS=false).
    source_key = video.rendition_key if video.original_deleted_at and video.rendition_key else video_key
    data = _uploaded(storage, source_key, "video")
    with tempfile.TemporaryDirectory(prefix="arv-poster-") as folder:
        path = Path(folder) / "video"
        path.write_bytes(data)
        poster = poster_frame(path, timeout_s=timeout_s)
    key = poster_key(job.id)
    storage.put(key, poster, "image/jpeg")
    return recording_or_discarding(
        {"poster_key": key, "size_bytes": len(poster)},
        update(Video)
        .where(Video.id == video.id, Video.storage_key == video_key)
        .values(poster_key=key, poster_error=None),
        storage,
        key,
    )


def record_poster_failure(session: Session, video_id: int, reason: str) -> None:
    """Say on the video why it has no poster."""
    session.execute(
        update(Video)
        .where(Video.id == video_id)
        .values(poster_error=reason)
        .execution_options(synchronize_session=False)
    )


THUMBNAIL = register(
    JobKind(
        name="generate_thumbnail",
        queue=Queue.DEFAULT,
        run=lambda session, job: generate_thumbnail(
            session, get_storage(), job, max_px=get_settings().thumbnail_max_px
        ),
        permanent_errors=(PreviewInputError,),
    )
)
POSTER = register(
    JobKind(
        name="generate_video_poster",
        queue=Queue.DEFAULT,
        run=lambda session, job: generate_poster(
            session, get_storage(), job, timeout_s=get_settings().poster_timeout_s
        ),
        permanent_errors=(PreviewInputError,),
        on_failure=lambda session, job, reason: record_poster_failure(session, job.args["video_id"], reason),
        # No quota of its own: a poster comes with each video's transcode, which counts under the
        # transcodes quota (one video, one unit of it).
    )
)
