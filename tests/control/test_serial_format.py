"""The text forms of the serial protocol match the grammar in docs/serial-protocol.md."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from services.serial_control.format import MAX_VALUE, err, event, ok, quote

BARE = r"[A-Za-z0-9_.,:/@+\-]+"
QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\["\\nrt]|\\x[0-9a-f]{2})*"'
PAIR = rf"[A-Za-z0-9_.\-]+=(?:{BARE}|{QUOTED})"
EV_LINE = re.compile(rf"EV [A-Za-z0-9_.\-]+(?: {PAIR})*")
ERR_LINE = re.compile(r"ERR [A-Z][A-Z0-9_]* [^\r\n\x00-\x1f\x7f]*")


def unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    out, i, body = [], 0, value[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt == "x":
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=MAX_VALUE),
                       max_size=5))
def test_event_lines_follow_the_grammar_and_round_trip(data: dict[str, str]) -> None:
    line = event("member-updated", data)
    assert EV_LINE.fullmatch(line), line
    values = re.findall(rf"=({BARE}|{QUOTED})", line)
    assert [unquote(v) for v in values] == list(data.values())


@given(st.text(max_size=300))
def test_quote_never_lets_a_line_break_through(text: str) -> None:
    q = quote(text)
    assert "\r" not in q and "\n" not in q
    if len(text) <= MAX_VALUE:
        assert unquote(q) == text


@given(st.text(max_size=300))
def test_err_lines_are_one_line(reason: str) -> None:
    assert ERR_LINE.fullmatch(err("BAD_ARGUMENT", reason))


def test_values() -> None:
    assert ok("STATUS", data={"a": True, "b": None, "c": 0.25, "d": ["x", 1], "e": {"f": 2},
                              "g": "", "h": "two words"}) == \
        'OK STATUS a=on b=- c=0.25 d=x,1 e.f=2 g="" h="two words"'
    assert err("lower", "x\ny") == "ERR LOWER x y"
