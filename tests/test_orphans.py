"""Orphaned storage objects: listing both backends page by page, and the pass that deletes what no row
references once older than the grace period, on SQLite and PostgreSQL, a local folder and an S3 server.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import String, delete

from arv.db.models import ARContent, Base, Company, Portrait, Project, Video
from arv.db.session import session_scope
from arv.services.orphans import STORAGE_KEY_COLUMNS, STORAGE_KEY_PREFIXES, collect_orphaned_objects
from arv.storage import Storage, StoredObject
from arv.storage import s3 as s3_module
from arv.storage.local import LocalStorage
from arv.storage.s3 import S3Storage
from tests.support.records import make_company, make_content

GRACE_S = 3600.0

# Columns named like a key that hold no storage key, each with what it holds instead.
NOT_STORAGE_KEYS = {
    "notifications.dedupe_key": "the event a notification is about, so that it is written once",
    "api_keys.key_hash": "the SHA-256 of an API key",
}


def local_storage(root: Path) -> LocalStorage:
    return LocalStorage(root=root, signing_key=b"test", base_url="http://testserver")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty store of each kind: a local folder, and a fresh bucket on the moto S3 server."""
    if request.param == "local":
        return local_storage(tmp_path / "objects")
    return S3Storage(
        bucket=f"orphans-{uuid.uuid4().hex[:12]}",
        endpoint_url=request.getfixturevalue("s3_endpoint"),
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )


def put_all(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        storage.put(key, key.encode(), "application/octet-stream")


FILE_CLOCK_MARGIN_S = 0.05


def write_objects(storage: Storage, *, old: list[str], young: tuple[str, ...] = ()) -> datetime:
    """Store `old`, then `young` in a later whole second (S3 dates objects to the second), and return
    the instant at which a pass finds `old` past the grace period and `young` within it."""
    put_all(storage, old)
    boundary = int(time.time()) + 1
    if young:
        # Past the boundary by the wall clock, with a margin: time.sleep counts on the monotonic clock,
        # and the kernel dates files by a coarse clock up to a tick (a few ms) behind time.time().
        # Dated before the boundary, the young object would be old.
        while time.time() < boundary + FILE_CLOCK_MARGIN_S:
            time.sleep(max(boundary + FILE_CLOCK_MARGIN_S - time.time(), 0.001))
        put_all(storage, list(young))
    return datetime.fromtimestamp(boundary, UTC) + timedelta(seconds=GRACE_S)


def stored_keys(storage: Storage) -> set[str]:
    return {stored.key for stored in storage.list_objects(limit=10_000)}


def reference_in_rows(keys: list[str]) -> None:
    """Rows holding `keys`, one per key column in the order of STORAGE_KEY_COLUMNS, as many portraits,
    contents and videos as it takes (their other required keys point outside ARV's prefixes)."""
    company_id = make_company()
    for start in range(0, len(keys), len(STORAGE_KEY_COLUMNS)):
        chunk = keys[start : start + len(STORAGE_KEY_COLUMNS)]
        content_id, (video_id,) = make_content(company_id, videos=1)
        with session_scope() as session:
            portrait = Portrait(
                company_id=company_id,
                image_key="elsewhere/portrait",
                image_content_type="image/png",
                image_width=640,
                image_height=480,
            )
            session.add(portrait)
            rows = {
                Portrait: portrait,
                ARContent: session.get(ARContent, content_id),
                Video: session.get(Video, video_id),
            }
            for position, column in enumerate(STORAGE_KEY_COLUMNS):
                if position < len(chunk):
                    value: str | None = chunk[position]
                else:
                    value = None if column.property.columns[0].nullable else "elsewhere/filler"
                setattr(rows[column.class_], column.key, value)


# ---- listing -------------------------------------------------------------------------------------

# Traps for a folder-by-folder walk: "a-c" < "a/…" < "a0" and "a/b-d" < "a/b/…" < "a/bz" as strings.
NESTED_KEYS = [
    "a-c",
    "a/b-d",
    "a/b/c",
    "a/bz",
    "a0",
    "images/x.png",
    "markers/m.mind",
    "markers/sub/deeper/n.mind",
    "qr/q.svg",
    "z",
]


def test_listing_pages_through_nested_keys_in_the_order_s3_uses(storage: Storage) -> None:
    put_all(storage, list(reversed(NESTED_KEYS)))
    pages, after = [], None
    while True:
        page = storage.list_objects(start_after=after, limit=3)
        pages.append([stored.key for stored in page])
        if len(page) < 3:
            break
        after = page[-1].key
    assert [key for page in pages for key in page] == sorted(NESTED_KEYS)
    assert [len(page) for page in pages] == [3, 3, 3, 1]


def test_listing_keeps_to_its_prefix_and_starts_after_the_given_key(storage: Storage) -> None:
    put_all(storage, NESTED_KEYS)
    assert [o.key for o in storage.list_objects("a/")] == ["a/b-d", "a/b/c", "a/bz"]
    assert [o.key for o in storage.list_objects("a/", start_after="a/b-d")] == ["a/b/c", "a/bz"]
    assert [o.key for o in storage.list_objects("markers/", limit=1)] == ["markers/m.mind"]
    assert [o.key for o in storage.list_objects(start_after="markers/m.mind", limit=2)] == [
        "markers/sub/deeper/n.mind",
        "qr/q.svg",
    ]
    assert storage.list_objects("nothing/") == []


def test_listed_objects_carry_their_size_and_a_utc_write_time(storage: Storage) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    storage.put("videos/clip.mp4", b"x" * 1234, "video/mp4")
    (listed,) = storage.list_objects()
    assert listed.key == "videos/clip.mp4" and listed.size == 1234
    assert listed.last_modified.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= listed.last_modified <= datetime.now(UTC) + timedelta(seconds=1)


def test_an_empty_store_lists_nothing(storage: Storage) -> None:
    assert storage.list_objects() == []
    with pytest.raises(ValueError, match="limit"):
        storage.list_objects(limit=0)


def test_the_local_listing_leaves_out_unfinished_writes_and_the_health_probe(tmp_path: Path) -> None:
    storage = local_storage(tmp_path)
    storage.put("images/done.png", b"png", "image/png")
    (tmp_path / "images" / ".upload-k3j2h1").write_bytes(b"half an upload")
    (tmp_path / ".healthcheck").write_bytes(b"ok")
    assert [o.key for o in storage.list_objects()] == ["images/done.png"]


def test_an_s3_listing_past_one_response_follows_the_continuation(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = S3Storage(
        bucket=f"orphans-{uuid.uuid4().hex[:12]}",
        endpoint_url=s3_endpoint,
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )
    put_all(storage, NESTED_KEYS)
    # Responses of two keys stand for S3's cap of 1000, which would take 1001 objects to reach.
    monkeypatch.setattr(s3_module, "MAX_KEYS_PER_REQUEST", 2)
    ordered = sorted(NESTED_KEYS)
    assert [o.key for o in storage.list_objects(limit=7)] == ordered[:7]
    assert [o.key for o in storage.list_objects(start_after=ordered[2], limit=100)] == ordered[3:]


# ---- the key columns -----------------------------------------------------------------------------


def test_every_key_column_of_the_models_is_checked_for_references() -> None:
    """A storage key column missing from STORAGE_KEY_COLUMNS would get its objects deleted."""
    key_like = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, String) and "key" in column.name.split("_")
    }
    checked = {f"{column.class_.__tablename__}.{column.key}" for column in STORAGE_KEY_COLUMNS}
    assert key_like - checked - NOT_STORAGE_KEYS.keys() == set(), "add it to STORAGE_KEY_COLUMNS"
    assert checked | NOT_STORAGE_KEYS.keys() <= key_like
    assert len(checked) == len(STORAGE_KEY_COLUMNS)


# ---- the pass ------------------------------------------------------------------------------------


def collect(storage: Storage, now: datetime, page_size: int = 1000) -> dict[str, int]:
    with session_scope() as session:
        return collect_orphaned_objects(
            session, storage, grace_s=GRACE_S, page_size=page_size, now=now
        ).to_dict()


def counts(*, listed: int, referenced: int = 0, young: int = 0, deleted: int = 0) -> dict[str, int]:
    return {"listed": listed, "referenced": referenced, "young": young, "deleted": deleted, "failed": 0}


def test_an_object_any_key_column_references_survives_however_old(arv_env: object, storage: Storage) -> None:
    held = [f"images/held-{index}" for index in range(len(STORAGE_KEY_COLUMNS))]
    reference_in_rows(held)
    now = write_objects(storage, old=held)
    every = len(STORAGE_KEY_COLUMNS)
    assert collect(storage, now + timedelta(days=365)) == counts(listed=every, referenced=every)
    assert stored_keys(storage) == set(held)


def test_an_unreferenced_object_past_the_grace_period_is_deleted(arv_env: object, storage: Storage) -> None:
    reference_in_rows(["markers/current.mind"])
    now = write_objects(storage, old=["markers/current.mind", "markers/superseded.mind", "videos/killed.mp4"])
    assert collect(storage, now) == counts(listed=3, referenced=1, deleted=2)
    assert stored_keys(storage) == {"markers/current.mind"}
    # Nothing is left to do: a second pass deletes nothing.
    assert collect(storage, now) == counts(listed=1, referenced=1)


def test_an_unreferenced_object_within_the_grace_period_survives(arv_env: object, storage: Storage) -> None:
    now = write_objects(storage, old=["images/abandoned.png"], young=["images/in-flight.png"])
    assert collect(storage, now) == counts(listed=2, young=1, deleted=1)
    assert stored_keys(storage) == {"images/in-flight.png"}


def test_objects_outside_the_prefixes_arv_writes_are_never_listed(arv_env: object, storage: Storage) -> None:
    now = write_objects(storage, old=["backups/db.sql", "imagesx/y", "markers/orphan.mind"])
    assert collect(storage, now) == counts(listed=1, deleted=1)
    assert stored_keys(storage) == {"backups/db.sql", "imagesx/y"}


@pytest.mark.parametrize("objects", [6, 7])
def test_pages_that_end_exactly_on_a_boundary_or_short_miss_nothing(
    arv_env: object, storage: Storage, objects: int
) -> None:
    keys = [f"videos/{index:02d}.mp4" for index in range(objects)]
    held = keys[2:4]  # the last of one page and the first of the next
    reference_in_rows(held)
    now = write_objects(storage, old=keys)
    assert collect(storage, now, page_size=3) == counts(listed=objects, referenced=2, deleted=objects - 2)
    assert stored_keys(storage) == set(held)


def test_a_row_committed_after_the_listing_keeps_its_object(arv_env: object, tmp_path: Path) -> None:
    """The race the grace period covers: the upload's commit lands while the pass is between pages."""
    storage = local_storage(tmp_path / "objects")
    now = write_objects(storage, old=["images/a", "images/b"])

    class CommitsAfterListing(LocalStorage):
        def list_objects(
            self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000
        ) -> list[StoredObject]:
            listed = super().list_objects(prefix, start_after=start_after, limit=limit)
            if prefix == "images/" and listed:
                reference_in_rows(["images/b"])
            return listed

    racing = CommitsAfterListing(root=storage.root, signing_key=b"test", base_url="http://testserver")
    assert collect(racing, now) == counts(listed=2, referenced=1, deleted=1)
    assert stored_keys(storage) == {"images/b"}


def test_the_task_deletes_orphans_logs_and_counts_them(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import apply_env

    apply_env({**arv_env, "ARV_LOG_LEVEL": "INFO"}, monkeypatch)  # the count is an info line
    from arv.storage import get_storage
    from arv.tasks.app import get_celery_app

    storage = get_storage()
    put_all(storage, ["images/kept.png", "images/orphan.png", "posters/orphan.jpg", "qr/young.svg"])
    reference_in_rows(["images/kept.png"])
    two_hours_ago = time.time() - 2 * GRACE_S
    for key in ["images/kept.png", "images/orphan.png", "posters/orphan.jpg"]:
        path = Path(arv_env["ARV_DATA_DIR"]) / "storage" / key
        os.utime(path, (two_hours_ago, two_hours_ago))
    deleted_before = REGISTRY.get_sample_value("arv_orphaned_objects_deleted_total") or 0.0

    capfd.readouterr()
    result = get_celery_app().tasks["collect_orphaned_objects"].apply().get()
    logs = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]

    assert result == counts(listed=4, referenced=1, young=1, deleted=2)
    assert {o.key for o in storage.list_objects()} == {"images/kept.png", "qr/young.svg"}
    assert REGISTRY.get_sample_value("arv_orphaned_objects_deleted_total") == deleted_before + 2
    assert [
        {k: v for k, v in entry.items() if k != "timestamp"}
        for entry in logs
        if entry["event"] == "periodic.done"
    ] == [{"event": "periodic.done", "level": "info", "task": "collect_orphaned_objects", **result}]


# ---- never a referenced key ----------------------------------------------------------------------

OBJECT_KINDS = st.sampled_from(["referenced-old", "referenced-young", "orphan-old", "orphan-young"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    objects=st.lists(st.tuples(OBJECT_KINDS, st.sampled_from(STORAGE_KEY_PREFIXES)), min_size=1, max_size=14),
    page_size=st.integers(1, 5),
)
def test_the_pass_deletes_exactly_the_old_orphans(
    arv_env: object, tmp_path: Path, objects: list[tuple[str, str]], page_size: int
) -> None:
    with session_scope() as session:
        for model in (Video, ARContent, Portrait, Project, Company):
            session.execute(delete(model))
    storage = local_storage(tmp_path / uuid.uuid4().hex)
    keys = {f"{prefix}{index:02d}-{kind}": kind for index, (kind, prefix) in enumerate(objects)}
    put_all(storage, list(keys))
    now = datetime.now(UTC) + timedelta(minutes=5)
    for key, kind in keys.items():
        if kind.endswith("old"):
            when = (now - timedelta(seconds=GRACE_S + 1)).timestamp()
            os.utime(storage.root / key, (when, when))
    reference_in_rows([key for key, kind in keys.items() if kind.startswith("referenced")])

    result = collect(storage, now, page_size=page_size)

    assert stored_keys(storage) == {key for key, kind in keys.items() if kind != "orphan-old"}
    assert result == counts(
        listed=len(keys),
        referenced=sum(kind.startswith("referenced") for kind in keys.values()),
        young=sum(kind == "orphan-young" for kind in keys.values()),
        deleted=sum(kind == "orphan-old" for kind in keys.values()),
    )
