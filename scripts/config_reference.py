"""Writes docs/config.md from the config schema (device/config_sections.py), so the two agree."""

from __future__ import annotations

import sys
from pathlib import Path

from device import config, config_check, config_store


def render() -> str:
    out = ["# Config reference", "",
           "One TOML file, default `/etc/edgeroom/edgeroom.toml` (`--config` or",
           "`$EDGEROOM_CONFIG`). Every key is optional; unknown keys and bad values are",
           "errors that name the key and the line. `edgeroom config check PATH` validates a",
           "file; `edgeroom config show` prints the effective config with secrets redacted.",
           "Writable state lives in the state dir, default `/var/lib/edgeroom` (`--state-dir`",
           "or `$EDGEROOM_STATE_DIR`).", "",
           "Changes from the page are checked by the same rules as the file (text with",
           "control characters is refused) and saved by editing the file in place:",
           "comments, order and blank lines stay, only the changed keys change.", "",
           "Keys marked *restart: X* restart only subsystem X when changed from the page.",
           "Secrets are shown as `***` by `config show` and the page.", ""]
    section = None
    for row in config.describe():
        sec = row["key"].split(".")[0]
        if sec != section:
            section = sec
            title = (f"## `[[{sec}]]` (one table per link, up to 8)" if row.get("array")
                     else f"## `[{sec}]`")
            out += ["", title, "", "| key | type | default | meaning |", "|---|---|---|---|"]
        default = row["default"]
        shown = "unset" if default is None else f"`{config_store.toml_value(default)}`"
        notes = []
        if row["choices"]:
            notes.append("one of " + ", ".join(
                f"`{str(c).lower() if isinstance(c, bool) else c}`" for c in row["choices"]))
        if row["minimum"] is not None or row["maximum"] is not None:
            lo, hi = config_check.num(row["minimum"]), config_check.num(row["maximum"])
            notes.append(f"range {lo}..{hi}")
        if row["secret"]:
            notes.append("secret")
        if row["restart"]:
            notes.append(f"restart: {row['restart']}")
        extra = f" ({'; '.join(notes)})" if notes else ""
        doc = row["doc"].replace("|", "\\|")
        out.append(f"| `{row['key']}` | {row['type']} | {shown} | {doc}{extra} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/config.md")
    target.write_text(render())
