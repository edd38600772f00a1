"""The layout contract: imports point down, floor by floor (DESIGN.md), checked by import-linter's
layers contract in ``.importlinter``; and every room of the package is on some floor, so a new
module cannot slip past the contract unplaced."""
import configparser
import pkgutil
import subprocess
import sys
from pathlib import Path

import losslab

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    rows = cfg["importlinter:contract:layers"]["layers"].split("\n")
    return [m.strip() for row in rows if row.strip() for m in row.replace("|", ":").split(":")]


def test_imports_point_down():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_every_room_is_on_a_floor():
    placed = set(_layers())
    rooms = {f"losslab.{m.name}" for m in pkgutil.iter_modules(losslab.__path__) if m.name != "__main__"}
    assert not rooms - placed, f"add these modules to a layer in .importlinter: {sorted(rooms - placed)}"
    assert not placed - rooms, f"layers name modules that do not exist: {sorted(placed - rooms)}"


def test_no_module_over_700_lines():
    """One concept per room: a module that grows past 700 lines holds more than one."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "src" / "losslab").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 700}
    assert not long, f"split these modules (one concept each): {long}"
