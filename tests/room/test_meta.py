"""Room metadata as every member keeps it: the operations and last-writer-wins order."""

from __future__ import annotations

import pytest

from drivers.common.actions import ActionError
from services.room.meta import MetaBook, Stamped, apply_op


def test_set_update_delete() -> None:
    meta = apply_op({}, "set", {"a": 1, "b": {"c": 2}}, None)
    assert apply_op(meta, "update", {"b": 3, "d": None}, None) == {"a": 1, "b": 3, "d": None}
    assert apply_op(meta, "delete", None, ["a", "missing"]) == {"b": {"c": 2}}
    assert apply_op(meta, "delete", None, None) == {}


@pytest.mark.parametrize("op, meta, keys, words", [
    ("set", [1], None, "JSON object"),
    ("update", "text", None, "JSON object"),
    ("set", {}, ["a"], "keys go with op delete only"),
    ("delete", {"a": 1}, None, "delete takes keys"),
    ("delete", None, "a", "list of strings"),
    ("set", {"big": "x" * 5000}, None, "larger than 4096 bytes"),
])
def test_bad_operations_name_what_is_wrong(op: str, meta: object, keys: object,
                                           words: str) -> None:
    with pytest.raises(ActionError) as exc:
        apply_op({}, op, meta, keys)
    assert exc.value.code == "BAD_ARGUMENT" and words in exc.value.message


def test_the_newest_writer_wins_the_same_on_every_member() -> None:
    updates = [{"meta": {"v": 1}, "ts": 100, "by": "a"},
               {"meta": {"v": 2}, "ts": 100, "by": "b"},  # same time: the larger id wins
               {"meta": {"v": 0}, "ts": 99, "by": "z"}]
    copies = [MetaBook(), MetaBook()]
    for update in updates:
        copies[0].take_room(update)
    for update in reversed(updates):
        copies[1].take_room(update)
    assert copies[0].room == copies[1].room == Stamped({"v": 2}, 100, "b")
    book = copies[0]
    assert not book.take_room({"meta": {"v": 3}, "ts": "late", "by": "c"})  # malformed
    assert not book.take_room({"meta": ["x"], "ts": 200, "by": "c"})
    assert book.take_member("m", {"meta": {"seat": 1}, "ts": 5, "by": "m"})
    assert not book.take_member("m", {"meta": {"seat": 0}, "ts": 4, "by": "m"})
    book.clear_remote(keep="m")
    assert book.room == Stamped() and list(book.members) == ["m"]
