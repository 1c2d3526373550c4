"""Regenerate docs/report-screenshot*.png: run `ledger demo` in a scratch directory,
write its audit report, and photograph it in headless Chromium (scripts/browser.sh).

    python scripts/report_screenshot.py
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cdp import Browser, find_browser  # noqa: E402


def ledger(*args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(
        [sys.executable, "-c", "from ledger.cli import main; main(prog_name='ledger')", *args],
        cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
    )


def clip(browser: Browser, selector: str, path: Path, height: int, width: int = 1280) -> None:
    top = browser.evaluate(f"document.querySelector({selector!r}).getBoundingClientRect().top + window.scrollY")
    data = browser.send(
        "Page.captureScreenshot", format="png", captureBeyondViewport=True,
        clip={"x": 0, "y": max(0, top - 8), "width": width, "height": height, "scale": 1},
    )["data"]
    path.write_bytes(base64.b64decode(data))


def main() -> None:
    executable = find_browser()
    if executable is None:
        sys.exit("chromium is missing: run scripts/browser.sh")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        ledger("demo", cwd=work)
        ledger("report", "--out", "report.html", cwd=work)
        with Browser(executable, width=1280, height=1000) as browser:
            browser.open((work / "report.html").as_uri())
            if browser.console_errors() or len(browser.requests()) != 1:
                sys.exit(f"the report misbehaved: {browser.console_errors()} {browser.requests()}")
            clip(browser, "header", ROOT / "docs" / "report-screenshot.png", 1900)
            # The lineage diagram keeps its natural size on screen (it scrolls): widen
            # the page so the picture holds all of it.
            wide = browser.evaluate("Math.ceil(document.querySelector('.version:last-of-type svg.lineage').getBoundingClientRect().width) + 120")
            browser.send("Emulation.setDeviceMetricsOverride", width=max(1280, wide), height=1000, deviceScaleFactor=1, mobile=False)
            browser.evaluate("document.body.style.maxWidth = 'none'")
            clip(browser, ".version:last-of-type .lineage-title", ROOT / "docs" / "report-screenshot-lineage.png", 200, max(1280, wide))
            browser.send("Emulation.clearDeviceMetricsOverride")
            browser.evaluate("document.body.style.maxWidth = ''")
            clip(browser, ".version:last-of-type", ROOT / "docs" / "report-screenshot-version.png", 1100)
    print("wrote docs/report-screenshot.png, report-screenshot-version.png and report-screenshot-lineage.png")


if __name__ == "__main__":
    main()
