"""The feed cache's rules: what it serves, what a change or an event drops, what it forgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from campus_common.events import Event
from campus_documents.feed import FeedCache, first_items
from campus_documents.outbox import comment_payload, post_liked_payload, post_payload
from campus_documents.schemas import PostRead
from campus_documents.service import to_post

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def posts(n: int, group_id: int = 1) -> list[PostRead]:
    return [
        to_post(
            {
                "_id": ObjectId(),
                "author_id": 7,
                "group_id": group_id,
                "type": "note",
                "title": f"post {i}",
                "created_at": AT - timedelta(minutes=i),
                "updated_at": AT - timedelta(minutes=i),
            }
        )
        for i in range(n)
    ]


def cache(clock: Clock, *, groups: int = 10, page: int = 5) -> FeedCache:
    feed = FeedCache(groups=groups, page=page, ttl_s=30.0, max_lag_s=5.0, clock=clock)
    feed.synced(clock.now)
    return feed


def keep(feed: FeedCache, group_id: int, items: list[PostRead], *, more: bool = False) -> bool:
    with feed.filling(group_id) as fill:
        assert fill is not None
        return feed.put(fill, items, more=more)


def event(event_type: str, payload: dict[str, object]) -> bytes:
    return Event(type=event_type, source="documents", key="k", payload=payload).to_bytes()


def test_first_items_slice_a_page_and_say_whether_posts_follow() -> None:
    items = posts(5)
    assert first_items(items, more=False, limit=5) == (items, False)
    assert first_items(items, more=True, limit=5) == (items, True)
    assert first_items(items, more=False, limit=3) == (items[:3], True)
    assert first_items(items[:2], more=False, limit=3) == (items[:2], False)


def test_nothing_is_served_or_kept_until_the_follower_has_caught_up() -> None:
    clock = Clock()
    feed = FeedCache(groups=10, page=5, ttl_s=30.0, max_lag_s=5.0, clock=clock)
    with feed.filling(1) as fill:
        assert fill is None
    feed.synced(clock.now)
    assert keep(feed, 1, posts(3))
    assert feed.get(1, limit=5) is not None


def test_a_kept_page_answers_any_limit_up_to_the_page_size() -> None:
    clock = Clock()
    feed = cache(clock)
    items = posts(5)
    assert keep(feed, 1, [*items, *posts(2)], more=False)  # trimmed to the page size
    assert feed.get(1, limit=5) == (items, True)
    assert feed.get(1, limit=2) == (items[:2], True)
    assert feed.get(1, limit=6) is None  # larger than what is kept: read from the store
    assert feed.get(2, limit=5) is None


def test_a_follower_that_stops_proving_it_is_caught_up_stops_the_serving() -> None:
    clock = Clock()
    feed = cache(clock)
    assert keep(feed, 1, posts(3))
    clock.now += 5.5
    assert feed.get(1, limit=5) is None
    with feed.filling(2) as fill:
        assert fill is None
    feed.synced(clock.now - 1)
    assert feed.get(1, limit=5) is not None
    feed.unsynced()  # a restarted follower skipped whatever was published meanwhile
    feed.synced(clock.now)
    assert feed.get(1, limit=5) is None


def test_a_page_older_than_the_ttl_is_read_again() -> None:
    clock = Clock()
    feed = cache(clock)
    assert keep(feed, 1, posts(3))
    clock.now += 31
    feed.synced(clock.now)
    assert feed.get(1, limit=5) is None
    assert len(feed) == 0


def test_the_least_recently_used_group_is_evicted() -> None:
    clock = Clock()
    feed = cache(clock, groups=2)
    for group_id in (1, 2):
        assert keep(feed, group_id, posts(1, group_id))
    assert feed.get(1, limit=1) is not None  # 1 is now more recent than 2
    assert keep(feed, 3, posts(1, 3))
    assert (feed.get(1, limit=1) is not None, feed.get(2, limit=1), len(feed)) == (True, None, 2)


def test_a_change_during_a_read_keeps_that_read_out_of_the_cache() -> None:
    clock = Clock()
    feed = cache(clock)
    with feed.filling(1) as one, feed.filling(2) as two:
        assert one is not None and two is not None
        feed.changed(1)  # a write to group 1 was stored while both reads were under way
        assert not feed.put(one, posts(3), more=False)
        assert feed.put(two, posts(3, 2), more=False)
    assert feed.get(1, limit=5) is None
    with feed.filling(1) as again:
        assert again is not None
        feed.unsynced()
        feed.synced(clock.now)
        assert not feed.put(again, posts(3), more=False)


def test_events_drop_the_page_of_the_group_whose_feed_they_change() -> None:
    clock = Clock()
    feed = cache(clock)
    for group_id in (1, 2, 3):
        assert keep(feed, group_id, posts(2, group_id))
    post = {"_id": ObjectId(), "author_id": 7, "group_id": 1, "type": "note", "title": "t"}
    comment = {"_id": ObjectId(), "author_id": 8}
    feed.apply(event("comment.created", comment_payload(comment, post)))  # no count in the feed
    feed.apply(event("post.created", post_payload({**post, "group_id": None})))  # in no group
    feed.apply(None)
    assert feed.get(1, limit=2) is not None
    feed.apply(event("post.liked", post_liked_payload(post, user_id=8)))  # the like count
    assert feed.get(1, limit=2) is None
    assert feed.get(2, limit=2) is not None
    feed.apply(b"not an event")  # could have been about any group
    assert len(feed) == 0
