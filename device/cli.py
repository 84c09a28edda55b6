"""The ``edgeroom`` command (same as ``python -m device``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from device import __version__, logs
from device import config as config_mod
from device.errors import ConfigError

log = logging.getLogger(__name__)


def _add_config_args(p: argparse.ArgumentParser, state: bool = True) -> None:
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $EDGEROOM_CONFIG or /etc/edgeroom/edgeroom.toml)")
    if state:
        p.add_argument("--state-dir", metavar="DIR",
                       help="writable state (default: $EDGEROOM_STATE_DIR or /var/lib/edgeroom)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeroom", description="Room appliance firmware.")
    parser.add_argument("--version", action="version", version=f"edgeroom {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the appliance")
    _add_config_args(run)
    run.add_argument("--sim", action="store_true", help="simulated hardware")

    devices = sub.add_parser("devices", help="list microphones, speakers, cameras, ports")
    _add_config_args(devices, state=False)
    devices.add_argument("--json", action="store_true", help="machine-readable output")
    devices.add_argument("--sim", action="store_true",
                         help="show what a --sim run would use")

    cfg = sub.add_parser("config", help="check or show the config")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("path", metavar="PATH")
    show = cfg_sub.add_parser("show", help="print the effective config, secrets redacted")
    _add_config_args(show, state=False)
    show.add_argument("--json", action="store_true")

    doctor = sub.add_parser("doctor", help="one pass/fail line per check")
    _add_config_args(doctor)
    doctor.add_argument("--sim", action="store_true", help="check the simulated hardware")

    pw = sub.add_parser("password", help="the config page's admin password")
    pw_sub = pw.add_subparsers(dest="password_command", required=True, metavar="ACTION")
    reset = pw_sub.add_parser("reset", help="set a new password and print it")
    reset.add_argument("--state-dir", metavar="DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level, sys.stdout if args.command == "run" else sys.stderr)
    try:
        handler = _HANDLERS[args.command]
        return handler(args)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> tuple[Path, config_mod.Config]:
    path = config_mod.config_path_from_env(getattr(args, "config", None))
    return path, config_mod.load(path)


#: What the appliance creates is private to its user (the unit sets the same UMask=).
RUN_UMASK = 0o077
#: Signals that stop the appliance cleanly (SIGHUP: its terminal or session went away).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _exit_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_run(args: argparse.Namespace) -> int:
    from device.app import Appliance
    from device.statelock import StateDirLock, StateDirLocked

    # Until the event loop takes the signals over, a stop request ends the process at
    # once, cleanly: nothing has been started yet that would need stopping.
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_before_start)
    os.umask(RUN_UMASK)
    path, config = _load(args)
    state_dir = config_mod.state_dir_from_env(args.state_dir)
    lock = StateDirLock(state_dir)
    try:
        lock.acquire()
    except StateDirLocked as exc:
        print(f"edgeroom: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"edgeroom: cannot use state dir {state_dir}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    app = Appliance(config, path, state_dir, sim=args.sim)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, app.request_stop)
        await app.run()

    try:
        asyncio.run(main())
    finally:
        lock.release()
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        from device.config import parse
        from device.config_check import read_text

        path = Path(args.path)
        text = read_text(path)  # ConfigError if it cannot be used
        if text is None:
            print(f"{path}: no such file", file=sys.stderr)
            return 1
        parse(text, str(path))
        print(f"{path}: OK")
        return 0
    _, config = _load(args)
    if args.json:
        print(json.dumps(config.to_dict(redact=True), indent=2))
    else:
        print(config_mod.dumps(_redacted(config), only_changed=False), end="")
    return 0


def _redacted(config: config_mod.Config) -> config_mod.Config:
    patch = {sec: {k: v for k, v in values.items() if v == config_mod.REDACTED}
             for sec, values in config.to_dict(redact=True).items()}
    # Build without validation: "***" is not a valid value for every secret key.
    import dataclasses
    sections = {sec: dataclasses.replace(getattr(config, sec), **vals)
                for sec, vals in patch.items() if vals}
    return dataclasses.replace(config, **sections)


def cmd_password(args: argparse.Namespace) -> int:
    """``password reset``: a new admin password for the config page, alone on stdout."""
    from services.web.passwords import reset

    state_dir = config_mod.state_dir_from_env(args.state_dir)
    try:
        password = reset(state_dir)
    except OSError as exc:
        print(f"cannot write the password to {state_dir}: {exc}", file=sys.stderr)
        return 1
    print(password)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from device.settings import inventory as inventory_settings
    from drivers.inventory import list_devices, render_text

    _, config = _load(args)
    inventory = list_devices(inventory_settings(config), sim=args.sim)
    print(json.dumps(inventory, indent=2) if args.json else render_text(inventory))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from device.doctor import run_checks

    _, config = _load(args)
    state_dir = config_mod.state_dir_from_env(args.state_dir)
    results = asyncio.run(run_checks(config, state_dir, sim=args.sim))
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


_HANDLERS = {
    "doctor": cmd_doctor,
    "run": cmd_run,
    "config": cmd_config,
    "devices": cmd_devices,
    "password": cmd_password,
}
