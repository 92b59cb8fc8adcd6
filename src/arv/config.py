"""Settings: one pydantic-settings class that chooses every backend from `ARV_` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from arv.mindar.limits import DEFAULT_MAX_PIXELS


class Settings(BaseSettings):
    """Every knob of ARV. With nothing set, everything runs on one machine with no servers.

    Parameters come from the environment with the ``ARV_`` prefix (``ARV_DATABASE_URL`` and so on).
    """

    model_config = SettingsConfigDict(env_prefix="ARV_", env_file=None, extra="ignore")

    # Where the embedded default keeps its database, files and broker mailboxes.
    data_dir: Path = Path(".arv")

    # Empty means the embedded default under data_dir (SQLite, local folder, filesystem broker).
    database_url: str = ""
    broker_url: str = ""
    result_backend: str = ""
    storage_url: str = ""

    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = ""
    # Signs download links of the local storage; generated once into data_dir when empty.
    secret_key: str = ""
    json_logs: bool | None = None
    log_level: str = "INFO"

    max_upload_mb: int = 50
    # Decompression-bomb guard: images claiming more pixels than this are refused from their header.
    # The compiler's own limit, the one its memory budget was measured for (see arv.mindar.limits).
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    # On: markers are trained on simulated phone views (arv.mindar.training), under 0.6 of MindAR's
    # bytes and found about as often, at about three times the compile time. Off (the default):
    # MindAR's own keyframes, bit-exact. Under benchmarks/faults.py's load on 2 cores, trained compiles
    # back up the markers queue: a killed worker's job restarted after 54 s instead of 18 s.
    marker_training: bool = False
    download_url_ttl_s: int = 900

    # Celery time limits per queue, in seconds (soft ends the task cleanly, hard kills it).
    marker_soft_time_limit_s: int = 120
    marker_time_limit_s: int = 150
    default_soft_time_limit_s: int = 300
    default_time_limit_s: int = 360
    notification_soft_time_limit_s: int = 60
    notification_time_limit_s: int = 90
    # A transcode of the longest video accepted (ARV_MAX_VIDEO_SECONDS) from 4K60 HEVC takes minutes.
    video_soft_time_limit_s: int = 1800
    video_time_limit_s: int = 1860

    # Job leases: a claim holds a job for `job_lease_s`, and the running worker's heartbeat renews it
    # every `job_heartbeat_s`; a worker that dies or is cut off loses its jobs once the lease lapses.
    job_lease_s: float = 10.0
    job_heartbeat_s: float = 2.0
    # A job whose worker stopped under it this many times fails (a photo that crashes every worker).
    job_max_lost_leases: int = 5
    # A queued job whose wake-up has not been picked up after this long may be woken up again.
    job_republish_after_s: float = 10.0
    # Transient failures (storage, database, network) retry with capped exponential backoff and
    # jitter for this long after the first one, then the job fails.
    job_retry_window_s: float = 600.0
    job_retry_base_s: float = 1.0
    job_retry_max_s: float = 30.0
    # PostgreSQL ends a session idle inside a transaction for this long (its client vanished mid-way),
    # releasing the row locks it held; longer than any transaction ARV leaves open on purpose (an
    # upload's transaction spans its writes to storage).
    db_idle_in_transaction_timeout_s: float = 30.0
    # Every worker offers to sweep this often; one of them does.
    sweep_interval_s: float = 5.0

    # Beat schedule, seconds between runs of each periodic task.
    expiry_check_interval_s: float = 3600.0
    expiry_deactivate_interval_s: float = 300.0
    rotation_interval_s: float = 60.0

    # Unreferenced storage objects younger than this are kept: longer than any upload or compile.
    orphan_grace_s: float = 3600.0
    # Seconds between runs of the orphaned storage object collection.
    orphan_collect_interval_s: float = 900.0
    # Seconds between runs of the pass that deletes ended console sessions, spent or expired links
    # and sign-in failures no longer counted.
    console_prune_interval_s: float = 3600.0

    # Filesystem broker polling interval (embedded default only).
    filesystem_poll_interval_s: float = 0.05
    # Redis transport: redeliver an unacked message after this many seconds (production safety net;
    # the job sweep recovers much sooner).
    redis_visibility_timeout_s: int = 3600
    # Prefix of every broker and result key in Redis, so several deployments (or test runs) can share
    # one server.
    redis_key_prefix: str = ""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "ARV <no-reply@arv.local>"
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_rate_per_s: float = 10.0
    smtp_timeout_s: float = 20.0
    # A CA bundle to trust for the mail server's certificate (a private CA); the system's otherwise.
    smtp_ca_file: str | None = None

    telegram_bot_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # Telegram allows about 30 messages a second per bot and one a second per chat; these stay under
    # both with room for network jitter.
    telegram_rate_per_s: float = 25.0
    telegram_chat_interval_s: float = 1.1
    # Sends on their way to Telegram at once; with the rate above, at most 25 + 4 arrive in any second.
    telegram_max_in_flight: int = 4
    telegram_timeout_s: float = 15.0
    # A delivery waits in its worker for a rate-limit slot at most this long; later slots send the job
    # back to the queue instead, so a busy chat does not hold worker threads.
    notification_max_rate_wait_s: float = 2.0
    notification_fan_out_interval_s: float = 60.0

    viewer_cdn_base_url: str = ""
    # ffmpeg gets this long to read one poster frame from a video; past it the video counts as unreadable.
    poster_timeout_s: float = 60.0
    # ---- video probe at upload (arv.services.video_probe) ----
    # Longest video accepted, in seconds; ffprobe gets this long to read an upload before it is refused.
    max_video_seconds: float = Field(default=600.0, gt=0)
    video_probe_timeout_s: float = Field(default=15.0, gt=0)
    # ---- web renditions (arv.services.transcode) ----
    # Keep the uploaded original once its renditions exist (a better rendition can be made from it
    # later); false deletes it after a successful transcode, and the rendition stands in for it.
    keep_video_originals: bool = True
    # ffmpeg reporting no progress for this long is stopped: the file makes it hang.
    video_stall_timeout_s: float = Field(default=120.0, gt=0)
    # ffmpeg runs at this niceness (0-19): a transcode gives the CPU up to marker compiles and the API
    # on the same machine, and takes what they leave.
    video_transcode_niceness: int = Field(default=10, ge=0, le=19)
    # Longest side of portrait and AR content thumbnails, in pixels.
    thumbnail_max_px: int = 320

    default_notify_before_expiry_days: int = Field(default=7, ge=0)

    # ---- quotas (arv.services.quotas) ----
    # Per-company limits; a company's own value (PATCH /api/companies/{id}) replaces each one, and
    # 0 means unlimited. Sized for a busy print shop: hundreds of portraits a day, a batch at a time.
    # Images and videos accepted per UTC day (portraits, AR content, videos; each counts once).
    quota_uploads_per_day: int = Field(default=2000, ge=0)
    # Marker compiles queued or running at once.
    quota_compiles_in_flight: int = Field(default=20, ge=0)
    # Videos whose web renditions are being made (queued or running) at once.
    quota_transcodes_in_flight: int = Field(default=10, ge=0)
    # Bytes of uploaded images and videos kept in storage (derived files are not counted): 50 GiB.
    quota_stored_bytes: int = Field(default=50 * 1024**3, ge=0)

    # ---- slow clients (issue 11, hardening) ----
    # A request's headers must be complete this long after its first byte (or the connection's
    # opening), else 408 and the connection is closed: uvicorn alone never cuts off a slowloris.
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    # A request's headers larger than this are refused with 431 (uvicorn's httptools has no bound).
    http_max_header_bytes: int = Field(default=65536, ge=1024)
    # Each piece of a request body must arrive within this long of the previous one, else 408.
    http_body_timeout_s: float = Field(default=30.0, gt=0)
    # An idle kept-alive connection is closed after this long (uvicorn's timeout_keep_alive).
    http_keep_alive_timeout_s: int = Field(default=5, ge=1)
    # Past this many open connections and requests in one API process, new requests get 503.
    http_max_connections: int = Field(default=1000, ge=1)

    # ---- console accounts (arv.services.accounts) ----
    # How long a one-time link to set a password works: an invitation, a reset asked for.
    console_invite_ttl_s: float = Field(default=7 * 86400.0, gt=0)
    console_reset_ttl_s: float = Field(default=3600.0, gt=0)
    # A signed-in console session ends this long after sign-in, however busy.
    console_session_ttl_s: float = Field(default=14 * 86400.0, gt=0)
    # This many failed sign-ins of one e-mail, each within `console_sign_in_lock_s` of the previous,
    # lock that e-mail for `console_sign_in_lock_s` after the last one, right password or not.
    console_sign_in_max_failures: int = Field(default=5, ge=1)
    console_sign_in_lock_s: float = Field(default=900.0, gt=0)
    # The wait before answering a sign-in of an e-mail with failures counted: this after the first,
    # doubling with each more, up to 8 times it (0: no wait).
    console_sign_in_delay_s: float = Field(default=0.5, ge=0, le=10)
    # argon2id's cost for console passwords: memory in KiB and passes (RFC 9106's second
    # recommendation by default). Raising them upgrades each stored hash at its next sign-in.
    console_password_memory_kib: int = Field(default=65536, ge=64)
    console_password_passes: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _heartbeat_renews_in_time(self) -> Settings:
        if not 0 < self.job_heartbeat_s <= self.job_lease_s / 2:
            raise ValueError(
                f"ARV_JOB_HEARTBEAT_S ({self.job_heartbeat_s:g}) must be above 0 and at most half of "
                f"ARV_JOB_LEASE_S ({self.job_lease_s:g}), or a live job's lease could lapse between beats"
            )
        return self

    # ---- derived URLs -------------------------------------------------------------------------

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver this project uses (psycopg 3 for PostgreSQL)."""
        url = self.database_url or f"sqlite:///{self.resolved_data_dir / 'arv.db'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def broker_folder(self) -> Path:
        return self.resolved_data_dir / "broker"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def celery_result_backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return f"db+sqlite:///{self.resolved_data_dir / 'results.db'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{self.resolved_data_dir / 'storage'}"

    @property
    def api_base_url(self) -> str:
        return self.public_base_url.rstrip("/") or f"http://{self.api_host}:{self.api_port}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
