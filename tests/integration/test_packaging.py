"""A non-editable install carries its schemas: build the wheel, import the ledger
from it alone (not from this checkout) and decode stored bytes with it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("*.whl")
    return found


def test_wheel_ships_every_published_schema_and_the_catalogue(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    published = {f"ledger/schemas/{p.relative_to(ROOT / 'schemas')}" for p in (ROOT / "schemas").rglob("*.avsc")}
    assert published, "no schemas found in the checkout"
    assert published <= names
    assert "ledger/schemas/catalogue.json" in names
    assert "ledger/cli/__init__.py" in names and "ledger/data/__init__.py" in names and "projections/__init__.py" in names and "consumers/__init__.py" in names


def test_installed_package_decodes_with_its_own_schemas(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    sample = ROOT / "tests" / "fixtures" / "events" / "v1" / "ModelDeployed.bin"
    script = (
        "import sys, ledger, ledger.codec as c;"
        "assert ledger.__file__.startswith(sys.argv[1]), ledger.__file__;"
        "print(c.decode(open(sys.argv[2], 'rb').read()).environment)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); " + script, str(site), str(sample)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "production"
