"""Screenshots of TensorBoard on a sweep, taken with headless Chromium.

    python scripts/tb_screenshots.py multirun/DATE/TIME --out docs/

Starts TensorBoard on 127.0.0.1 (a free port), opens it in Debian's chromium driven by
Playwright (``pip install "sharedppo[screenshots]"`` and ``apt-get install chromium``; no
browser is downloaded), and saves tb_time_series.png, tb_hparams_table.png,
tb_hparams_parallel.png, tb_hparams_scatter.png and tb_custom_scalars.png into --out.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/tbserver.py

from sharedppo.report.sweep import job_folders  # noqa: E402
from tests.tbserver import tensorboard  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def shoot(url: str, out: Path, chromium: str, runs: list[str], prefix: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})

        def save(name: str) -> None:
            path = out / f"{prefix}{name}.png"
            page.screenshot(path=str(path))
            saved.append(path)

        def show(dashboard: str, ready: str) -> None:
            page.goto(f"{url}/#{dashboard}")
            page.get_by_text(ready).first.wait_for(timeout=30_000)
            page.wait_for_timeout(3_000)  # charts draw after their data arrives

        # Time series: the return and the losses, one line per run, named by what varied.
        show("timeseries", runs[0])
        page.locator('input[placeholder="Filter tags (regex)"]').fill("episodic_return|losses/")
        page.locator('button[aria-label="Toggle settings side pane"]').click()
        page.wait_for_timeout(3_000)
        save("time_series")

        page.set_viewport_size({"width": 2400, "height": 900})  # every metric column fits
        show("hparams", "Trial ID")
        save("hparams_table")
        page.get_by_text("Parallel Coordinates View").first.click()
        page.wait_for_timeout(3_000)
        save("hparams_parallel")
        page.get_by_text("Scatter Plot Matrix View").first.click()
        page.wait_for_timeout(3_000)
        save("hparams_scatter")

        page.set_viewport_size({"width": 1600, "height": 1650})
        show("custom_scalars", "SPS and learning rate")
        save("custom_scalars")
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="a multirun folder, e.g. multirun/DATE/TIME")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--prefix", default="tb_", help="file name prefix of the screenshots")
    args = parser.parse_args(argv)
    try:
        import playwright  # noqa: F401
    except ImportError:
        sys.exit('tb_screenshots: error: no playwright; pip install "sharedppo[screenshots]"')
    if not Path(args.chromium).is_file():
        sys.exit(f"tb_screenshots: error: no chromium at {args.chromium}; apt-get install chromium")
    runs = [p.name for p in job_folders(args.sweep)]
    if not runs:
        sys.exit(f"tb_screenshots: error: {args.sweep} holds no job folders")
    args.out.mkdir(parents=True, exist_ok=True)
    with tensorboard(args.sweep, len(runs)) as url:
        for path in shoot(url, args.out, args.chromium, runs, args.prefix):
            print(path)


if __name__ == "__main__":
    main()
